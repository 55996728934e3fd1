#include <turret/kv/hello.hpp>

namespace turret::kv {

void hello_reply(reply_builder& out, const session& s) {
  out.map(7);
  out.bulk("server");
  out.bulk("redis");
  out.bulk("version");
  out.bulk(redis_version);
  out.bulk("proto");
  out.integer(s.resp);
  out.bulk("id");
  out.integer(static_cast<long long>(s.id));
  out.bulk("mode");
  out.bulk("standalone");
  out.bulk("role");
  out.bulk("master");
  out.bulk("modules");
  out.array(0);
}

}  // namespace turret::kv
