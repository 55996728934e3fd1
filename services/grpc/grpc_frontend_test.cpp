// The gRPC front end on its own (no turretd): a listener on port 0 over a real runtime, the in-process backend and a pipeline, called
// with grpc++'s generated synchronous stub. Cross-protocol and turretd-level behaviour: tests/integration/test_grpc*.py.
#include <services/grpc/grpc_listener.hpp>
#include <services/grpc/grpc_status.hpp>
#include <turret/kv/local.hpp>
#include <turret/middleware/timeout.hpp>
#include <turret/ops/command_probe.hpp>

#include <turret/kv/v1/kv.grpc.pb.h>

#include <boost/asio/error.hpp>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <new>
#include <set>
#include <stdexcept>
#include <thread>

namespace turret::grpc_frontend {
namespace {

namespace pb = ::turret::kv::v1;
using namespace std::chrono_literals;

class grpc_frontend_test : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = std::make_shared<kv::local_backend>(kv::store_options{});
    kv::pipeline_service pipe = make_pipeline();
    kv::listener_env env{"grpc", {boost::asio::ip::make_address("127.0.0.1"), 0}, grpc_options{}, rt_,
                              shutdown_, backend_, pipe, &state_};
    listener_ = make_listener(std::move(env));
    listener_->start();
    thread_ = std::thread([this] { rt_.run(); });
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(listener_->local_endpoint().port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = pb::KV::NewStub(channel_);
  }
  virtual kv::pipeline_service make_pipeline() {
    return backend_->service();
  }

  void TearDown() override {
    listener_->stop_accepting();
    rt_.stop();
    thread_.join();
    listener_.reset();
  }

  runtime rt_{2};
  shutdown_coordinator shutdown_{1s};
  std::atomic<server::server_state> state_{server::server_state::ready};
  std::shared_ptr<kv::local_backend> backend_;
  /// PUBSUB NUMSUB `channel`, asked the way a client would.
  long long numsub(std::string_view channel) { return backend_->run({"PUBSUB", "NUMSUB", channel}).elements.at(1).integer; }
  std::unique_ptr<server::listener> listener_;
  std::thread thread_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::KV::Stub> stub_;
};

TEST_F(grpc_frontend_test, set_get_not_found) {
  grpc::ClientContext c1;
  pb::SetRequest set;
  set.set_key(std::string("k\0x", 3));
  set.set_value(std::string("\xff\0v", 3));
  pb::SetResponse set_rs;
  ASSERT_TRUE(stub_->Set(&c1, set, &set_rs).ok());

  grpc::ClientContext c2;
  pb::GetRequest get;
  get.set_key(std::string("k\0x", 3));
  pb::GetResponse get_rs;
  ASSERT_TRUE(stub_->Get(&c2, get, &get_rs).ok());
  EXPECT_EQ(get_rs.value(), std::string("\xff\0v", 3));

  grpc::ClientContext c3;
  get.set_key("missing");
  EXPECT_EQ(stub_->Get(&c3, get, &get_rs).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(grpc_frontend_test, conditions_and_errors) {
  pb::SetRequest set;
  set.set_key("c");
  set.set_value("1");
  set.set_condition(pb::CONDITION_IF_EXISTS);
  pb::SetResponse rs;
  {
    grpc::ClientContext c;
    EXPECT_EQ(stub_->Set(&c, set, &rs).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  set.set_condition(pb::CONDITION_IF_NOT_EXISTS);
  {
    grpc::ClientContext c;
    EXPECT_TRUE(stub_->Set(&c, set, &rs).ok());
  }
  set.set_return_previous(true);
  set.set_condition(pb::CONDITION_UNSPECIFIED);
  set.set_value("2");
  {
    grpc::ClientContext c;
    ASSERT_TRUE(stub_->Set(&c, set, &rs).ok());
    EXPECT_TRUE(rs.had_previous());
    EXPECT_EQ(rs.previous(), "1");
  }
  set.set_ttl_ms(-1);
  {
    grpc::ClientContext c;
    EXPECT_EQ(stub_->Set(&c, set, &rs).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  pb::IncrRequest inc;
  inc.set_key("c");
  inc.set_delta(40);
  pb::IncrResponse inc_rs;
  {
    grpc::ClientContext c;
    ASSERT_TRUE(stub_->Incr(&c, inc, &inc_rs).ok());
    EXPECT_EQ(inc_rs.value(), 42);
  }
  pb::SetRequest text;
  text.set_key("t");
  text.set_value("abc");
  {
    grpc::ClientContext c;
    ASSERT_TRUE(stub_->Set(&c, text, &rs).ok());
  }
  inc.set_key("t");
  {
    grpc::ClientContext c;
    EXPECT_EQ(stub_->Incr(&c, inc, &inc_rs).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
}

TEST_F(grpc_frontend_test, ttl_scan_delete) {
  for (int i = 0; i < 250; ++i) {
    grpc::ClientContext c;
    pb::SetRequest set;
    set.set_key("scan:" + std::to_string(i));
    set.set_value("v");
    if (i == 0) set.set_ttl_ms(100000);
    pb::SetResponse rs;
    ASSERT_TRUE(stub_->Set(&c, set, &rs).ok());
  }
  {
    grpc::ClientContext c;
    pb::TtlRequest rq;
    rq.set_key("scan:0");
    pb::TtlResponse rs;
    ASSERT_TRUE(stub_->Ttl(&c, rq, &rs).ok());
    EXPECT_GT(rs.ttl_ms(), 90000);
  }
  {
    grpc::ClientContext c;
    pb::ScanRequest rq;
    rq.set_prefix("scan:");
    rq.set_batch_size(10);
    auto reader = stub_->Scan(&c, rq);
    pb::ScanResponse rs;
    std::set<std::string> keys;
    int batches = 0;
    while (reader->Read(&rs)) {
      ++batches;
      for (const auto& k : rs.keys()) keys.insert(k);
    }
    EXPECT_TRUE(reader->Finish().ok());
    EXPECT_EQ(keys.size(), 250u);
    EXPECT_GT(batches, 1);
  }
  {
    grpc::ClientContext c;
    pb::DeleteRequest rq;
    rq.add_keys("scan:1");
    rq.add_keys("scan:2");
    rq.add_keys("nope");
    pb::DeleteResponse rs;
    ASSERT_TRUE(stub_->Delete(&c, rq, &rs).ok());
    EXPECT_EQ(rs.deleted(), 2);
  }
}

TEST_F(grpc_frontend_test, subscribe_receives_publish_and_cancel_ends_it) {
  grpc::ClientContext sc;
  pb::SubscribeRequest sub;
  sub.add_channels("news");
  auto reader = stub_->Subscribe(&sc, sub);
  pb::SubscribeResponse ev;
  ASSERT_TRUE(reader->Read(&ev));
  ASSERT_TRUE(ev.has_subscribed());
  EXPECT_EQ(ev.subscribed().count(), 1);
  {
    grpc::ClientContext c;
    pb::PublishRequest rq;
    rq.set_channel("news");
    rq.set_message(std::string("hi\0", 3));
    pb::PublishResponse rs;
    ASSERT_TRUE(stub_->Publish(&c, rq, &rs).ok());
    EXPECT_EQ(rs.receivers(), 1);
  }
  ASSERT_TRUE(reader->Read(&ev));
  ASSERT_TRUE(ev.has_message());
  EXPECT_EQ(ev.message().channel(), "news");
  EXPECT_EQ(ev.message().payload(), std::string("hi\0", 3));
  sc.TryCancel();
  while (reader->Read(&ev)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The session is detached once the stream is done.
  for (int i = 0; i < 100 && numsub("news") != 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(numsub("news"), 0u);
}

TEST_F(grpc_frontend_test, draining_refuses_new_calls) {
  listener_->stop_accepting();
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + 2s);
  pb::GetRequest rq;
  rq.set_key("k");
  pb::GetResponse rs;
  const auto code = stub_->Get(&c, rq, &rs).error_code();
  EXPECT_TRUE(code == grpc::StatusCode::UNAVAILABLE) << code;
}

/// A pass-through service in front of the core that notes the deadline each request carries.
struct deadline_probe {
  using response_type = kv::response;
  using permit_type = any_permit;

  kv::pipeline_service inner;
  std::shared_ptr<std::atomic<long long>> ms_left;  // -1: no deadline

  awaitable<result<any_permit>> ready(request_context& ctx) { return inner.ready(ctx); }
  awaitable<result<kv::response>> call(any_permit p, kv::request& r) {
    note(r);
    co_return co_await inner.call(std::move(p), r);
  }
  std::optional<result<kv::response>> try_call_now(kv::request& r) {
    note(r);
    return inner.try_call_now(r);
  }
  void note(const kv::request& r) {
    using clock = request_context::clock;
    ms_left->store(r.ctx.deadline == clock::time_point::max()
                       ? -1
                       : std::chrono::duration_cast<std::chrono::milliseconds>(r.ctx.deadline - clock::now()).count());
  }
};

class grpc_deadline_test : public grpc_frontend_test {
 protected:
  kv::pipeline_service make_pipeline() override {
    return kv::pipeline_service(deadline_probe{backend_->service(), ms_left_});
  }
  std::shared_ptr<std::atomic<long long>> ms_left_ = std::make_shared<std::atomic<long long>>(-2);
};

TEST_F(grpc_deadline_test, the_clients_deadline_is_the_requests_deadline) {
  pb::GetRequest rq;
  rq.set_key("k");
  pb::GetResponse rs;
  {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + 5s);
    EXPECT_EQ(stub_->Get(&c, rq, &rs).error_code(), grpc::StatusCode::NOT_FOUND);
    const long long left = ms_left_->load();
    EXPECT_GT(left, 3000);
    EXPECT_LE(left, 5100);  // grpc-timeout travels rounded up (and the two clocks differ)
  }
  {
    grpc::ClientContext c;  // no deadline
    EXPECT_EQ(stub_->Get(&c, rq, &rs).error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(ms_left_->load(), -1);
  }
}

/// A service with the synchronous fast path that always declines it ("would suspend"): calls start inline, then
/// continue on the runtime with ready() + call().
struct declining_service {
  using response_type = kv::response;
  using permit_type = any_permit;

  kv::pipeline_service inner;

  awaitable<result<any_permit>> ready(request_context& ctx) { return inner.ready(ctx); }
  awaitable<result<kv::response>> call(any_permit p, kv::request& r) { co_return co_await inner.call(std::move(p), r); }
  std::optional<result<kv::response>> try_call_now(kv::request&) { return std::nullopt; }
};

class grpc_declining_test : public grpc_frontend_test {
 protected:
  kv::pipeline_service make_pipeline() override {
    return kv::pipeline_service(declining_service{backend_->service()});
  }
};

TEST_F(grpc_declining_test, a_call_continued_on_the_runtime_echoes_its_request_id_once) {
  pb::SetRequest set;
  set.set_key("k");
  set.set_value("v");
  pb::SetResponse set_rs;
  grpc::ClientContext c1;
  ASSERT_TRUE(stub_->Set(&c1, set, &set_rs).ok());

  grpc::ClientContext c2;
  c2.AddMetadata("x-request-id", "req-42");
  pb::GetRequest rq;
  rq.set_key("k");
  pb::GetResponse rs;
  ASSERT_TRUE(stub_->Get(&c2, rq, &rs).ok());
  EXPECT_EQ(rs.value(), "v");
  const auto& md = c2.GetServerInitialMetadata();
  EXPECT_EQ(md.count("x-request-id"), 1u);
  auto it = md.find("x-request-id");
  ASSERT_NE(it, md.end());
  EXPECT_EQ(std::string(it->second.data(), it->second.size()), "req-42");
}

/// A command_probe in front of the backend: immediate (calls run inline on grpc's thread) or declining the fast path
/// (calls continue on the runtime with ready() + call()).
class grpc_probed_test : public grpc_frontend_test, public ::testing::WithParamInterface<bool> {
 protected:
  kv::pipeline_service make_pipeline() override {
    return kv::pipeline_service(ops::testing::command_probe{backend_->service(), log_, GetParam()});
  }
  std::shared_ptr<ops::testing::command_log> log_ = std::make_shared<ops::testing::command_log>();
};

TEST_P(grpc_probed_test, every_command_carries_its_resolved_metadata_to_the_layers) {
  {
    grpc::ClientContext c;
    pb::SetRequest rq;
    rq.set_key("k");
    rq.set_value("v");
    pb::SetResponse rs;
    ASSERT_TRUE(stub_->Set(&c, rq, &rs).ok());
  }
  {
    grpc::ClientContext c;
    pb::GetRequest rq;
    rq.set_key("k");
    pb::GetResponse rs;
    ASSERT_TRUE(stub_->Get(&c, rq, &rs).ok());
  }
  {
    grpc::ClientContext c;
    pb::PersistRequest rq;
    rq.set_key("k");
    pb::PersistResponse rs;
    ASSERT_TRUE(stub_->Persist(&c, rq, &rs).ok());
    EXPECT_FALSE(rs.removed());
  }
  {
    grpc::ClientContext c;
    pb::MGetRequest rq;
    rq.add_keys("k");
    rq.add_keys("j");
    pb::MGetResponse rs;
    ASSERT_TRUE(stub_->MGet(&c, rq, &rs).ok());
  }
  {
    grpc::ClientContext c;
    pb::ScanRequest rq;
    rq.set_prefix("k");
    auto reader = stub_->Scan(&c, rq);
    pb::ScanResponse rs;
    while (reader->Read(&rs)) {
    }
    ASSERT_TRUE(reader->Finish().ok());
  }
  const ops::testing::expected_command want[] = {
      {"set", {"k"}, true, traffic_class::write},  // SET k v (no GET, no NX): a repeat is the same
      {"get", {"k"}, true, traffic_class::read},
      {"persist", {"k"}, false, traffic_class::write},  // its count differs on a repeat
      {"exists", {"k"}, true, traffic_class::read},     // PERSIST removed nothing: the key exists?
      {"mget", {"k", "j"}, true, traffic_class::read},
      {"scan", {}, true, traffic_class::read},  // a stream: on the runtime, the fast path first
  };
  const auto seen = log_->take();
  ASSERT_EQ(seen.size(), std::size(want));
  for (std::size_t i = 0; i < seen.size(); ++i)
    EXPECT_EQ(ops::testing::differences(seen[i], want[i], GetParam()), "") << want[i].name;
}

INSTANTIATE_TEST_SUITE_P(paths, grpc_probed_test, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "inline" : "on_the_runtime"; });

/// Finding 5 of issue 8: a Scan cut short by `limit` returned cursor 0, or a cursor past the keys it cut, and paging
/// lost keys. Every combination below must page through all 50 keys, each call within its limit (or, when the first
/// SCAN step of the call holds more keys than the limit, that step alone: kv.proto's cursor contract).
TEST_F(grpc_frontend_test, scan_paging_with_a_limit_returns_every_key) {
  std::set<std::string> all;
  for (int i = 0; i < 50; ++i) {
    grpc::ClientContext c;
    pb::SetRequest set;
    set.set_key((i < 10 ? "key0" : "key") + std::to_string(i));
    set.set_value("v");
    pb::SetResponse rs;
    ASSERT_TRUE(stub_->Set(&c, set, &rs).ok());
    all.insert(set.key());
  }
  {
    grpc::ClientContext c;
    pb::ScanRequest rq;
    rq.set_limit(5);
    auto reader = stub_->Scan(&c, rq);
    pb::ScanResponse rs;
    std::size_t n = 0;
    std::uint64_t cursor = 0;
    while (reader->Read(&rs)) {
      n += static_cast<std::size_t>(rs.keys_size());
      cursor = rs.cursor();
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_GE(n, 1u);
    EXPECT_LT(n, 50u);
    EXPECT_NE(cursor, 0u) << "cursor 0 although the keyspace was not covered";
  }
  for (auto [limit, batch] : {std::pair{5, 2}, {3, 10}, {7, 0}, {1, 1}, {50, 3}}) {
    std::set<std::string> got;
    std::uint64_t cursor = 0;
    int calls = 0;
    do {
      ASSERT_LT(++calls, 200) << "limit " << limit << " batch " << batch << ": the scan does not end";
      grpc::ClientContext c;
      pb::ScanRequest rq;
      rq.set_limit(static_cast<std::uint64_t>(limit));
      rq.set_batch_size(static_cast<std::uint32_t>(batch));
      rq.set_cursor(cursor);
      auto reader = stub_->Scan(&c, rq);
      pb::ScanResponse rs;
      int n = 0, with_keys = 0;
      while (reader->Read(&rs)) {
        n += rs.keys_size();
        with_keys += rs.keys_size() != 0;
        got.insert(rs.keys().begin(), rs.keys().end());
        cursor = rs.cursor();
      }
      ASSERT_TRUE(reader->Finish().ok());
      if (n > limit) {
        EXPECT_EQ(with_keys, 1) << "over the limit, yet more than the call's first step";
      }
    } while (cursor != 0);
    EXPECT_EQ(got, all) << "limit " << limit << " batch " << batch;
  }
}

/// In front of the core: throws for a command with an argument starting with "throw:" (SET excepted, so that tests
/// can create such keys): "throw:oom" std::bad_alloc, "throw:length" std::length_error, "throw:int" an int,
/// "throw:partial" std::runtime_error after writing part of a reply, "throw:after" std::runtime_error after the
/// core ran the command, any other std::runtime_error. A SCAN with a pattern starting with "throw:later" throws
/// only after its first batch (cursor not 0). `decline`: the synchronous
/// fast path always declines, so calls run (and throw) on the runtime.
struct throwing_service {
  using response_type = kv::response;
  using permit_type = any_permit;

  kv::pipeline_service inner;
  bool decline = false;

  /// `ran`: the inner service has run the command ("throw:after" throws then; everything else before).
  static void maybe_throw(kv::request& r, bool ran) {
    if (r.args.empty() || r.args[0] == "SET") return;
    for (std::string_view a : r.args.subspan(1)) {
      if (!a.starts_with("throw:")) continue;
      if (a.starts_with("throw:after")) {
        if (ran) throw std::runtime_error("after");
      } else if (ran) {
        continue;
      } else if (a.starts_with("throw:later")) {
        if (r.args[1] != "0") throw std::runtime_error("later");
      } else if (a.starts_with("throw:oom")) {
        throw std::bad_alloc();
      } else if (a.starts_with("throw:length")) {
        throw std::length_error("too long");
      } else if (a.starts_with("throw:int")) {
        throw 42;
      } else if (a.starts_with("throw:partial")) {
        r.out.array(2);
        r.out.bulk("half");
        throw std::runtime_error("partial");
      } else {
        throw std::runtime_error("boom");
      }
    }
  }

  awaitable<result<any_permit>> ready(request_context& ctx) { return inner.ready(ctx); }
  awaitable<result<kv::response>> call(any_permit p, kv::request& r) {
    maybe_throw(r, false);
    auto res = co_await inner.call(std::move(p), r);
    maybe_throw(r, true);
    co_return res;
  }
  std::optional<result<kv::response>> try_call_now(kv::request& r) {
    if (decline) return std::nullopt;
    maybe_throw(r, false);
    auto res = inner.try_call_now(r);
    maybe_throw(r, true);
    return res;
  }
};

/// The parameter: whether the calls throw on the runtime (true) or inline on grpc's thread (false).
class grpc_throwing_test : public grpc_frontend_test, public ::testing::WithParamInterface<bool> {
 protected:
  kv::pipeline_service make_pipeline() override {
    return kv::pipeline_service(throwing_service{backend_->service(), GetParam()});
  }

  /// Every call ended: unlisted (OnDone ran) and destroyed (its shutdown tracker released), no session left.
  void expect_no_call_left() {
    for (int i = 0; i < 200 && (listener_->connections() != 0 || shutdown_.in_flight() != 0 ||
                                backend_->summary().clients != 0);
         ++i)
      std::this_thread::sleep_for(10ms);
    EXPECT_EQ(listener_->connections(), 0u);
    EXPECT_EQ(shutdown_.in_flight(), 0u);
    EXPECT_EQ(backend_->summary().clients, 0u);
  }

  grpc::Status get(const std::string& key, pb::GetResponse* rs = nullptr) {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + 5s);
    pb::GetRequest rq;
    rq.set_key(key);
    pb::GetResponse local;
    return stub_->Get(&c, rq, rs ? rs : &local);
  }
};

TEST_P(grpc_throwing_test, a_unary_call_that_throws_finishes_once_with_a_status) {
  struct expected {
    const char* key;
    grpc::StatusCode code;
  };
  for (auto [key, code] : {expected{"throw:oom", grpc::StatusCode::RESOURCE_EXHAUSTED},
                           expected{"throw:after", grpc::StatusCode::INTERNAL},
                           expected{"throw:length", grpc::StatusCode::RESOURCE_EXHAUSTED},
                           expected{"throw:boom", grpc::StatusCode::INTERNAL},
                           expected{"throw:int", grpc::StatusCode::INTERNAL},
                           expected{"throw:partial", grpc::StatusCode::INTERNAL}}) {
    const grpc::Status st = get(key);
    EXPECT_EQ(st.error_code(), code) << key << ": " << st.error_message();
    EXPECT_FALSE(st.error_message().empty()) << key;
  }
  // Multi-step calls (PERSIST, then PTTL) and the server afterwards.
  {
    grpc::ClientContext c;
    pb::PersistRequest rq;
    rq.set_key("throw:boom");
    pb::PersistResponse rs;
    EXPECT_EQ(stub_->Persist(&c, rq, &rs).error_code(), grpc::StatusCode::INTERNAL);
  }
  grpc::ClientContext c;
  pb::SetRequest set;
  set.set_key("k");
  set.set_value("v");
  pb::SetResponse set_rs;
  ASSERT_TRUE(stub_->Set(&c, set, &set_rs).ok());
  pb::GetResponse rs;
  ASSERT_TRUE(get("k", &rs).ok());
  EXPECT_EQ(rs.value(), "v");
  expect_no_call_left();
}

TEST_P(grpc_throwing_test, a_scan_that_throws_ends_with_internal) {
  {
    grpc::ClientContext c;
    pb::ScanRequest rq;
    rq.set_prefix("throw:x");
    auto reader = stub_->Scan(&c, rq);
    pb::ScanResponse rs;
    while (reader->Read(&rs)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INTERNAL);
  }
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext c;
    pb::SetRequest set;
    set.set_key("throw:later:" + std::to_string(i));
    set.set_value("v");
    pb::SetResponse rs;
    ASSERT_TRUE(stub_->Set(&c, set, &rs).ok());
  }
  {
    grpc::ClientContext c;
    pb::ScanRequest rq;
    rq.set_prefix("throw:later:");
    rq.set_batch_size(5);
    auto reader = stub_->Scan(&c, rq);
    pb::ScanResponse rs;
    int batches = 0;
    while (reader->Read(&rs)) ++batches;
    EXPECT_EQ(batches, 1);  // the first batch; the second SCAN throws
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INTERNAL);
  }
  expect_no_call_left();
}

TEST_P(grpc_throwing_test, a_subscribe_that_throws_ends_and_detaches_its_session) {
  for (const char* channel : {"throw:boom", "throw:oom", "throw:after"}) {
    grpc::ClientContext c;
    pb::SubscribeRequest rq;
    rq.add_channels("fine");
    rq.add_channels(channel);
    auto reader = stub_->Subscribe(&c, rq);
    pb::SubscribeResponse ev;
    EXPECT_FALSE(reader->Read(&ev));  // the confirmation is held until SUBSCRIBE succeeded
    const auto code = reader->Finish().error_code();
    EXPECT_EQ(code, std::string_view(channel) == "throw:oom" ? grpc::StatusCode::RESOURCE_EXHAUSTED
                                                              : grpc::StatusCode::INTERNAL);
  }
  expect_no_call_left();
  EXPECT_EQ(numsub("fine"), 0u);
}

INSTANTIATE_TEST_SUITE_P(inline_and_on_the_runtime, grpc_throwing_test, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "on_the_runtime" : "inline"; });

TEST(grpc_status_mapping, pipeline_and_reply_errors) {
  EXPECT_EQ(pipeline_error_code(timeout_errc::elapsed, false), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(pipeline_error_code(boost::asio::error::operation_aborted, false), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(pipeline_error_code(boost::asio::error::operation_aborted, true), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(reply_error_code("WRONGTYPE Operation against a key holding the wrong kind of value"),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(reply_error_code("ERR value is not an integer or out of range"), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(reply_error_code("ERR syntax error"), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(reply_error_code("NOAUTH Authentication required."), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(reply_error_code("OOM command not allowed when used memory > 'maxmemory'."),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(grpc_status_mapping, status_code_names) {
  EXPECT_EQ(status_code_name(grpc::StatusCode::OK), "OK");
  EXPECT_EQ(status_code_name(grpc::StatusCode::NOT_FOUND), "NOT_FOUND");
  EXPECT_EQ(status_code_name(grpc::StatusCode::FAILED_PRECONDITION), "FAILED_PRECONDITION");
  EXPECT_EQ(status_code_name(grpc::StatusCode::UNAUTHENTICATED), "UNAUTHENTICATED");
  // An unnamed code within the enum's value range (-32..31: a value outside it, such as 99, is undefined behaviour).
  EXPECT_EQ(status_code_name(static_cast<grpc::StatusCode>(20)), "UNKNOWN");
}

}  // namespace
}  // namespace turret::grpc_frontend
