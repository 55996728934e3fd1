#include <turret/config.hpp>
#include <turret/logging.hpp>

#include <gtest/gtest.h>

namespace turret {
namespace {

TEST(LoggingTest, JsonFormatOneObjectPerLine) {
  init_logging("info", "json");
  ::testing::internal::CaptureStderr();
  spdlog::info("hello \"world\"");
  spdlog::debug("hidden");
  log(spdlog::level::warn, {{"request_id", "abc123"}}, "with fields");
  spdlog::default_logger()->flush();
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find(R"("level":"info","msg":"hello \"world\""})"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("level":"warn","msg":"with fields","request_id":"abc123"})"), std::string::npos) << out;
  EXPECT_EQ(out.find("hidden"), std::string::npos);
  EXPECT_EQ(out.rfind("{\"ts\":\"", 0), 0u) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2);
}

TEST(LoggingTest, TextFormatAndLevels) {
  init_logging("debug", "text");
  ::testing::internal::CaptureStderr();
  spdlog::debug("visible");
  log(spdlog::level::info, {{"request_id", "r1"}}, "text fields");
  spdlog::default_logger()->flush();
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("visible"), std::string::npos) << out;
  EXPECT_NE(out.find("text fields request_id=r1"), std::string::npos) << out;
  init_logging("info", "text");
}

TEST(LoggingTest, InvalidValues) {
  EXPECT_THROW(init_logging("verbose", "text"), config_error);
  EXPECT_THROW(init_logging("info", "xml"), config_error);
  auto root = load_config_string("logging:\n  level: loud\n", "turret.yaml");
  try {
    parse_logging_config(root.child("logging"));
    FAIL();
  } catch (const config_error& e) {
    EXPECT_STREQ(e.what(),
                 "turret.yaml:2:10: logging.level: invalid log level 'loud' (expected trace, debug, info, warn or error)");
  }
  auto ok = parse_logging_config(load_config_string("logging: {level: warn, format: json}").child("logging"));
  EXPECT_EQ(ok.level, spdlog::level::warn);
  EXPECT_TRUE(ok.json);
  auto defaults = parse_logging_config(load_config_string("{}").child("logging"));
  EXPECT_EQ(defaults.level, spdlog::level::info);
  EXPECT_THROW(parse_logging_config(load_config_string("logging: {lvl: info}").child("logging")), config_error);
  EXPECT_EQ(json_escape("a\"b\\\n\x01"), "a\\\"b\\\\\\n\\u0001");
}

}  // namespace
}  // namespace turret
