// The key-value routes of the REST API: each request becomes the input of an operation of
// <turret/ops/operations.hpp> (REST's own syntax here: query parameters, JSON bodies, base64), the operation runs
// through the listener's pipeline (<turret/ops/run.hpp>), and its output becomes the response (its outcome other than
// ok: rest_codec.cpp). The input rules (keys, TTLs) and the interpretation of the replies are the operations', the
// same as gRPC's.
#include <services/http/rest_api.hpp>
#include <services/http/rest_codec.hpp>
#include <turret/ops/run.hpp>

#include <string>
#include <vector>

namespace turret::http_frontend {

namespace json = boost::json;

namespace {

constexpr std::string_view no_body = "Content-Length or chunked body required";

}  // namespace

template <class Op>
awaitable<bool> rest_api::run(request_context& ctx, kv::session& sess, const typename Op::input& in,
                              typename Op::output& o, rest_response& out) {
  const kv::pipeline_handle_type::snapshot pin = env_.pipeline.load();  // the operation finishes on this pipeline
  const result<ops::status> r = co_await ops::run<Op>(target(*pin, ctx, sess), in, o);
  co_return succeeded(r, out);
}

awaitable<void> rest_api::handle_kv(const rest_request& req, const match_result& m, const query& q,
                                    request_context& ctx, kv::session& sess, rest_response& out) {
  switch (m.r) {
    case route::kv_get: {
      const ops::get_op::input in{m.param};
      ops::get_op::output o;
      if (co_await run<ops::get_op>(ctx, sess, in, o, out)) set_value(out, std::move(o.value));
      co_return;
    }
    case route::kv_put: {
      if (!req.has_framing) co_return set_error(out, 411, "length_required", no_body);
      // Always with the previous value: 201 (created) or 200 (replaced) says whether there was one.
      ops::set_op::input in;
      in.key = m.param;
      in.value = req.body;
      in.return_previous = true;
      if (!query_ttl(q, in.ttl_ms, out)) co_return;
      bool nx = false, xx = false, get = false;
      if (!query_flag(q, "nx", nx) || !query_flag(q, "xx", xx) || !query_flag(q, "get", get))
        co_return set_error(out, 400, "bad_request", "nx, xx and get take true or false");
      if (nx && xx) co_return set_error(out, 400, "bad_request", "nx and xx are mutually exclusive");
      in.cond = nx ? ops::condition::if_not_exists : xx ? ops::condition::if_exists : ops::condition::none;
      ops::set_op::output o;
      if (!co_await run<ops::set_op>(ctx, sess, in, o, out)) co_return;
      if (get && o.had_previous) {
        set_value(out, std::move(o.previous));
      } else {
        out.content_type = {};
        out.body.clear();
      }
      out.status = o.had_previous ? 200 : 201;
      co_return;
    }
    case route::kv_delete: {
      ops::delete_op::input in;
      in.keys.push_back(m.param);
      in.not_found_when_none = true;
      ops::delete_op::output o;
      if (co_await run<ops::delete_op>(ctx, sess, in, o, out)) set_no_content(out);
      co_return;
    }
    case route::kv_incr: {
      ops::incr_op::input in{m.param};
      if (auto b = q.get("by")) {
        const auto by = parse_int(*b);
        if (!by) co_return set_error(out, 400, "bad_request", "by must be a 64-bit integer");
        in.delta = *by;
      }
      ops::incr_op::output o;
      if (!co_await run<ops::incr_op>(ctx, sess, in, o, out)) co_return;
      out.status = 200;
      out.content_type = "application/json";
      out.body = std::to_string(o.value);
      co_return;
    }
    case route::ttl_get: {
      const ops::ttl_op::input in{m.param};
      ops::ttl_op::output o;
      if (!co_await run<ops::ttl_op>(ctx, sess, in, o, out)) co_return;
      json::object body;
      if (o.ttl_ms) body["ttl_ms"] = *o.ttl_ms;
      else body["ttl_ms"] = nullptr;
      co_return set_json(out, 200, body);
    }
    case route::ttl_put: {
      std::optional<long long> ttl;
      if (!query_ttl(q, ttl, out)) co_return;
      if (!ttl) co_return set_error(out, 400, "bad_request", "ttl or ttl_ms query parameter required (e.g. ttl=30s)");
      const ops::expire_op::input in{m.param, *ttl};
      ops::expire_op::output o;
      if (co_await run<ops::expire_op>(ctx, sess, in, o, out)) set_no_content(out);
      co_return;
    }
    case route::ttl_delete: {
      const ops::persist_op::input in{m.param};
      ops::persist_op::output o;
      if (co_await run<ops::persist_op>(ctx, sess, in, o, out)) set_no_content(out);
      co_return;
    }
    case route::kv_mget: {
      json::object body;
      bool b64 = false;
      if (!parse_body(req.body, {"keys"}, body, b64, out)) co_return;
      const auto* keys = body.if_contains("keys");
      if (!keys || !keys->is_array()) co_return set_error(out, 400, "bad_request", "expected {\"keys\": [\"k1\", ...]}");
      std::vector<std::string> owned;
      owned.reserve(keys->get_array().size());
      for (const auto& k : keys->get_array()) {
        if (!k.is_string()) co_return set_error(out, 400, "bad_request", "keys must be strings");
        auto key = body_key(std::string_view(k.get_string().data(), k.get_string().size()), b64, out);
        if (!key) co_return;
        owned.push_back(std::move(*key));
      }
      ops::mget_op::input in;
      in.keys.assign(owned.begin(), owned.end());
      ops::mget_op::output o;
      if (!co_await run<ops::mget_op>(ctx, sess, in, o, out)) co_return;
      std::vector<const std::string*> items;
      items.reserve(o.values.size());
      for (const auto& v : o.values) items.push_back(v ? &*v : nullptr);
      json::object root;
      bytes_array(root, "values", items, b64);
      co_return set_json(out, 200, root);
    }
    case route::kv_mset: {
      if (!req.has_framing) co_return set_error(out, 411, "length_required", no_body);
      json::object body;
      bool b64 = false;
      if (!parse_body(req.body, {"values", "nx"}, body, b64, out)) co_return;
      const auto* values = body.if_contains("values");
      if (!values || !values->is_object())
        co_return set_error(out, 400, "bad_request", "expected {\"values\": {\"k1\": \"v1\", ...}}");
      ops::mset_op::input in;
      if (const auto* n = body.if_contains("nx")) {
        if (!n->is_bool()) co_return set_error(out, 400, "bad_request", "nx must be a boolean");
        in.if_none_exist = n->get_bool();
      }
      std::vector<std::string> owned;  // key, value, key, value ...
      owned.reserve(values->get_object().size() * 2);
      for (const auto& kvp : values->get_object()) {
        auto key = body_key(std::string_view(kvp.key().data(), kvp.key().size()), b64, out);
        if (!key) co_return;
        owned.push_back(std::move(*key));
        auto v = json_bytes(kvp.value(), b64);
        if (!v)
          co_return set_error(out, 400, "bad_request",
                              "values must be strings (canonical base64 with \"encoding\":\"base64\")");
        owned.push_back(std::move(*v));
      }
      in.entries.reserve(owned.size() / 2);
      for (std::size_t i = 0; i + 1 < owned.size(); i += 2) in.entries.emplace_back(owned[i], owned[i + 1]);
      ops::mset_op::output o;
      if (co_await run<ops::mset_op>(ctx, sess, in, o, out)) set_no_content(out);
      co_return;
    }
    case route::kv_scan: {
      long long limit = 100;
      if (auto l = q.get("limit")) {
        auto v = parse_int(*l);
        if (!v || *v < 1 || *v > 10000) co_return set_error(out, 400, "bad_request", "limit must be 1..10000");
        limit = *v;
      }
      const auto cursor = parse_int(q.get("cursor").value_or("0"));
      if (!cursor || *cursor < 0) co_return set_error(out, 400, "bad_request", "cursor must be a non-negative integer");
      const bool b64 = q.get("encoding") == std::optional<std::string_view>("base64");
      const ops::scan_filter filter = ops::make_scan_filter(q.get("prefix").value_or(""));
      // SCAN's COUNT bounds the buckets visited, not the keys returned: a selective prefix gives mostly empty
      // pages. Keep scanning (a bounded number of steps, each its own request through the pipeline) until the
      // page has `limit` keys or the scan is complete, so a client rarely sees empty pages.
      constexpr int max_steps = 64;
      ops::scan_op::input in{static_cast<std::uint64_t>(*cursor), static_cast<std::uint64_t>(limit), filter.pattern,
                             filter.prefix};
      std::vector<std::string> keys;
      for (int step = 0; step < max_steps; ++step) {
        ops::scan_op::output o;
        if (!co_await run<ops::scan_op>(ctx, sess, in, o, out)) co_return;
        in.cursor = o.next;
        for (auto& k : o.keys) keys.push_back(std::move(k));
        if (in.cursor == 0 || keys.size() >= static_cast<std::size_t>(limit)) break;
      }
      std::vector<const std::string*> items;
      items.reserve(keys.size());
      for (const auto& k : keys) items.push_back(&k);
      json::object root;
      bytes_array(root, "keys", items, b64);
      if (in.cursor == 0) root["next_cursor"] = nullptr;
      else root["next_cursor"] = std::to_string(in.cursor);
      co_return set_json(out, 200, root);
    }
    case route::publish: {
      if (!req.has_framing) co_return set_error(out, 411, "length_required", no_body);
      const ops::publish_op::input in{m.param, req.body};
      ops::publish_op::output o;
      if (co_await run<ops::publish_op>(ctx, sess, in, o, out))
        set_json(out, 200, json::object{{"receivers", o.receivers}});
      co_return;
    }
    default:
      set_error(out, 500, "internal", "unhandled route");
      co_return;
  }
}

}  // namespace turret::http_frontend
