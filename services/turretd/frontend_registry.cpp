#include <services/resp/resp_listener.hpp>
#include <services/turretd/frontend_registry.hpp>
#ifdef TURRET_HAVE_HTTP
#include <services/http/http_listener.hpp>
#endif
#ifdef TURRET_HAVE_GRPC
#include <services/grpc/grpc_listener.hpp>
#endif

namespace turret::turretd {

void register_builtin_frontends(frontend_registry& reg) {
  reg.add("resp", resp_frontend::make_frontend());
#ifdef TURRET_HAVE_HTTP
  reg.add("http", http_frontend::make_frontend());
#endif
#ifdef TURRET_HAVE_GRPC
  reg.add("grpc", grpc_frontend::make_frontend());
#endif
}

}  // namespace turret::turretd
