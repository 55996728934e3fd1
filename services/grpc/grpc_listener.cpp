// The gRPC front end (see grpc_listener.hpp for the design): the KV service's method table and the listener (grpc
// server, health, reflection, draining). The calls themselves: grpc_unary.cpp, grpc_streams.cpp.
#include <services/grpc/grpc_listener.hpp>
#include <services/grpc/grpc_call.hpp>
#include <services/grpc/grpc_reflection.hpp>
#include <services/grpc/grpc_streams.hpp>
#include <services/grpc/grpc_unary.hpp>

#include <turret/kv/v1/kv.grpc.pb.h>

#include <boost/asio/steady_timer.hpp>
#include <grpcpp/health_check_service_interface.h>

#include <stdexcept>
#include <thread>

namespace turret::grpc_frontend {

namespace asio = boost::asio;
namespace pb = ::turret::kv::v1;
using tcp = asio::ip::tcp;
using server::server_state;

namespace {

constexpr std::string_view kv_service_name = "turret.kv.v1.KV";

/// turret.kv.v1.KV with every method registered as a callback method that takes its request as raw bytes
/// (make_unary_handler, make_stream_handler): grpc++'s typed callback methods decode the request before any handler
/// runs and answer UNIMPLEMENTED, without a message, when that fails; here the handlers decode it and answer
/// INVALID_ARGUMENT. (A server interceptor cannot change that answer, and a generic service would turn every unary
/// call into a bidirectional stream.) The handlers run on grpc's threads and only run a call inline or create it.
class kv_service final : public pb::KV::Service {
 public:
  explicit kv_service(const std::shared_ptr<listener_shared>& sh) {
    // The generated code numbers the methods in the order of the proto's service, which is the descriptor's.
    const auto* desc =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(std::string(kv_service_name));
    if (desc == nullptr || static_cast<std::size_t>(desc->method_count()) != rpc_names.size())
      throw std::logic_error("grpc: kv.proto's service KV does not match the front end's RPCs");
    for (std::size_t i = 0; i < rpc_names.size(); ++i) {
      const auto r = static_cast<rpc>(i);
      const auto* method = desc->FindMethodByName(std::string(rpc_names[i]));
      if (method == nullptr) throw std::logic_error("grpc: kv.proto has no method " + std::string(rpc_names[i]));
      auto handler = r == rpc::scan || r == rpc::subscribe ? make_stream_handler(r, sh) : make_unary_handler(r, sh);
      MarkMethodRawCallback(method->index(), handler.release());
    }
  }
};

// ---------------------------------------------------------------------------------------------------------------

class grpc_listener final : public server::listener {
 public:
  explicit grpc_listener(kv::listener_env env)
      : env_endpoint_(env.endpoint),
        opts_(env.options.has_value() ? std::any_cast<grpc_options>(env.options) : grpc_options{}),
        sh_(std::make_shared<listener_shared>(env, opts_)),
        service_(sh_),
        health_timer_(env.rt.context(0)) {}

  ~grpc_listener() override {
    stop_accepting();
    if (shutdown_thread_.joinable()) shutdown_thread_.join();
    // Calls whose coroutine can no longer run (runtime stopped) would keep grpc's Shutdown waiting: end them.
    sh_->for_each_open([](call_base& c) { c.force_finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "closed")); });
    if (server_) {
      server_->Shutdown(std::chrono::system_clock::now());
      server_->Wait();
    }
  }

  const std::string& name() const noexcept override { return sh_->name; }
  std::string_view protocol() const noexcept override { return "grpc"; }

  void start() override {
    grpc::EnableDefaultHealthCheckService(opts_.health);

    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(endpoint_string(env_endpoint_), grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    if (opts_.reflection) {
      std::vector<std::string> names{std::string(kv_service_name)};
      if (opts_.health) names.emplace_back("grpc.health.v1.Health");
      reflection_ = make_reflection_services(std::move(names));
      for (auto& s : reflection_) builder.RegisterService(s.get());
    }
    builder.SetMaxReceiveMessageSize(static_cast<int>(opts_.max_receive_message_size));
    builder.SetMaxSendMessageSize(static_cast<int>(opts_.max_send_message_size));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, static_cast<int>(opts_.max_concurrent_streams));
    builder.AddChannelArgument(GRPC_ARG_ENABLE_CHANNELZ, 0);
    server_ = builder.BuildAndStart();
    if (!server_ || port == 0)
      throw std::system_error(std::make_error_code(std::errc::address_in_use),
                              "cannot bind gRPC listener on " + endpoint_string(env_endpoint_));
    local_ = tcp::endpoint(env_endpoint_.address(), static_cast<unsigned short>(port));
    if (opts_.health) {
      if (auto* h = server_->GetHealthCheckService()) {
        h->SetServingStatus(std::string(kv_service_name), false);  // registers the name; SetServingStatus(bool)
        h->SetServingStatus(false);                                // then covers "" and it
        follow_readiness(std::chrono::milliseconds(0));
      }
    }
  }

  tcp::endpoint local_endpoint() const override { return local_; }

  void stop_accepting() override {
    if (sh_->draining.exchange(true, std::memory_order_acq_rel)) return;
    if (!server_) return;
    if (opts_.health)
      if (auto* h = server_->GetHealthCheckService()) h->SetServingStatus(false);
    // Streams never end by themselves: end Subscribe streams now (unary calls and scans finish on their own).
    sh_->for_each_open([](call_base& c) {
      if (c.kind() == rpc::subscribe)
        c.force_finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
    });
    // grpc's Shutdown blocks until calls are done (or the deadline cancels them); never block a worker with it.
    const auto deadline = std::chrono::system_clock::now() +
                          std::chrono::duration_cast<std::chrono::system_clock::duration>(sh_->shutdown.grace());
    shutdown_thread_ = std::thread([s = server_.get(), deadline] { s->Shutdown(deadline); });
  }

  void force_close() override {
    sh_->for_each_open([](call_base& c) {
      c.cancel_in_pipeline();
      c.force_finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
    });
  }

  std::size_t connections() const noexcept override {
    std::lock_guard lk(sh_->mutex);
    return sh_->open;
  }

 private:
  /// Health: SERVING once the server reports ready (it becomes ready after every listener started).
  /// (Polls: the server's state is an atomic without notification; the first check runs as soon as the runtime runs,
  /// which is after turretd became ready.)
  void follow_readiness(std::chrono::milliseconds delay) {
    health_timer_.expires_after(delay);
    health_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || sh_->draining.load(std::memory_order_acquire)) return;
      const auto st = sh_->state ? sh_->state->load(std::memory_order_acquire) : server_state::ready;
      if (st == server_state::ready) {
        if (auto* h = server_->GetHealthCheckService()) h->SetServingStatus(true);
        return;
      }
      if (st == server_state::starting) follow_readiness(std::chrono::milliseconds(10));
    });
  }

  tcp::endpoint env_endpoint_;
  grpc_options opts_;
  std::shared_ptr<listener_shared> sh_;
  kv_service service_;
  std::vector<std::unique_ptr<grpc::Service>> reflection_;  // before server_: destroyed after it
  std::unique_ptr<grpc::Server> server_;
  tcp::endpoint local_;
  asio::steady_timer health_timer_;
  std::thread shutdown_thread_;
};

}  // namespace

std::unique_ptr<server::listener> make_listener(kv::listener_env env) {
  return std::make_unique<grpc_listener>(std::move(env));
}

kv::frontend make_frontend() {
  kv::frontend f;
  f.keys = {"grpc"};
  f.parse = [](const config_node& entry) -> std::any { return parse_grpc_options(entry.child("grpc")); };
  f.create = [](kv::listener_env env) { return make_listener(std::move(env)); };
  return f;
}

}  // namespace turret::grpc_frontend
