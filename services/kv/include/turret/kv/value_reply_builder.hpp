#pragma once
// value_reply_builder: a kv::reply_builder that builds reply_value trees (HTTP and gRPC front ends, tests).
//
// One command may write several top-level replies (SUBSCRIBE a b answers twice); they are collected in order.
// raw() parses RESP2/RESP3 bytes (the cached COMMAND INFO/DOCS entries) into values, so every reply reaches a
// non-RESP front end as a tree.
#include <turret/kv/reply.hpp>

#include <string_view>
#include <vector>

namespace turret::kv {

class value_reply_builder final : public reply_builder {
 public:
  explicit value_reply_builder(int protocol = 3) : protocol_(protocol) {}

  void simple(std::string_view s) override { leaf(reply_value::kind::simple, s); }
  void error(std::string_view s) override { leaf(reply_value::kind::error, s); }
  void integer(long long v) override;
  void bulk(std::string_view s) override { leaf(reply_value::kind::bulk, s); }
  void null_bulk() override { leaf(reply_value::kind::null, {}); }
  void null_array() override { leaf(reply_value::kind::null, {}); }
  void array(std::size_t n) override { open(reply_value::kind::array, n); }
  void map(std::size_t n) override { open(reply_value::kind::map, n * 2); }
  void set(std::size_t n) override { open(reply_value::kind::set, n); }
  void push(std::size_t n) override { open(reply_value::kind::push, n); }
  void dbl(double v) override;
  void boolean(bool v) override;
  void verbatim(std::string_view s, std::string_view format = "txt") override {
    leaf(reply_value::kind::verbatim, s);
  }
  void big_number(std::string_view digits) override { leaf(reply_value::kind::big_number, digits); }
  /// Parses RESP2/RESP3 bytes; malformed input becomes an error value "ERR malformed reply".
  void raw(std::string_view resp_bytes) override;
  int protocol() const noexcept override { return protocol_; }
  /// a: completed replies, b: open containers, c/d: elements and remaining count of the innermost one. A rollback
  /// inside a container (EXEC's array) requires that container to be still open, as it is for a failed command.
  checkpoint mark() const noexcept override;
  void rollback(const checkpoint& to) noexcept override;

  /// Completed top-level replies, in order.
  const std::vector<reply_value>& replies() const noexcept { return done_; }
  std::vector<reply_value> take() {
    auto r = std::move(done_);
    done_.clear();
    return r;
  }
  /// True when no container is left open.
  bool complete() const noexcept { return stack_.empty(); }

 private:
  void add(reply_value v);
  void leaf(reply_value::kind k, std::string_view s) {
    reply_value v;
    v.type = k;
    v.str.assign(s);
    add(std::move(v));
  }
  void open(reply_value::kind k, std::size_t elements);

  struct frame {
    reply_value value;
    std::size_t remaining;
  };
  int protocol_;
  std::vector<frame> stack_;
  std::vector<reply_value> done_;
};

/// Writes `v` into `out` as the commands would have written it (the inverse of value_reply_builder): a reply
/// captured on a side sink (a hedged attempt's) reaches the real one. What a value tree does not keep is written as
/// its most common form: null as null_bulk (RESP2 "$-1", never "*-1"), verbatim with format "txt".
void replay(const reply_value& v, reply_builder& out);

/// Encodes a reply_value as RESP (protocol 2 or 3), with Redis's RESP2 downgrades. Null becomes "$-1" in RESP2.
std::string to_resp(const reply_value& v, int protocol);

}  // namespace turret::kv
