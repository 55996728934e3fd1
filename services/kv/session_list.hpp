#pragma once
// Lists of subscribed / watching sessions kept by the store (private to services/kv).
#include <turret/kv/session.hpp>

#include <algorithm>
#include <vector>

namespace turret::kv {

/// Removes one occurrence of `s` from `v` (order kept: delivery order is subscription order).
inline void erase_one(std::vector<session*>& v, session* s) {
  auto it = std::find(v.begin(), v.end(), s);
  if (it != v.end()) v.erase(it);
}

}  // namespace turret::kv
