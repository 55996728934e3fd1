#include <services/resp/resp_options.hpp>
#include <services/turretd/config.hpp>
#include <turret/metrics.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <string>

using namespace turret;
using namespace turret::turretd;

namespace {

registries& regs() {
  static auto r = make_builtin_registries();
  return *r;
}

std::shared_ptr<const config> parse(std::string_view yaml) { return parse_config_string(yaml, regs(), "test.yaml"); }

/// The config_error message for `yaml` ("" when it parses).
std::string error_of(std::string_view yaml) {
  try {
    parse(yaml);
    return "";
  } catch (const config_error& e) {
    return e.what();
  }
}

constexpr std::string_view minimal = R"(
listeners:
  - name: r
    protocol: resp
    address: 127.0.0.1:0
)";

}  // namespace

TEST(TurretdConfig, EmbeddedDefaultMatchesTheIssueExample) {
  auto cfg = parse_config_string(default_config_yaml(), regs());
  EXPECT_EQ(cfg->source, "<embedded>");
  EXPECT_EQ(cfg->server.threads, 0u);
  EXPECT_EQ(cfg->server.shutdown_grace, std::chrono::seconds(10));
  EXPECT_EQ(cfg->logging.level, spdlog::level::info);
  EXPECT_FALSE(cfg->logging.json);
  ASSERT_GE(cfg->listeners.size(), 1u);
  EXPECT_EQ(cfg->listeners[0].name, "resp");
  EXPECT_EQ(cfg->listeners[0].protocol, "resp");
  EXPECT_EQ(cfg->listeners[0].endpoint.address().to_string(), "127.0.0.1");
  EXPECT_EQ(cfg->listeners[0].endpoint.port(), 6379);
  EXPECT_EQ(cfg->pipeline().size(), 2u);
  EXPECT_EQ(cfg->store.kind, "memory");
  EXPECT_EQ(cfg->store.options.databases, 16);
  EXPECT_EQ(cfg->store.options.maxclients, 10000u);
  EXPECT_EQ(cfg->store.options.hz, 10);
  EXPECT_EQ(cfg->store.options.timeout, 0);
  EXPECT_EQ(cfg->store.options.obuf_pubsub.hard, 32ull << 20);
  EXPECT_EQ(cfg->store.options.obuf_pubsub.soft, 8ull << 20);
  EXPECT_EQ(cfg->store.options.obuf_pubsub.soft_seconds, 60);
}

TEST(TurretdConfig, DeployFileIsValid) {
  const std::string root = TURRET_SOURCE_DIR;  // set by services/CMakeLists.txt (__FILE__ is relative under ccache)
  auto cfg = load_config(root + "/deploy/turret.yaml", regs());
  ASSERT_GE(cfg->listeners.size(), 1u);
  EXPECT_EQ(cfg->store.options.databases, 16);
}

TEST(TurretdConfig, EmbeddedDefaultHasTheBuiltInFrontEnds) {
  auto cfg = parse_config_string(default_config_yaml(), regs());
  std::vector<std::string> protocols;
  for (const auto& l : cfg->listeners) protocols.push_back(l.protocol);
  std::vector<std::string> expected{"resp"};
#ifdef TURRET_HAVE_HTTP
  expected.push_back("http");
#endif
#ifdef TURRET_HAVE_GRPC
  expected.push_back("grpc");
#endif
  EXPECT_EQ(protocols, expected);
}

TEST(TurretdConfig, MinimalConfigGetsDefaults) {
  auto cfg = parse(minimal);
  EXPECT_EQ(cfg->server.shutdown_grace, std::chrono::seconds(10));
  EXPECT_EQ(cfg->pipeline().size(), 0u);
  EXPECT_EQ(cfg->listeners[0].endpoint.port(), 0);
  EXPECT_EQ(cfg->store.options.databases, 16);
}

TEST(TurretdConfig, RespOptionsFeedTheStore) {
  auto cfg = parse(R"(
listeners:
  - name: r
    protocol: resp
    address: 127.0.0.1:0
    resp:
      maxclients: 5
      timeout: 3
      proto_max_bulk_len: 2mb
      client_output_buffer_limit_pubsub: {hard: 1mb, soft: 0, soft_seconds: 0}
store:
  databases: 4
  requirepass: secret
  notify_keyspace_events: KEA
  hz: 50
)");
  const auto& so = cfg->store.options;
  EXPECT_EQ(so.maxclients, 5u);
  EXPECT_EQ(so.timeout, 3);
  EXPECT_EQ(so.proto_max_bulk_len, 2ll << 20);
  EXPECT_EQ(so.obuf_pubsub.hard, 1ull << 20);
  EXPECT_EQ(so.obuf_pubsub.soft, 0u);
  EXPECT_EQ(so.databases, 4);
  EXPECT_EQ(so.requirepass, "secret");
  EXPECT_EQ(so.notify_keyspace_events, "KEA");
  EXPECT_EQ(so.hz, 50);
  const auto* o = std::any_cast<resp_frontend::resp_options>(&cfg->listeners[0].options);
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->timeout, std::chrono::seconds(3));
}

TEST(TurretdConfig, DurationTimeout) {
  auto cfg = parse(R"(
listeners:
  - {name: r, protocol: resp, address: "127.0.0.1:0", resp: {timeout: 2m}}
)");
  EXPECT_EQ(cfg->store.options.timeout, 120);
}

TEST(TurretdConfig, UnknownTopLevelKeyNamesFileLineAndKey) {
  const auto e = error_of("server:\n  threads: 1\nlisteners:\n  - {name: r, protocol: resp, address: '127.0.0.1:0'}\nbogus: 1\n");
  EXPECT_NE(e.find("test.yaml:5:"), std::string::npos) << e;
  EXPECT_NE(e.find("bogus"), std::string::npos) << e;
}

TEST(TurretdConfig, UnknownListenerKey) {
  const auto e = error_of(R"(
listeners:
  - name: r
    protocol: resp
    address: 127.0.0.1:0
    colour: blue
)");
  EXPECT_NE(e.find("test.yaml:6:"), std::string::npos) << e;
  EXPECT_NE(e.find("listeners[0].colour"), std::string::npos) << e;
}

TEST(TurretdConfig, NonScalarKeysAreConfigErrors) {
  // Found by fuzz/config_loader: a sequence or mapping as a key escaped as yaml-cpp's "bad conversion".
  const auto listener = error_of("listeners: [{name: r, protocol: resp, address: '127.0.0.1:0', [x]: 1}]\n");
  EXPECT_NE(listener.find("test.yaml:1:"), std::string::npos) << listener;
  EXPECT_NE(listener.find("expected a string key"), std::string::npos) << listener;
  const auto pipelines = error_of("pipelines: {{a: 1}: []}\n");
  EXPECT_NE(pipelines.find("test.yaml:1:"), std::string::npos) << pipelines;
  EXPECT_NE(pipelines.find("expected a string key"), std::string::npos) << pipelines;
}

TEST(TurretdConfig, UnknownRespKey) {
  const auto e = error_of(R"(
listeners:
  - name: r
    protocol: resp
    address: 127.0.0.1:0
    resp:
      maxclient: 3
)");
  EXPECT_NE(e.find("test.yaml:7:"), std::string::npos) << e;
  EXPECT_NE(e.find("maxclient"), std::string::npos) << e;
}

TEST(TurretdConfig, BadValues) {
  EXPECT_NE(error_of("server: {shutdown_grace: 2x}\nlisteners: [{name: r, protocol: resp, address: '127.0.0.1:0'}]")
                .find("server.shutdown_grace"),
            std::string::npos);
  EXPECT_NE(error_of("server: {threads: -1}\nlisteners: [{name: r, protocol: resp, address: '127.0.0.1:0'}]")
                .find("server.threads"),
            std::string::npos);
  EXPECT_NE(error_of("logging: {level: loud}\nlisteners: [{name: r, protocol: resp, address: '127.0.0.1:0'}]")
                .find("logging.level"),
            std::string::npos);
  EXPECT_NE(error_of("store: {kind: disk}\nlisteners: [{name: r, protocol: resp, address: '127.0.0.1:0'}]")
                .find("store.kind"),
            std::string::npos);
  EXPECT_NE(error_of("store: {databases: 0}\nlisteners: [{name: r, protocol: resp, address: '127.0.0.1:0'}]")
                .find("store.databases"),
            std::string::npos);
  EXPECT_NE(error_of("store: {notify_keyspace_events: KQ}\nlisteners: [{name: r, protocol: resp, address: '127.0.0.1:0'}]")
                .find("store.notify_keyspace_events"),
            std::string::npos);
}

TEST(TurretdConfig, ListenerErrors) {
  EXPECT_NE(error_of("listeners: []").find("at least one listener"), std::string::npos);
  EXPECT_NE(error_of("listeners: [{name: r, protocol: smtp, address: '127.0.0.1:0'}]").find("unknown protocol 'smtp'"),
            std::string::npos);
  EXPECT_NE(error_of("listeners: [{name: r, protocol: resp, address: 'nohost'}]").find("listeners[0].address"),
            std::string::npos);
  EXPECT_NE(error_of("listeners: [{name: r, protocol: resp, address: '127.0.0.1:70000'}]").find("invalid port"),
            std::string::npos);
  EXPECT_NE(error_of("listeners: [{name: r, protocol: resp}]").find("address"), std::string::npos);
  EXPECT_NE(error_of("listeners: [{name: r, protocol: resp, address: '127.0.0.1:0'}, "
                     "{name: r, protocol: resp, address: '127.0.0.1:0'}]")
                .find("duplicate listener name"),
            std::string::npos);
  EXPECT_NE(error_of("listeners: [{name: a, protocol: resp, address: '127.0.0.1:7000'}, "
                     "{name: b, protocol: resp, address: '127.0.0.1:7000'}]")
                .find("used by another listener"),
            std::string::npos);
  EXPECT_NE(error_of("listeners: [{name: a, protocol: resp, address: '127.0.0.1:0', resp: {maxclients: 5}}, "
                     "{name: b, protocol: resp, address: '127.0.0.1:0'}]")
                .find("server-wide"),
            std::string::npos);
}

TEST(TurretdConfig, PipelineErrorsComeFromTheLayerRegistry) {
  const auto e = error_of(R"(
listeners: [{name: r, protocol: resp, address: '127.0.0.1:0'}]
pipeline:
  - layer: timeout
    duration: 2s
  - layer: frobnicate
)");
  EXPECT_NE(e.find("test.yaml:6:"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown layer 'frobnicate'"), std::string::npos) << e;
  const auto e2 = error_of("listeners: [{name: r, protocol: resp, address: '127.0.0.1:0'}]\n"
                           "pipeline:\n  - layer: timeout\n    duration: soon\n");
  EXPECT_NE(e2.find("pipeline[0].duration"), std::string::npos) << e2;
}

TEST(TurretdConfig, ListenAddresses) {
  EXPECT_EQ(parse_listen_address("127.0.0.1:6379").port(), 6379);
  EXPECT_EQ(parse_listen_address("[::1]:1").address().to_string(), "::1");
  EXPECT_EQ(parse_listen_address("localhost:5").address().to_string(), "127.0.0.1");
  EXPECT_EQ(parse_listen_address("*:5").address().to_string(), "0.0.0.0");
  EXPECT_THROW(parse_listen_address("127.0.0.1"), std::invalid_argument);
  EXPECT_THROW(parse_listen_address("127.0.0.1:"), std::invalid_argument);
  EXPECT_THROW(parse_listen_address("example.com:80"), std::invalid_argument);
}

TEST(TurretdConfig, MissingFile) {
  EXPECT_THROW(load_config("/nonexistent/turret.yaml", regs()), config_error);
}

TEST(TurretdConfig, NamedPipelines) {
  auto cfg = parse(R"(
listeners:
  - {name: a, protocol: resp, address: '127.0.0.1:0', pipeline: chaos}
  - {name: b, protocol: resp, address: '127.0.0.1:0'}
  - {name: c, protocol: resp, address: '127.0.0.1:0', pipeline: default}
pipeline:
  - {layer: timeout, duration: 2s}
  - {layer: concurrency_limit, max: 10}
pipelines:
  chaos:
    - layer: fault
      abort: {percent: 10, error: unavailable}
  empty: []
  nothing:
)");
  ASSERT_EQ(cfg->pipelines.size(), 4u);
  EXPECT_EQ(cfg->pipeline().size(), 2u);
  EXPECT_EQ(cfg->pipeline("default").name, "default");
  EXPECT_EQ(cfg->pipeline("chaos").size(), 1u);
  EXPECT_EQ(cfg->pipeline("chaos").entries.path(), "pipelines.chaos");
  EXPECT_EQ(cfg->pipeline("empty").size(), 0u);
  EXPECT_EQ(cfg->pipeline("nothing").size(), 0u);
  EXPECT_THROW(cfg->pipeline("other"), std::out_of_range);
  EXPECT_EQ(cfg->listeners[0].pipeline, "chaos");
  EXPECT_EQ(cfg->listeners[1].pipeline, "default");  // a listener naming none
  EXPECT_EQ(cfg->listeners[2].pipeline, "default");

  // The layers are built for serving with the pipeline's name in the context (metric labels).
  metrics::registry reg;
  layer_context ctx;
  ctx.metric_registry = &reg;
  const auto layers = build_layers(cfg->pipeline("chaos"), regs(), ctx);
  EXPECT_EQ(layers.size(), 1u);
  EXPECT_NE(reg.expose().find("turret_fault_injected_total{pipeline=\"chaos\",kind=\"abort\"} 0"), std::string::npos)
      << reg.expose();
  EXPECT_TRUE(build_layers(cfg->pipeline("empty"), regs(), ctx).empty());
}

TEST(TurretdConfig, PipelinesDefaultReplacesTheTopLevelOne) {
  auto cfg = parse(R"(
listeners: [{name: a, protocol: resp, address: '127.0.0.1:0'}]
pipelines:
  default:
    - {layer: fault, delay: {duration: 1ms, percent: 1}}
)");
  EXPECT_EQ(cfg->pipelines.size(), 1u);
  EXPECT_EQ(cfg->pipeline().size(), 1u);
  EXPECT_EQ(cfg->pipeline().entries.path(), "pipelines.default");
  // neither: an empty default pipeline
  EXPECT_EQ(parse(minimal)->pipeline().size(), 0u);
}

TEST(TurretdConfig, PipelineErrorsNameFileLineAndKey) {
  EXPECT_EQ(error_of(R"(
listeners: [{name: a, protocol: resp, address: '127.0.0.1:0'}]
pipeline:
  - {layer: timeout, duration: 2s}
pipelines:
  default: []
)"),
            "test.yaml:6:3: pipelines.default: the pipeline 'default' is defined twice: by the top-level 'pipeline:' "
            "and here (keep one)");
  EXPECT_EQ(error_of(R"(
listeners:
  - name: a
    protocol: resp
    address: 127.0.0.1:0
    pipeline: chaoss
pipelines:
  chaos: []
)"),
            "test.yaml:6:15: listeners[0].pipeline: unknown pipeline 'chaoss' (defined: chaos, default)");
  EXPECT_EQ(error_of(R"(
listeners: [{name: a, protocol: resp, address: '127.0.0.1:0', pipeline: x}]
)"),
            "test.yaml:2:73: listeners[0].pipeline: unknown pipeline 'x' (defined: default)");
  EXPECT_EQ(error_of(R"(
listeners: [{name: a, protocol: resp, address: '127.0.0.1:0'}]
pipelines:
  "a b": []
)"),
            "test.yaml:4:3: pipelines.a b: invalid pipeline name 'a b' (letters, digits, '_', '-' and '.' only)");
  EXPECT_EQ(error_of(R"(
listeners: [{name: a, protocol: resp, address: '127.0.0.1:0'}]
pipelines:
  edge: {layer: timeout}
)"),
            "test.yaml:4:9: pipelines.edge: expected a list");
  EXPECT_EQ(error_of(R"(
listeners: [{name: a, protocol: resp, address: '127.0.0.1:0'}]
pipelines: [a, b]
)"),
            "test.yaml:3:12: pipelines: expected a mapping");
  // A layer's own error inside a named pipeline, even one no listener uses: every pipeline is validated.
  EXPECT_EQ(error_of(R"(
listeners: [{name: a, protocol: resp, address: '127.0.0.1:0'}]
pipelines:
  unused:
    - layer: fault
      abort: {percent: 101, error: internal}
)"),
            "test.yaml:6:24: pipelines.unused[0].abort.percent: percent must be between 0 and 100 (fractions allowed, "
            "e.g. 0.5)");
  EXPECT_NE(error_of("listeners: [{name: a, protocol: resp, address: '127.0.0.1:0', pipelin: x}]\n")
                .find("unknown key 'pipelin' for protocol resp (allowed: name, protocol, address, pipeline, resp)"),
            std::string::npos);
}

// `plugins:` as parse_config sees it: validated and resolved, never loaded (load_config loads; the plugins themselves
// are tested over real processes in tests/integration/test_plugins.py).
TEST(TurretdConfig, PluginsAreValidatedAndResolvedRelativeToTheConfigFile) {
  const auto listeners = std::string("listeners: [{name: a, protocol: resp, address: '127.0.0.1:0'}]\n");
  auto cfg = parse_config_string(listeners + "plugins: [/abs/libx.so, rel/liby.so, ../libz.so]\n", regs(),
                                 "/etc/turret/turret.yaml");
  EXPECT_EQ(cfg->plugins, (std::vector<std::string>{"/abs/libx.so", "/etc/turret/rel/liby.so", "/etc/libz.so"}));
  EXPECT_TRUE(regs().plugins.empty());  // nothing was loaded
  cfg = parse_config_string(listeners + "plugins: [libx.so]\n", regs(), "turret.yaml");  // config in the cwd
  EXPECT_EQ(cfg->plugins, std::vector<std::string>{"libx.so"});
  EXPECT_TRUE(parse_config_string(listeners + "plugins:\n", regs())->plugins.empty());

  EXPECT_EQ(error_of(listeners + "plugins: libx.so\n"), "test.yaml:2:10: plugins: expected a list");
  EXPECT_EQ(error_of(listeners + "plugins: ['']\n"),
            "test.yaml:2:11: plugins[0]: expected the path of a plugin (a shared object, e.g. "
            "plugins/libturret_hello.so)");
  EXPECT_EQ(error_of(listeners + "plugins: [a/libx.so, ./a/libx.so]\n"),
            "test.yaml:2:22: plugins[1]: plugin a/libx.so is listed twice");
  EXPECT_EQ(error_of(listeners + "plugins: [{path: x}]\n"), "test.yaml:2:11: plugins[0]: expected a string");
}
