#!/usr/bin/env bash
# ThreadSanitizer over the tests whose work crosses worker threads: pub/sub delivery, CLIENT KILL, CONFIG SET under
# load, graceful shutdown (SIGTERM, SHUTDOWN), the front ends' connection handling and the layers' waiters.
# Not part of scripts/test.sh (a TSan build of everything takes long on two cores); run it by hand after changing
# anything that another thread can see:
#
#   tests/sanitizers/tsan.sh            # builds ./build-tsan (scripts/sanitize.sh thread) and runs the tests below
#   tests/sanitizers/tsan.sh -R name    # other ctest arguments instead of the default selection
#
# A race report fails the test that produced it (GoogleTest binaries exit 66; tests/integration/harness.py fails an
# integration test whose turretd log holds a report). Suppressions: tests/sanitizers/tsan.supp (uninstrumented gRPC
# and Abseil only).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -eq 0 ]; then
  # unit tests of the RESP and HTTP front ends, the layers, the runtime, the store; integration tests that run
  # multi-threaded servers under load, kill clients, shut down with clients connected, or deliver across protocols
  # (every layer's unit tests, hot reload, and the layers' integration tests over real sockets)
  set -- -R '^(RespFrontend|HttpServer|ConcurrencyLimit[A-Za-z]*|TimeoutTest|FaultTest|RateLimit[A-Za-z]*|LoadShedTest|CircuitBreakerTest|RetryTest|HedgeTest|LoadBalance[A-Za-z]*|MetricsLayerTest|AccessLogTest|AuthTest|ServerReload|PipelineHandleTest|RuntimeTest|MetricsTest|pubsub|connection|grpc_frontend_test|grpc_deadline_test|RespClient)\.|^integration\.test_(concurrency|lifecycle|limits|limits_layers|cross_protocol|redis_py|turret_clients|grpc|reload|retry|load_balance|circuit_breaker|auth_observe)$'
fi
exec scripts/sanitize.sh thread "$@"
