#pragma once
// Errors as values on the request path. Asio reports boost::system::error_code; so do we. Every layer declares its
// own error enum (registered as a boost::system error category), so a front end can map any error to its protocol's
// status without knowing which layer produced it (turret/error.hpp: the shared conditions; turret/error_mapping.hpp:
// what each protocol sends).
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace turret {

using error_code = boost::system::error_code;

template <class T>
using result = boost::system::result<T, error_code>;

}  // namespace turret
