// The baseline of bench/bench_grpc.sh: a bare grpc++ callback server answering turret.kv.v1.KV/Get from a plain
// hash map, with nothing else (no pipeline, no runtime hop, no store lock). Other methods are UNIMPLEMENTED.
//
//   grpc_bare_server [--port N] [--key K] [--value-size N]
// Prints "listening grpc 127.0.0.1:PORT" once serving (port 0 = any free port); runs until SIGTERM/SIGINT.
#include <turret/kv/v1/kv.grpc.pb.h>

#include <grpcpp/grpcpp.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>

namespace {

namespace pb = ::turret::kv::v1;

class bare_kv final : public pb::KV::CallbackService {
 public:
  explicit bare_kv(std::unordered_map<std::string, std::string> data) : data_(std::move(data)) {}

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx, const pb::GetRequest* rq,
                                pb::GetResponse* rs) override {
    auto* r = ctx->DefaultReactor();
    auto it = data_.find(rq->key());
    if (it == data_.end()) {
      r->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "key not found"));
    } else {
      rs->set_value(it->second);
      r->Finish(grpc::Status::OK);
    }
    return r;
  }

 private:
  const std::unordered_map<std::string, std::string> data_;  // read-only: no lock needed
};

volatile std::sig_atomic_t stop_requested = 0;

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  std::string key = "bench:key";
  std::size_t value_size = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--port")) port = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--key")) key = argv[i + 1];
    else if (!std::strcmp(argv[i], "--value-size")) value_size = static_cast<std::size_t>(std::atol(argv[i + 1]));
  }
  std::unordered_map<std::string, std::string> data;
  data.emplace(key, std::string(value_size, 'v'));
  bare_kv service(std::move(data));

  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(), &bound);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (!server || bound == 0) {
    std::fprintf(stderr, "grpc_bare_server: cannot listen on port %d\n", port);
    return 1;
  }
  std::printf("listening grpc 127.0.0.1:%d\n", bound);
  std::fflush(stdout);

  std::signal(SIGTERM, [](int) { stop_requested = 1; });
  std::signal(SIGINT, [](int) { stop_requested = 1; });
  while (!stop_requested) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}
