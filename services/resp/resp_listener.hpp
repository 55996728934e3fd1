#pragma once
// The RESP front end of turretd: registered as protocol "resp" in turretd's frontend_registry.
//
// Design (throughput and CPU per request against redis-server: bench/bench_resp.sh):
// - one acceptor per listener on runtime context 0; accepted sockets are spread round robin over the runtime's
//   contexts (one io_context per worker thread) and stay there for life;
// - one coroutine per connection: read what is available, parse every complete command, run each through the
//   pipeline (synchronously when the pipeline allows, else ready()+call()), and write all the replies of the batch
//   with one write;
// - pub/sub messages from other threads go to a per-connection outbox and wake the connection's coroutine;
// - Redis's limits: maxclients, idle timeout (subscribers exempt), proto-max-bulk-len, client-query-buffer-limit,
//   client-output-buffer-limit pubsub.
#include <services/resp/resp_options.hpp>
#include <turret/kv/frontend.hpp>

namespace turret::resp_frontend {

/// The "resp" protocol for turretd's frontend_registry: parses a listener's `resp:` section into resp_options and
/// creates resp listeners.
kv::frontend make_frontend();

/// Creates a RESP listener directly (tests); env.options must hold a resp_options (or be empty: defaults).
std::unique_ptr<server::listener> make_listener(kv::listener_env env);

}  // namespace turret::resp_frontend
