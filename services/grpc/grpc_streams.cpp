// The streaming calls of the gRPC front end: Scan (SCAN batches on the runtime, one write in flight) and Subscribe
// (an attached session whose host queues messages for the writer).
#include <services/grpc/grpc_status.hpp>
#include <services/grpc/grpc_streams.hpp>

#include <turret/kv/v1/kv.grpc.pb.h>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <limits>

namespace turret::grpc_frontend {

namespace asio = boost::asio;
namespace pb = ::turret::kv::v1;

namespace {

grpc::Status shutting_down() { return {grpc::StatusCode::UNAVAILABLE, "server is shutting down"}; }

// ---------------------------------------------------------------------------------------------------------------
// Scan: one SCAN per batch on the runtime; one write in flight; the next batch starts from OnWriteDone.
//
// Paging (the cursor contract of kv.proto): SCAN's cursor only resumes at the boundary of one of its steps (a hash
// bucket; several buckets while the table is being resized), and every key present for the whole scan is returned
// at least once across steps, even across resizes (keyspace::scan). A batch is therefore never cut inside a step:
// when a batch holds more keys than the limit leaves, it is scanned again from its start in SCAN's smallest steps
// (COUNT 1), keeping whole steps while they fit, and the cursor written is the start of the first step that did not
// fit, so that a call resumed there loses nothing. Only the first step of a call may exceed the limit (returned whole,
// in one response): a step holding more keys than `limit` could otherwise never be passed.

class scan_call final : public call_base, public grpc::ServerWriteReactor<pb::ScanResponse> {
 public:
  using request_type = pb::ScanRequest;
  using response_type = pb::ScanResponse;
  using reactor = grpc::ServerWriteReactor<pb::ScanResponse>;
  static constexpr rpc id = rpc::scan;
  static grpc::Status validate(const request_type&) { return grpc::Status(); }

  scan_call(std::shared_ptr<listener_shared> sh, grpc::CallbackServerContext* sctx, request_type&& rq)
      : call_base(std::move(sh), sctx, id), rq_(std::move(rq)) {
    cursor_ = rq_.cursor();
    filter_ = ops::make_scan_filter(sv(rq_.prefix()), sv(rq_.match()));
    batch_ = rq_.batch_size() ? rq_.batch_size() : shared().opts.scan_batch;
  }

  void start() noexcept { spawn_step(); }

  void OnWriteDone(bool ok) noexcept override {
    if (!ok || last_) {
      force_finish(ok ? grpc::Status::OK : grpc::Status::CANCELLED);
      return;
    }
    spawn_step();
  }
  void OnCancel() noexcept override { cancel_in_pipeline(); }
  void OnDone() noexcept override { done(); }
  void force_finish(grpc::Status s) noexcept override {
    if (claim_finish(s)) Finish(std::move(s));
  }

 private:
  void spawn_step() noexcept {
    spawn([this] { return step(); });
  }

  /// Keys the limit still allows (max when there is none).
  std::uint64_t room() const noexcept {
    if (rq_.limit() == 0) return std::numeric_limits<std::uint64_t>::max();
    return sent_ >= rq_.limit() ? 0 : rq_.limit() - sent_;
  }

  /// One SCAN step (the scan operation, <turret/ops/operations.hpp>) from `from` with COUNT `count`: the keys it
  /// returned (after the prefix filter) into `keys`, the cursor after it into `next`.
  asio::awaitable<grpc::Status> scan_once(std::uint64_t from, std::uint64_t count, std::vector<std::string>& keys,
                                          std::uint64_t& next) {
    const ops::scan_op::input in{from, count, filter_.pattern, filter_.prefix};
    ops::scan_op::output out;
    const result<ops::status> r = co_await ops::run<ops::scan_op>(target(), in, out);
    if (!r) co_return pipeline_status(shared(), sctx_, ctx_, r.error(), "SCAN");
    if (!r->ok()) co_return to_status(*r);
    keys = std::move(out.keys);
    next = out.next;
    co_return grpc::Status();
  }

  void take(std::vector<std::string>& keys) {
    for (auto& k : keys) *out_.add_keys() = std::move(k);
    sent_ += keys.size();
    keys.clear();
  }

  /// The batch at cursor_ holds more keys than room(): takes its steps one at a time (COUNT 1) while they fit and
  /// leaves cursor_ at the first that does not (see the paging note above).
  asio::awaitable<grpc::Status> take_whole_steps(std::vector<std::string>& keys) {
    // (cursor_ is 0 both at the start of the keyspace, where the first step is due, and at its end.)
    for (bool first = true; (first || cursor_ != 0) && room() != 0; first = false) {
      std::uint64_t next = 0;
      auto st = co_await scan_once(cursor_, 1, keys, next);
      if (!st.ok()) co_return st;
      if (keys.size() > room() && sent_ != 0) break;
      take(keys);
      cursor_ = next;
    }
    co_return grpc::Status();
  }

  asio::awaitable<void> step() {
    if (sctx_->IsCancelled() || shared().draining.load(std::memory_order_acquire)) {
      force_finish(sctx_->IsCancelled() ? grpc::Status::CANCELLED : shutting_down());
      co_return;
    }
    out_.Clear();
    bool cut = false;
    std::vector<std::string> keys;
    // Loop over empty batches (SCAN may return none) so that every write carries keys, or is the last.
    for (int spins = 0; spins < 64; ++spins) {
      std::uint64_t next = 0;
      auto st = co_await scan_once(cursor_, std::min<std::uint64_t>(batch_, room()), keys, next);
      if (st.ok() && keys.size() > room()) {
        cut = true;
        st = co_await take_whole_steps(keys);
      }
      if (!st.ok()) {
        force_finish(std::move(st));
        co_return;
      }
      if (cut) break;
      take(keys);
      cursor_ = next;
      if (cursor_ == 0 || room() == 0 || out_.keys_size() != 0) break;
    }
    out_.set_cursor(cursor_);
    last_ = cursor_ == 0 || room() == 0 || cut;
    if (sctx_->IsCancelled()) {
      force_finish(grpc::Status::CANCELLED);
      co_return;
    }
    StartWrite(&out_);
  }

  request_type rq_;
  pb::ScanResponse out_;
  ops::scan_filter filter_;  // views into rq_
  std::uint64_t cursor_ = 0;
  std::uint64_t batch_ = 100;
  std::uint64_t sent_ = 0;  // keys written so far (the limit counts them)
  bool last_ = false;       // the write in flight is the last one
};

// ---------------------------------------------------------------------------------------------------------------
// Subscribe: an attached session whose host queues messages for the writer.

class subscribe_call final : public call_base,
                             public grpc::ServerWriteReactor<pb::SubscribeResponse>,
                             public kv::session_host {
 public:
  using request_type = pb::SubscribeRequest;
  using response_type = pb::SubscribeResponse;
  using reactor = grpc::ServerWriteReactor<pb::SubscribeResponse>;
  static constexpr rpc id = rpc::subscribe;
  static grpc::Status validate(const request_type& rq) {
    if (rq.channels_size() == 0 && rq.patterns_size() == 0)
      return invalid("at least one channel or pattern is required");
    return grpc::Status();
  }

  subscribe_call(std::shared_ptr<listener_shared> sh, grpc::CallbackServerContext* sctx, request_type&& rq)
      : call_base(std::move(sh), sctx, id), rq_(std::move(rq)), limit_(shared().opts.subscribe_buffer) {
    sess_.host = this;
    sess_.is_subscriber_only_front_end = true;
    const auto& peer = ctx_.peer();
    sess_.addr = peer.port() ? endpoint_string(peer) : sctx->peer();
    // The confirmation goes first; it is held (not written) until the subscriptions are in place, so that no
    // message can overtake it.
    pb::SubscribeResponse first;
    first.mutable_subscribed();
    queue_.push_back(std::move(first));
  }

  void start() noexcept {
    spawn([this] { return subscribe(); });
  }

  // session_host (called with the store lock held, from any thread): only queue and post. Never throws into the
  // store (the publisher's command): a message that cannot be queued ends this stream instead.
  bool deliver(const kv::pubsub_message& m) noexcept override {
    try {
      std::unique_lock lk(mutex_);
      if (finish_pending_) return true;
      if (queue_.size() >= limit_) {
        lk.unlock();
        schedule_finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                     "subscriber too slow: more than " + std::to_string(limit_) + " messages pending"));
        return false;
      }
      pb::SubscribeResponse r;
      auto* msg = r.mutable_message();
      msg->set_channel(m.channel.data(), m.channel.size());
      if (!m.pattern.empty()) msg->set_pattern(m.pattern.data(), m.pattern.size());
      msg->set_payload(m.payload.data(), m.payload.size());
      queue_.push_back(std::move(r));
      if (!writing_ && !held_ && !pump_posted_) {
        pump_posted_ = true;
        lk.unlock();
        post_pump();
      }
    } catch (...) {
      schedule_finish(exception_status(name(), std::current_exception()));
    }
    return true;
  }
  void kill() noexcept override { schedule_finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "client killed")); }
  buffers buffer_info() const override {
    std::lock_guard lk(mutex_);
    buffers b;
    b.oll = queue_.size();
    return b;
  }

  void OnWriteDone(bool ok) noexcept override {
    {
      std::lock_guard lk(mutex_);
      writing_ = false;
      if (!ok && !finish_pending_) {
        finish_pending_ = true;
        final_ = grpc::Status::CANCELLED;
      }
    }
    pump();
  }
  void OnCancel() noexcept override {
    cancel_in_pipeline();
    force_finish(grpc::Status::CANCELLED);
  }
  void OnDone() noexcept override { done(); }
  /// Never under the store lock: pumps here.
  void force_finish(grpc::Status s) noexcept override {
    if (want_finish(std::move(s))) pump();
  }

 private:
  asio::awaitable<void> subscribe() {
    if (shared().draining.load(std::memory_order_acquire)) {
      force_finish(shutting_down());
      co_return;
    }
    // Detached however the stream ends: early by pump() once finishing, else when the call is destroyed.
    attachment_ = kv::session_guard(*shared().backend, sess_);
    long long count = 0;
    for (int kind = 0; kind < 2; ++kind) {
      const auto& names = kind == 0 ? rq_.channels() : rq_.patterns();
      if (names.empty()) continue;
      std::vector<std::string_view> args;
      args.reserve(static_cast<std::size_t>(names.size()) + 1);
      args.push_back(kind == 0 ? "SUBSCRIBE" : "PSUBSCRIBE");
      for (const auto& n : names) args.push_back(sv(n));
      std::vector<kv::reply_value> replies;
      auto st = co_await exec(args, replies);
      if (!st.ok()) {
        force_finish(std::move(st));
        co_return;
      }
      // Each confirmation is [subscribe, channel, count].
      const auto& last = replies.back();
      if (last.elements.size() == 3) count = last.elements[2].integer;
    }
    {
      std::lock_guard lk(mutex_);
      queue_.front().mutable_subscribed()->set_count(count);
      held_ = false;
    }
    pump();
  }

  /// Records that the stream is to end with `s` (the first such status wins). True when the caller should pump.
  bool want_finish(grpc::Status&& s) noexcept {
    std::lock_guard lk(mutex_);
    if (finish_pending_) return false;
    finish_pending_ = true;
    final_ = std::move(s);
    return true;
  }

  /// Ends the stream with `s` once no write is in flight, from under the store lock (deliver, kill): posts the pump,
  /// which detaches the session (taking the store lock).
  void schedule_finish(grpc::Status s) noexcept {
    if (!want_finish(std::move(s))) return;
    {
      std::lock_guard lk(mutex_);
      if (pump_posted_) return;
      pump_posted_ = true;
    }
    post_pump();
  }

  void post_pump() noexcept {
    try {
      asio::post(ex_, [this, r = ref(this)] {
        {
          std::lock_guard lk(mutex_);
          pump_posted_ = false;
        }
        pump();
      });
    } catch (...) {  // out of memory: the next write's completion, a cancel or the shutdown pumps instead
      {
        std::lock_guard lk(mutex_);
        pump_posted_ = false;
      }
      spdlog::error("grpc: Subscribe could not schedule its writer (out of memory)");
    }
  }

  /// Starts the next write, or finishes when asked to and idle. Never called with the store lock held.
  void pump() noexcept {
    std::unique_lock lk(mutex_);
    if (writing_ || finished_) return;
    if (finish_pending_) {
      finished_ = true;
      grpc::Status s = std::move(final_);
      // Leave the store before the client can see the status, so that a PUBLISH sent after it no longer counts
      // this subscriber (otherwise that waits for OnDone). Only once subscribe() is done with the session
      // (held_ == false); else the attachment's destructor detaches. The store lock is taken without mutex_
      // (deliver() takes them in the other order).
      const bool detach_now = !held_;
      lk.unlock();
      if (detach_now) attachment_.reset();
      if (claim_finish(s)) Finish(std::move(s));
      return;
    }
    if (held_ || queue_.empty()) return;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    lk.unlock();
    StartWrite(&current_);
  }

  request_type rq_;
  const std::size_t limit_;

  mutable std::mutex mutex_;
  std::deque<pb::SubscribeResponse> queue_;
  pb::SubscribeResponse current_;
  bool held_ = true;
  bool writing_ = false;
  bool pump_posted_ = false;
  bool finish_pending_ = false;
  bool finished_ = false;
  grpc::Status final_;
  // Last member: destroyed (detached) first, while the members deliver() uses still exist. Set by subscribe()
  // before held_ = false, reset by the one pump() that finishes once held_ is false.
  kv::session_guard attachment_;
};

/// A streaming call: decodes and validates the request, creates the call and starts it. Whatever is thrown before
/// the call exists finishes the call with exception_status(); after that, the call ends itself.
template <class Call>
typename Call::reactor* serve_stream(const std::shared_ptr<listener_shared>& sh, grpc::CallbackServerContext* c,
                                     const grpc::ByteBuffer* raw) noexcept {
  using reactor = typename Call::reactor;
  try {
    if (sh->draining.load(std::memory_order_acquire)) return finished<reactor>(Call::id, shutting_down());
    typename Call::request_type rq;
    grpc::Status st = parse_request(raw, rq);
    if (st.ok()) st = Call::validate(rq);
    if (!st.ok()) return finished<reactor>(Call::id, std::move(st));
    auto* call = new Call(sh, c, std::move(rq));
    call->start();
    return call;
  } catch (...) {
    return finished<reactor>(Call::id, exception_status(rpc_names[static_cast<std::size_t>(Call::id)],
                                                        std::current_exception()));
  }
}

template <class Call>
std::unique_ptr<grpc::internal::MethodHandler> handler_for(std::shared_ptr<listener_shared> sh) {
  using handler = grpc::internal::CallbackServerStreamingHandler<grpc::ByteBuffer, typename Call::response_type>;
  return std::make_unique<handler>([sh = std::move(sh)](grpc::CallbackServerContext* c, const grpc::ByteBuffer* rq) {
    return serve_stream<Call>(sh, c, rq);
  });
}

}  // namespace

std::unique_ptr<grpc::internal::MethodHandler> make_stream_handler(rpc r, std::shared_ptr<listener_shared> sh) {
  if (r == rpc::scan) return handler_for<scan_call>(std::move(sh));
  if (r == rpc::subscribe) return handler_for<subscribe_call>(std::move(sh));
  return nullptr;
}

}  // namespace turret::grpc_frontend
