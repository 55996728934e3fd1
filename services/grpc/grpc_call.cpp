#include <services/grpc/grpc_call.hpp>
#include <services/grpc/grpc_status.hpp>
#include <turret/error_mapping.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <grpcpp/support/proto_buffer_reader.h>
#include <spdlog/spdlog.h>
#include <turret/metrics.hpp>

#include <google/protobuf/message_lite.h>

#include <limits>
#include <new>
#include <stdexcept>

namespace turret::grpc_frontend {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t status_code_count = 17;  // OK .. UNAUTHENTICATED

/// grpc's peer string ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000") as an endpoint; unspecified when not TCP.
tcp::endpoint parse_peer(std::string_view p) {
  std::string_view host;
  if (p.substr(0, 5) == "ipv4:") {
    p.remove_prefix(5);
    const auto colon = p.rfind(':');
    if (colon == std::string_view::npos) return {};
    host = p.substr(0, colon);
    p.remove_prefix(colon + 1);
  } else if (p.substr(0, 5) == "ipv6:") {
    p.remove_prefix(5);
    const auto close = p.find("]:");
    if (p.empty() || p[0] != '[' || close == std::string_view::npos) return {};
    host = p.substr(1, close - 1);
    p.remove_prefix(close + 2);
  } else {
    return {};
  }
  unsigned short port = 0;
  std::from_chars(p.data(), p.data() + p.size(), port);
  // Every call parses its peer: remember the last host per thread (clients mostly share one address; the port
  // differs per connection), which saves make_address's inet_pton calls.
  thread_local std::string last_host;
  thread_local asio::ip::address last_addr;
  if (host.empty() || host != std::string_view(last_host)) {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(std::string(host), ec);
    if (ec) return {};
    last_host.assign(host);
    last_addr = addr;
  }
  return {last_addr, port};
}

// grpc++ 1.51 offers a call's client metadata only as a std::multimap (ServerContextBase::client_metadata()), built
// on first access: a tree node allocated per entry, per call, to look up one key. The array it is built from
// (grpc::internal::MetadataMap::arr(), public) sits in a private member. client_metadata_map() reaches that member
// through an explicit instantiation, where access checking does not apply ([temp.spec.general]/6); if grpc++ renames
// or retypes the member this stops compiling rather than misbehaving.
grpc::internal::MetadataMap& client_metadata_map(grpc::ServerContextBase& c) noexcept;
template <grpc::internal::MetadataMap grpc::ServerContextBase::*Member>
struct client_metadata_access {
  friend grpc::internal::MetadataMap& client_metadata_map(grpc::ServerContextBase& c) noexcept { return c.*Member; }
};
template struct client_metadata_access<&grpc::ServerContextBase::client_metadata_>;

/// The value of the client's metadata entry `key` (lower case, as HTTP/2 sends it); empty when absent. Reads the
/// array grpc received, without building client_metadata()'s multimap.
std::string_view find_client_metadata(grpc::ServerContextBase& c, std::string_view key) noexcept {
  const grpc_metadata_array& arr = *client_metadata_map(c).arr();
  for (std::size_t i = 0; i < arr.count; ++i) {
    const grpc_metadata& m = arr.metadata[i];
    const std::string_view k(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(m.key)), GRPC_SLICE_LENGTH(m.key));
    if (k == key)
      return {reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(m.value)), GRPC_SLICE_LENGTH(m.value)};
  }
  return {};
}

/// The peer of a call, for request_context::peer() (resolved on first use: grpc++ builds the string per call).
tcp::endpoint resolve_peer(const void* sctx) {
  return parse_peer(static_cast<const grpc::CallbackServerContext*>(sctx)->peer());
}

}  // namespace

std::string endpoint_string(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

void record_call(rpc r, grpc::StatusCode code, steady::time_point start) noexcept {
  // The series are looked up once per thread (families live as long as the process).
  struct series_cache {
    std::array<std::array<metrics::counter*, status_code_count>, rpc_names.size()> requests{};
    std::array<metrics::histogram*, rpc_names.size()> duration{};
  };
  thread_local series_cache cache;
  const auto ri = static_cast<std::size_t>(r);
  auto ci = static_cast<std::size_t>(code);
  if (ci >= status_code_count) ci = static_cast<std::size_t>(grpc::StatusCode::UNKNOWN);
  metrics::counter*& requests = cache.requests[ri][ci];
  metrics::histogram*& duration = cache.duration[ri];
  if (!requests || !duration) [[unlikely]] {
    try {
      auto& m = metrics::request_metrics::get();
      requests = &m.requests.with({"grpc", rpc_names[ri], status_code_name(static_cast<grpc::StatusCode>(ci))});
      duration = &m.duration.with({"grpc", rpc_names[ri]});
    } catch (...) {  // a series could not be created (out of memory): this call goes uncounted
      return;
    }
  }
  requests->inc();
  duration->observe(std::chrono::duration<double>(steady::now() - start).count());
}

grpc::Status parse_request(const grpc::ByteBuffer* raw, google::protobuf::MessageLite& msg) {
  if (raw == nullptr || !raw->Valid()) return invalid("request message missing");
  // The common case, one uncompressed slice, parses from the array; otherwise (several slices, or a compressed
  // buffer, which the reader inflates) through grpc's zero-copy stream, as grpc++'s own decoding does.
  grpc::Slice slice;
  bool ok = false;
  if (raw->TrySingleSlice(&slice).ok()) {
    ok = msg.ParseFromArray(slice.begin(), static_cast<int>(slice.size()));
  } else {
    grpc::ByteBuffer copy(*raw);  // the reader needs a mutable buffer; the copy shares the slices
    grpc::ProtoBufferReader reader(&copy);
    ok = reader.status().ok() && msg.ParseFromZeroCopyStream(&reader);
  }
  if (!ok) return invalid("request is not a valid " + msg.GetTypeName() + " message");
  return grpc::Status();
}

grpc::Status exception_status(std::string_view what, std::exception_ptr e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const std::bad_alloc& x) {
    spdlog::error("grpc: {} failed: out of memory ({})", what, x.what());
    return {grpc::StatusCode::RESOURCE_EXHAUSTED, "out of memory"};
  } catch (const std::length_error& x) {
    spdlog::error("grpc: {} failed: allocation too large ({})", what, x.what());
    return {grpc::StatusCode::RESOURCE_EXHAUSTED, "out of memory"};
  } catch (const std::exception& x) {
    spdlog::error("grpc: {} failed: {}", what, x.what());
  } catch (...) {
    spdlog::error("grpc: {} failed: unknown exception", what);
  }
  return {grpc::StatusCode::INTERNAL, "internal error"};
}

void init_call(grpc::CallbackServerContext* sctx, request_context& ctx, kv::session& sess, bool echo) {
  ctx.protocol = "grpc";
  ctx.set_peer_resolver(&resolve_peer, sctx);
  if (auto id = find_client_metadata(*sctx, "x-request-id"); !id.empty() && id.size() <= 128) {
    ctx.set_request_id(std::string(id));
    if (echo) sctx->AddInitialMetadata("x-request-id", ctx.request_id());
  }
  // The call's credentials for an auth layer ("Bearer <token>" / "Basic <base64>"): a view into grpc's metadata
  // array, valid for the call.
  ctx.credentials = find_client_metadata(*sctx, "authorization");
  // No deadline is gpr_inf_future (tv_sec INT64_MAX): checked on the raw value, deadline() converts it first.
  if (sctx->raw_deadline().tv_sec != std::numeric_limits<std::int64_t>::max()) {
    const auto left = sctx->deadline() - std::chrono::system_clock::now();
    ctx.deadline = request_context::clock::now() + std::chrono::duration_cast<request_context::clock::duration>(left);
  }
  sess.protocol_name = "grpc";
  sess.authenticated = false;
}

grpc::Status pipeline_status(listener_shared& sh, grpc::CallbackServerContext* sctx, request_context& ctx,
                             const error_code& ec, std::string_view command) {
  if (sctx->IsCancelled()) return grpc::Status::CANCELLED;
  const bool late = request_context::clock::now() >= ctx.deadline;
  const grpc_error e = to_grpc_error(ec, late);
  spdlog::debug("grpc {}: request_id={} {} failed: {}", sh.name, ctx.request_id(), command, ec.message());
  return grpc::Status(static_cast<grpc::StatusCode>(e.code), e.message);
}

kv::command_meter& command_meter() {
  thread_local kv::command_meter meter("grpc");
  return meter;
}

grpc::Status replies_status(const std::vector<kv::reply_value>& out) {
  for (const auto& v : out) {
    if (v.is_error()) return grpc::Status(reply_error_code(v.str), v.str);
  }
  if (out.empty()) return grpc::Status(grpc::StatusCode::INTERNAL, "no reply");
  return grpc::Status();
}

void listener_shared::add(call_base* c) {
  std::lock_guard lk(mutex);
  c->next_ = head;
  if (head) head->prev_ = c;
  head = c;
  c->linked_ = true;
  ++open;
}

void listener_shared::remove(call_base* c) noexcept {
  std::lock_guard lk(mutex);
  if (!c->linked_) return;
  if (c->prev_) c->prev_->next_ = c->next_;
  else if (head == c) head = c->next_;
  if (c->next_) c->next_->prev_ = c->prev_;
  c->prev_ = c->next_ = nullptr;
  c->linked_ = false;
  --open;
}

call_base::call_base(std::shared_ptr<listener_shared> sh, grpc::CallbackServerContext* sctx, rpc r,
                     steady::time_point start, bool echoed, kv::pipeline_handle_type::snapshot pipeline)
    : sh_(std::move(sh)),
      pipeline_(pipeline ? std::move(pipeline) : sh_->pipeline.load()),
      sctx_(sctx),
      ex_(sh_->rt.next_executor()),
      track_(sh_->shutdown.track()),
      rpc_(r),
      start_(start) {
  init_call(sctx, ctx_, sess_, !echoed);
  sh_->add(this);
}

// A call normally leaves the list at OnDone; this covers one whose derived constructor threw after it was listed.
call_base::~call_base() { sh_->remove(this); }

void call_base::cancel_in_pipeline() noexcept {
  try {
    asio::post(ex_, [this, r = ref(this)] { ctx_.cancel(); });
  } catch (...) {  // the call still ends, at its deadline or when its pipeline answers
    spdlog::warn("grpc: could not cancel a {} call in the pipeline (out of memory)", name());
  }
}

asio::awaitable<grpc::Status> call_base::exec(std::span<const std::string_view> args,
                                              std::vector<kv::reply_value>& out) {
  kv::value_reply_builder builder(sess_.resp);
  const result<kv::response> r = co_await ops::exec(target(), args, builder);
  if (!r) co_return pipeline_status(*sh_, sctx_, ctx_, r.error(), args[0]);
  out = builder.take();
  co_return replies_status(out);
}

}  // namespace turret::grpc_frontend
