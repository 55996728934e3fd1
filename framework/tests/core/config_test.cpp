#include <turret/config.hpp>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace turret {
namespace {

using namespace std::chrono_literals;

TEST(ConfigTest, Durations) {
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("2s"), 2s);
  EXPECT_EQ(parse_duration("1m"), 1min);
  EXPECT_EQ(parse_duration("2h"), 2h);
  EXPECT_EQ(parse_duration("100us"), 100us);
  EXPECT_EQ(parse_duration("1.5s"), 1500ms);
  EXPECT_EQ(parse_duration("0"), 0s);
  EXPECT_EQ(parse_duration("0ms"), 0s);
  for (const char* bad : {"", "2x", "s", "2", "-1s", "1.s", " 2s", "2 s", "2S", "99999999999999999999h", "1e3ms"}) {
    EXPECT_FALSE(try_parse_duration(bad)) << bad;
  }
  try {
    parse_duration("2x");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "invalid duration '2x' (expected e.g. 250ms, 2s, 1m)");
  }
  EXPECT_EQ(format_duration(250ms), "250ms");
  EXPECT_EQ(format_duration(120s), "2m");
  EXPECT_EQ(format_duration(1500ms), "1500ms");
}

TEST(ConfigTest, Sizes) {
  EXPECT_EQ(parse_size("1024"), 1024u);
  EXPECT_EQ(parse_size("64kb"), 64u * 1024);
  EXPECT_EQ(parse_size("512mb"), 512u * 1024 * 1024);
  EXPECT_EQ(parse_size("1gb"), 1024ull * 1024 * 1024);
  EXPECT_EQ(parse_size("1k"), 1000u);
  EXPECT_EQ(parse_size("2m"), 2000000u);
  EXPECT_EQ(parse_size("1G"), 1000000000u);
  EXPECT_EQ(parse_size("5MB"), 5u * 1024 * 1024);
  for (const char* bad : {"", "kb", "-1", "1.5mb", "12tb", "1 kb", "99999999999999999999", "18446744073709551615kb"}) {
    EXPECT_FALSE(try_parse_size(bad)) << bad;
  }
  EXPECT_THROW(parse_size("x"), std::invalid_argument);
}

TEST(ConfigTest, ErrorMessageFormat) {
  auto root = load_config_string(R"(server:
  threads: 2
pipeline:
  - layer: timeout
    duration: 2x
)",
                                 "turret.yaml");
  auto entry = root.child("pipeline").at(0);
  EXPECT_EQ(entry.path(), "pipeline[0]");
  try {
    entry.get_duration("duration");
    FAIL();
  } catch (const config_error& e) {
    EXPECT_STREQ(e.what(), "turret.yaml:5:15: pipeline[0].duration: invalid duration '2x' (expected e.g. 250ms, 2s, 1m)");
    EXPECT_EQ(e.file(), "turret.yaml");
    EXPECT_EQ(e.line(), 5);
    EXPECT_EQ(e.column(), 15);
    EXPECT_EQ(e.key(), "pipeline[0].duration");
  }
  try {
    entry.get_duration("missing");
    FAIL();
  } catch (const config_error& e) {
    EXPECT_STREQ(e.what(), "turret.yaml:4:5: pipeline[0].missing: missing required key");
  }
  EXPECT_STREQ(config_error("logging.level", "bad").what(), "logging.level: bad");
}

// An empty document (or one holding only comments) has no node positions: its errors point at the start, 1:1
// (found by fuzz/config_loader: the position was missing).
TEST(ConfigTest, EmptyDocumentErrorsHaveAPosition) {
  for (const char* text : {"", "# nothing\n", "~\n"}) {
    auto root = load_config_string(text, "empty.yaml");
    try {
      root.required("listeners");
      FAIL() << text;
    } catch (const config_error& e) {
      EXPECT_STREQ(e.what(), "empty.yaml:1:1: listeners: missing required key") << text;
    }
    try {
      root.fail("missing required key 'listeners'");
      FAIL() << text;
    } catch (const config_error& e) {
      EXPECT_EQ(e.line(), 1);
      EXPECT_EQ(e.column(), 1);
    }
  }
}

TEST(ConfigTest, TypedAccessAndDefaults) {
  auto root = load_config_string(R"(
server: {threads: 4, shutdown_grace: 10s, name: x, on: yes, ratio: 0.5, limit: 64kb}
)");
  auto s = root.child("server");
  EXPECT_EQ(s.get_int("threads", 0, 1024), 4);
  EXPECT_EQ(s.get_int("absent", 7, 0, 10), 7);
  EXPECT_EQ(s.get_duration("shutdown_grace"), 10s);
  EXPECT_EQ(s.get_duration("absent", 3s), 3s);
  EXPECT_EQ(s.get_string("name"), "x");
  EXPECT_EQ(s.get_string("absent", "d"), "d");
  EXPECT_TRUE(s.get_bool("on"));
  EXPECT_DOUBLE_EQ(s.get_double("ratio"), 0.5);
  EXPECT_EQ(s.get_size("limit"), 65536u);
  EXPECT_EQ(s.get_size("absent", 5), 5u);
  EXPECT_THROW(s.get_int("threads", 0, 2), config_error);
  EXPECT_THROW(s.get_int("name"), config_error);
  EXPECT_THROW(s.get_bool("name"), config_error);
  EXPECT_NO_THROW(s.reject_unknown_keys({"threads", "shutdown_grace", "name", "on", "ratio", "limit"}));
  try {
    s.reject_unknown_keys({"threads"});
    FAIL();
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("server.shutdown_grace: unknown key 'shutdown_grace' (allowed: threads)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(root.child("nope").defined());
  EXPECT_FALSE(root.child("nope").child("deeper").defined());
  EXPECT_EQ(root.child("nope").child("deeper").path(), "nope.deeper");
  EXPECT_EQ(root.source().name, "<embedded>");
}

TEST(ConfigTest, FilesAndSyntaxErrors) {
  const std::string path = ::testing::TempDir() + "/h1_config_test.yaml";
  {
    std::ofstream out(path);
    out << "a: [1, 2\n";
  }
  try {
    load_config_file(path);
    FAIL();
  } catch (const config_error& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_GT(e.line(), 0);
  }
  {
    std::ofstream out(path);
    out << "a: 1\n";
  }
  EXPECT_EQ(load_config_file(path).get_int("a"), 1);
  std::remove(path.c_str());
  EXPECT_THROW(load_config_file("/nonexistent/turret.yaml"), config_error);
}

}  // namespace
}  // namespace turret
