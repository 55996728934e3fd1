#pragma once
// One RESP client connection (internal to the RESP front end).
//
// Threading: a connection lives on ONE io_context, run by one thread (turret::runtime gives each worker thread its
// own context), so its buffers and state need no locks. The exceptions are the session_host entry points, which the
// key-value core calls under the store lock from ANY thread: deliver() (pub/sub messages) and kill(). They touch only
// the mutex-protected outbox and atomics, and post work to the connection's own executor.
//
// Request path (the hot loop of run()):
//   async_read_some into the input buffer (one recv per batch, plus an occasional EAGAIN recv: see serve())
//   -> parse every complete command in place (zero copy: arguments are views into the input buffer)
//   -> for each: request_context reused, kv::request on the stack, pipeline.ready()+call() (the kv core executes
//      synchronously under the store lock), reply bytes appended to one output string; or, where the pipeline
//      supports it (an upstream backend), the command is started and its reply collected once the started commands
//      of the batch are answered (started_batch.hpp): a proxied batch goes upstream as one pipeline
//   -> one non-blocking send() of the whole batch; only when the socket buffer is full does it fall back to an
//      asynchronous write (and stop reading: a client that does not read its replies gets no more processing).
//
// Pub/sub delivery: a message for this session arriving from another thread is encoded into `outbox_` and the
// connection is woken with a post(). If the connection is waiting for input, the wake-up writes the outbox at once
// (a write may run concurrently with the pending read); otherwise the next flush picks it up. A message produced by
// the connection's own command (PUBLISH to itself, a keyspace event of its own write) is appended directly to the
// reply buffer, so it precedes the command's reply exactly as in Redis.
#include <services/resp/resp_options.hpp>
#include <services/resp/resp_reply_builder.hpp>
#include <services/resp/started_batch.hpp>
#include <turret/kv/backend.hpp>
#include <turret/kv/dispatch.hpp>
#include <turret/kv/frontend.hpp>
#include <turret/kv/session.hpp>
#include <turret/resp/parser.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>

namespace turret::resp_frontend {

class connection;

/// State shared by a listener and its connections (connections keep it alive: they may outlive the listener
/// object while their coroutines unwind).
struct listener_shared {
  std::string name;
  resp_options opts;
  resp::parser_options parser_opts;
  kv::pipeline_handle_type pipeline;
  std::shared_ptr<kv::backend> backend;
  shutdown_coordinator* shutdown = nullptr;
  std::string laddr;                       ///< "ip:port" of the bound socket (CLIENT LIST laddr=)

  std::atomic<std::size_t> clients{0};     ///< open connections (maxclients)
  std::atomic<bool> draining{false};

  std::mutex mu;                           ///< guards conns
  std::unordered_set<connection*> conns;   ///< every live connection (idle sweep, drain, force close)
};

class connection final : public kv::session_host, public std::enable_shared_from_this<connection> {
 public:
  using socket_type = boost::asio::ip::tcp::socket;

  connection(std::shared_ptr<listener_shared> shared, socket_type sock);
  ~connection() override;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// The connection's whole life: attach the session, serve, detach. co_spawn it on the socket's executor; the
  /// coroutine frame owns `self` (a lazily started coroutine must not rely on the caller's reference).
  static boost::asio::awaitable<void> run(std::shared_ptr<connection> self);

  // kv::session_host (any thread, store lock held)
  bool deliver(const kv::pubsub_message& m) override;
  void kill() override;
  buffers buffer_info() const override;
  int fd() const override { return fd_; }

  // Listener-driven (any thread).
  /// Graceful shutdown: close now if idle, else after answering what was read.
  void drain();
  /// Milliseconds (steady clock) of the last input; used by the idle sweep.
  std::int64_t last_active_ms() const noexcept { return last_active_ms_.load(std::memory_order_relaxed); }
  /// True while subscribed to something (exempt from the idle timeout, as in Redis).
  bool subscriber() const noexcept { return subscriber_.load(std::memory_order_relaxed); }

  static std::int64_t steady_ms() noexcept;

 private:
  boost::asio::awaitable<void> run_impl();
  boost::asio::awaitable<void> serve();
  /// Waits for the started commands (started_batch.hpp) and appends their replies, in order.
  boost::asio::awaitable<void> answer_started();
  /// After a command: refresh the subscriber flag (idle-timeout exemption).
  void finish_command();
  /// Moves the outbox into out_ and sends out_ with a non-blocking send(). done: everything written (out_ empty);
  /// pending: the socket is full, out_ holds the rest (write it asynchronously); failed: close.
  enum class flush_result { done, pending, failed };
  flush_result try_flush();
  void take_outbox();
  void on_wake();
  void start_push_write();
  void close_now();

  std::shared_ptr<listener_shared> shared_;
  socket_type sock_;
  int fd_ = -1;
  std::thread::id owner_;                  ///< the thread running this connection's context
  shutdown_coordinator::tracker tracker_;

  // Connection-thread state.
  resp::input_buffer in_;
  resp::request_parser parser_;
  std::string out_;                        ///< replies of the current batch
  kv::session sess_;
  resp_reply_builder builder_;             ///< writes into out_ for sess_.resp
  request_context ctx_;
  kv::command_meter meter_{"resp"};      ///< turret_commands_total / turret_command_duration_seconds
  kv::pipeline_handle_type::reader pipeline_{shared_->pipeline};  ///< refreshed when a command starts
  std::shared_ptr<started_batch> started_;  ///< commands of this batch started and not yet answered
  bool executing_ = false;                 ///< inside a command (deliver() on this thread appends to out_)
  bool reading_ = false;                   ///< suspended waiting for input
  bool push_writing_ = false;              ///< a wake-up write of the outbox is in flight
  bool push_waiter_ = false;               ///< the main loop waits for that write (push_done_)
  bool draining_ = false;
  bool closed_ = false;
  std::string push_buf_;                   ///< bytes of the in-flight wake-up write
  boost::asio::steady_timer push_done_;

  // Shared with other threads.
  std::mutex out_mu_;                      ///< guards outbox_, wake_posted_, soft_since_ms_
  std::string outbox_;
  bool wake_posted_ = false;
  std::int64_t soft_since_ms_ = 0;         ///< when the output first exceeded the soft limit (0 = below)
  std::atomic<std::size_t> inflight_bytes_{0};  ///< bytes of asynchronous writes in flight (output limit)
  std::atomic<bool> killed_{false};
  std::atomic<std::int64_t> last_active_ms_{0};
  std::atomic<bool> subscriber_{false};
  std::atomic<std::size_t> qbuf_{0}, qbuf_cap_{0};
};

}  // namespace turret::resp_frontend
