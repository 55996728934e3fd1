// Typed gRPC client (see turret/clients/grpc_client.hpp). grpc++'s callback client API, bridged to Asio: each
// completion is posted to the awaiting coroutine's executor.
#include <turret/clients/grpc_client.hpp>
#include <turret/kv/v1/kv.grpc.pb.h>

#include <boost/asio/async_result.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <mutex>

namespace turret::clients {

namespace asio = boost::asio;
namespace pb = ::turret::kv::v1;

namespace {

class grpc_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "grpc"; }
  std::string message(int ev) const override {
    static const char* const names[] = {"OK",        "CANCELLED",         "UNKNOWN",          "INVALID_ARGUMENT",
                                        "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
                                        "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
                                        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
    if (ev >= 0 && ev < 17) return names[ev];
    return "grpc status " + std::to_string(ev);
  }
};

error_code to_error(const grpc::Status& s) { return {static_cast<int>(s.error_code()), grpc_category()}; }

/// Wraps a move-only completion handler into a copyable callable that completes on the handler's executor
/// (grpc's callbacks are std::function, and run on grpc's threads).
template <class Handler, class... Args>
std::function<void(Args...)> post_to_handler(Handler&& handler) {
  using H = std::decay_t<Handler>;
  struct holder {
    H handler;
    asio::executor_work_guard<asio::associated_executor_t<H>> work;
  };
  auto ex = asio::get_associated_executor(handler);
  auto h = std::make_shared<holder>(holder{std::forward<Handler>(handler), asio::make_work_guard(ex)});
  return [h](Args... args) {
    auto ex = h->work.get_executor();
    asio::post(ex, [h, ... a = std::move(args)]() mutable {
      std::move(h->handler)(std::move(a)...);
      h->work.reset();
    });
  };
}

std::chrono::system_clock::time_point to_system(request_context::clock::time_point d) {
  const auto left = d - request_context::clock::now();
  return std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(left);
}

}  // namespace

const boost::system::error_category& grpc_category() noexcept {
  static const grpc_category_impl c;
  return c;
}

// ---------------------------------------------------------------------------------------------------------------

struct grpc_transport::state {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> stub;
};

grpc_transport grpc_transport::connect(const std::string& target, const grpc_client_options& opts) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(opts.max_receive_message_size));
  args.SetMaxSendMessageSize(static_cast<int>(opts.max_send_message_size));
  auto s = std::make_shared<state>();
  s->channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  s->stub = pb::KV::NewStub(s->channel);
  return grpc_transport(std::move(s));
}

namespace {

void start_unary(pb::KV::Stub& stub, grpc_method m, grpc::ClientContext* c, const google::protobuf::Message* rq,
                 google::protobuf::Message* rs, std::function<void(grpc::Status)> cb) {
  auto* a = stub.async();
#define TURRET_RPC(meth, name)                                                                                     \
  case grpc_method::meth:                                                                                          \
    a->name(c, static_cast<const pb::name##Request*>(rq), static_cast<pb::name##Response*>(rs), std::move(cb)); \
    return;
  switch (m) {
    TURRET_RPC(get, Get)
    TURRET_RPC(set, Set)
    TURRET_RPC(del, Delete)
    TURRET_RPC(mget, MGet)
    TURRET_RPC(mset, MSet)
    TURRET_RPC(incr, Incr)
    TURRET_RPC(expire, Expire)
    TURRET_RPC(ttl, Ttl)
    TURRET_RPC(persist, Persist)
    TURRET_RPC(publish, Publish)
  }
#undef TURRET_RPC
  cb(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "unknown method"));
}

}  // namespace

awaitable<result<grpc_reply>> grpc_transport::call(unit_permit, grpc_call& c) {
  auto cctx = std::make_shared<grpc::ClientContext>();
  if (c.ctx.deadline != request_context::clock::time_point::max()) cctx->set_deadline(to_system(c.ctx.deadline));
  if (c.ctx.has_request_id()) cctx->AddMetadata("x-request-id", c.ctx.request_id());
  if (c.ctx.cancelled()) co_return make_error_code(grpc_errc::cancelled);
  auto slot = c.ctx.cancel_slot();
  slot.assign([cctx](asio::cancellation_type) { cctx->TryCancel(); });
  grpc::Status status = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(grpc::Status)>(
      [&](auto handler) {
        start_unary(*state_->stub, c.method, cctx.get(), c.request, c.response,
                    post_to_handler<decltype(handler), grpc::Status>(std::move(handler)));
      },
      asio::use_awaitable);
  slot.clear();
  if (!status.ok()) {
    c.status_message = status.error_message();
    co_return to_error(status);
  }
  co_return grpc_reply{};
}

// ---------------------------------------------------------------------------------------------------------------

grpc_kv_client::grpc_kv_client(service_type svc, grpc_transport transport)
    : svc_(std::move(svc)), transport_(std::move(transport)) {}
grpc_kv_client::grpc_kv_client(grpc_transport transport)
    : svc_(erase_service<grpc_call>(transport)), transport_(std::move(transport)) {}
grpc_kv_client grpc_kv_client::connect(const std::string& target, const grpc_client_options& opts) {
  return grpc_kv_client(grpc_transport::connect(target, opts));
}

awaitable<result<grpc_reply>> grpc_kv_client::unary(grpc_method m, const google::protobuf::Message& rq,
                                                    google::protobuf::Message& rs, const call_options& o) {
  grpc_call c;
  c.method = m;
  c.request = &rq;
  c.response = &rs;
  if (o.timeout.count() > 0) c.ctx.deadline = request_context::clock::now() + o.timeout;
  if (!o.request_id.empty()) c.ctx.set_request_id(std::string(o.request_id));
  co_return co_await ready_and_call(svc_, c);
}

awaitable<result<std::optional<std::string>>> grpc_kv_client::get(std::string_view key, call_options o) {
  pb::GetRequest rq;
  rq.set_key(key.data(), key.size());
  pb::GetResponse rs;
  auto r = co_await unary(grpc_method::get, rq, rs, o);
  if (!r) {
    if (r.error() == grpc_errc::not_found) co_return std::optional<std::string>();
    co_return r.error();
  }
  co_return std::optional<std::string>(std::move(*rs.mutable_value()));
}

awaitable<result<std::optional<std::string>>> grpc_kv_client::set(std::string_view key, std::string_view value,
                                                                  set_options s, call_options o) {
  pb::SetRequest rq;
  rq.set_key(key.data(), key.size());
  rq.set_value(value.data(), value.size());
  rq.set_ttl_ms(s.ttl.count());
  rq.set_keep_ttl(s.keep_ttl);
  rq.set_condition(s.condition == set_condition::if_not_exists ? pb::CONDITION_IF_NOT_EXISTS
                   : s.condition == set_condition::if_exists   ? pb::CONDITION_IF_EXISTS
                                                               : pb::CONDITION_UNSPECIFIED);
  rq.set_return_previous(s.return_previous);
  pb::SetResponse rs;
  auto r = co_await unary(grpc_method::set, rq, rs, o);
  if (!r) co_return r.error();
  if (rs.had_previous()) co_return std::optional<std::string>(std::move(*rs.mutable_previous()));
  co_return std::optional<std::string>();
}

awaitable<result<std::int64_t>> grpc_kv_client::del(std::span<const std::string_view> keys, call_options o) {
  pb::DeleteRequest rq;
  for (auto k : keys) rq.add_keys(k.data(), k.size());
  pb::DeleteResponse rs;
  auto r = co_await unary(grpc_method::del, rq, rs, o);
  if (!r) co_return r.error();
  co_return rs.deleted();
}

awaitable<result<std::vector<std::optional<std::string>>>> grpc_kv_client::mget(std::span<const std::string_view> keys,
                                                                                call_options o) {
  pb::MGetRequest rq;
  for (auto k : keys) rq.add_keys(k.data(), k.size());
  pb::MGetResponse rs;
  auto r = co_await unary(grpc_method::mget, rq, rs, o);
  if (!r) co_return r.error();
  std::vector<std::optional<std::string>> out;
  out.reserve(static_cast<std::size_t>(rs.values_size()));
  for (auto& v : *rs.mutable_values()) {
    if (v.found()) out.emplace_back(std::move(*v.mutable_value()));
    else out.emplace_back();
  }
  co_return out;
}

awaitable<result<void>> grpc_kv_client::mset(std::span<const std::pair<std::string_view, std::string_view>> entries,
                                             bool if_none_exist, call_options o) {
  pb::MSetRequest rq;
  for (auto [k, v] : entries) {
    auto* e = rq.add_entries();
    e->set_key(k.data(), k.size());
    e->set_value(v.data(), v.size());
  }
  rq.set_if_none_exist(if_none_exist);
  pb::MSetResponse rs;
  auto r = co_await unary(grpc_method::mset, rq, rs, o);
  if (!r) co_return r.error();
  co_return result<void>();
}

awaitable<result<std::int64_t>> grpc_kv_client::incr(std::string_view key, std::int64_t delta, call_options o) {
  pb::IncrRequest rq;
  rq.set_key(key.data(), key.size());
  rq.set_delta(delta);
  pb::IncrResponse rs;
  auto r = co_await unary(grpc_method::incr, rq, rs, o);
  if (!r) co_return r.error();
  co_return rs.value();
}

awaitable<result<bool>> grpc_kv_client::expire(std::string_view key, std::chrono::milliseconds ttl,
                                               expire_condition c, call_options o) {
  pb::ExpireRequest rq;
  rq.set_key(key.data(), key.size());
  rq.set_ttl_ms(ttl.count());
  rq.set_condition(static_cast<pb::ExpireCondition>(static_cast<int>(c)));
  pb::ExpireResponse rs;
  auto r = co_await unary(grpc_method::expire, rq, rs, o);
  if (!r) co_return result<bool>(boost::system::in_place_error, r.error());
  co_return rs.applied();
}

awaitable<result<std::int64_t>> grpc_kv_client::ttl(std::string_view key, call_options o) {
  pb::TtlRequest rq;
  rq.set_key(key.data(), key.size());
  pb::TtlResponse rs;
  auto r = co_await unary(grpc_method::ttl, rq, rs, o);
  if (!r) co_return r.error();
  co_return rs.ttl_ms();
}

awaitable<result<bool>> grpc_kv_client::persist(std::string_view key, call_options o) {
  pb::PersistRequest rq;
  rq.set_key(key.data(), key.size());
  pb::PersistResponse rs;
  auto r = co_await unary(grpc_method::persist, rq, rs, o);
  if (!r) co_return result<bool>(boost::system::in_place_error, r.error());
  co_return rs.removed();
}

awaitable<result<std::int64_t>> grpc_kv_client::publish(std::string_view channel, std::string_view message,
                                                        call_options o) {
  pb::PublishRequest rq;
  rq.set_channel(channel.data(), channel.size());
  rq.set_message(message.data(), message.size());
  pb::PublishResponse rs;
  auto r = co_await unary(grpc_method::publish, rq, rs, o);
  if (!r) co_return r.error();
  co_return rs.receivers();
}

// ---------------------------------------------------------------------------------------------------------------
// Scan: a self-owned read reactor collecting every batch, completing the awaiting coroutine at OnDone.

namespace {

class scan_reader final : public grpc::ClientReadReactor<pb::ScanResponse> {
 public:
  using done_fn = std::function<void(result<std::vector<std::string>>)>;
  scan_reader(pb::KV::Stub& stub, pb::ScanRequest rq, const call_options& o, done_fn done)
      : rq_(std::move(rq)), done_(std::move(done)) {
    if (o.timeout.count() > 0) cctx_.set_deadline(std::chrono::system_clock::now() + o.timeout);
    if (!o.request_id.empty()) cctx_.AddMetadata("x-request-id", std::string(o.request_id));
    stub.async()->Scan(&cctx_, &rq_, this);
    StartRead(&in_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    for (auto& k : *in_.mutable_keys()) keys_.push_back(std::move(k));
    in_.Clear();
    StartRead(&in_);
  }
  void OnDone(const grpc::Status& s) override {
    if (s.ok()) done_(std::move(keys_));
    else done_(to_error(s));
    delete this;
  }

 private:
  grpc::ClientContext cctx_;
  pb::ScanRequest rq_;
  pb::ScanResponse in_;
  std::vector<std::string> keys_;
  done_fn done_;
};

}  // namespace

awaitable<result<std::vector<std::string>>> grpc_kv_client::scan(std::string_view prefix, std::string_view match,
                                                                 std::uint64_t limit, call_options o) {
  pb::ScanRequest rq;
  rq.set_prefix(prefix.data(), prefix.size());
  rq.set_match(match.data(), match.size());
  rq.set_limit(limit);
  auto& stub = *transport_.shared_state()->stub;
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(result<std::vector<std::string>>)>(
      [&](auto handler) {
        new scan_reader(stub, std::move(rq), o,
                        post_to_handler<decltype(handler), result<std::vector<std::string>>>(std::move(handler)));
      },
      asio::use_awaitable);
}

// ---------------------------------------------------------------------------------------------------------------
// Subscribe

struct grpc_subscription::impl final : grpc::ClientReadReactor<pb::SubscribeResponse> {
  grpc::ClientContext cctx;
  pb::SubscribeRequest rq;
  pb::SubscribeResponse in;
  std::shared_ptr<impl> self;  // grpc's reference, dropped at OnDone

  std::mutex mutex;
  std::deque<grpc_message> queue;
  bool confirmed = false;
  bool finished = false;
  error_code final_error;
  std::int64_t count = 0;
  std::function<void(result<grpc_message>)> waiter;
  std::function<void(result<std::int64_t>)> confirm_waiter;

  void OnReadDone(bool ok) override {
    if (!ok) return;
    std::function<void(result<grpc_message>)> w;
    std::function<void(result<std::int64_t>)> cw;
    std::optional<grpc_message> msg;
    {
      std::lock_guard lk(mutex);
      if (in.has_subscribed()) {
        confirmed = true;
        count = in.subscribed().count();
        cw = std::move(confirm_waiter);
        confirm_waiter = nullptr;
      } else if (in.has_message()) {
        grpc_message m{std::move(*in.mutable_message()->mutable_channel()),
                       std::move(*in.mutable_message()->mutable_pattern()),
                       std::move(*in.mutable_message()->mutable_payload())};
        if (waiter) {
          w = std::move(waiter);
          waiter = nullptr;
          msg = std::move(m);
        } else {
          queue.push_back(std::move(m));
        }
      }
    }
    if (cw) cw(count);
    if (w) w(std::move(*msg));
    in.Clear();
    StartRead(&in);
  }

  void OnDone(const grpc::Status& s) override {
    std::function<void(result<grpc_message>)> w;
    std::function<void(result<std::int64_t>)> cw;
    {
      std::lock_guard lk(mutex);
      finished = true;
      final_error = s.ok() ? make_error_code(grpc_errc::cancelled) : to_error(s);
      w = std::move(waiter);
      waiter = nullptr;
      cw = std::move(confirm_waiter);
      confirm_waiter = nullptr;
    }
    if (w) w(final_error);
    if (cw) cw(final_error);
    auto keep = std::move(self);  // may destroy *this when it goes out of scope
  }
};

grpc_subscription::~grpc_subscription() {
  if (impl_) impl_->cctx.TryCancel();
}

std::int64_t grpc_subscription::count() const noexcept {
  std::lock_guard lk(impl_->mutex);
  return impl_->count;
}

void grpc_subscription::cancel() {
  if (impl_) impl_->cctx.TryCancel();
}

awaitable<result<grpc_message>> grpc_subscription::next() {
  auto i = impl_;
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(result<grpc_message>)>(
      [i](auto handler) {
        auto cb = post_to_handler<decltype(handler), result<grpc_message>>(std::move(handler));
        std::unique_lock lk(i->mutex);
        if (!i->queue.empty()) {
          auto m = std::move(i->queue.front());
          i->queue.pop_front();
          lk.unlock();
          cb(std::move(m));
        } else if (i->finished) {
          auto e = i->final_error;
          lk.unlock();
          cb(e);
        } else {
          i->waiter = std::move(cb);
        }
      },
      asio::use_awaitable);
}

awaitable<result<grpc_subscription>> grpc_kv_client::subscribe(std::span<const std::string_view> channels,
                                                               std::span<const std::string_view> patterns) {
  auto i = std::make_shared<grpc_subscription::impl>();
  for (auto c : channels) i->rq.add_channels(c.data(), c.size());
  for (auto p : patterns) i->rq.add_patterns(p.data(), p.size());
  auto& stub = *transport_.shared_state()->stub;
  auto r = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(result<std::int64_t>)>(
      [&](auto handler) {
        i->confirm_waiter = post_to_handler<decltype(handler), result<std::int64_t>>(std::move(handler));
        i->self = i;
        stub.async()->Subscribe(&i->cctx, &i->rq, i.get());
        i->StartRead(&i->in);
        i->StartCall();
      },
      asio::use_awaitable);
  if (!r) co_return r.error();
  co_return grpc_subscription(std::move(i));
}

}  // namespace turret::clients
