#include "services/common/server_options.h"

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace skein {
namespace {

using ::testing::HasSubstr;

// Runs ParseCommandLine over `args` and captures what it printed on stderr.
struct ParseResult {
  std::optional<int> exit_code;
  std::string stderr_text;
};

ParseResult Parse(CLI::App& app, std::vector<std::string> args) {
  std::vector<char*> argv;
  std::string name = "skein-test";
  argv.push_back(name.data());
  for (std::string& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStderr();
  ParseResult r;
  r.exit_code = ParseCommandLine(app, "skein-test", static_cast<int>(argv.size()), argv.data());
  r.stderr_text = ::testing::internal::GetCapturedStderr();
  return r;
}

ServerOptions Defaults() {
  ServerOptions o;
  o.service_name = "skein-test";
  o.listen = "127.0.0.1:7000";
  o.metrics_port = 9000;
  return o;
}

TEST(ServerOptionsTest, DefaultsSurviveAnEmptyCommandLine) {
  ServerOptions o = Defaults();
  CLI::App app;
  AddServerFlags(app, &o);
  ParseResult r = Parse(app, {});
  EXPECT_FALSE(r.exit_code.has_value());
  EXPECT_EQ(o.listen, "127.0.0.1:7000");
  EXPECT_EQ(o.metrics_port, 9000);
}

TEST(ServerOptionsTest, FlagsOverrideDefaults) {
  ServerOptions o = Defaults();
  CLI::App app;
  AddServerFlags(app, &o);
  ParseResult r = Parse(app, {"--listen", "0.0.0.0:1234", "--metrics-port", "0", "--drain-seconds",
                              "3.5", "--log-level", "debug"});
  EXPECT_FALSE(r.exit_code.has_value()) << r.stderr_text;
  EXPECT_EQ(o.listen, "0.0.0.0:1234");
  EXPECT_EQ(o.metrics_port, 0);
  EXPECT_DOUBLE_EQ(o.drain_seconds, 3.5);
  EXPECT_EQ(o.log_level, "debug");
}

TEST(ServerOptionsTest, ConfigFileIsReadAndFlagsWin) {
  std::string path = ::testing::TempDir() + "/options.toml";
  std::ofstream(path) << "listen = \"10.0.0.1:5\"\nmetrics-port = 4321\n";
  ServerOptions o = Defaults();
  CLI::App app;
  AddServerFlags(app, &o);
  ParseResult r = Parse(app, {"--config", path, "--metrics-port", "99"});
  EXPECT_FALSE(r.exit_code.has_value()) << r.stderr_text;
  EXPECT_EQ(o.listen, "10.0.0.1:5");
  EXPECT_EQ(o.metrics_port, 99);
}

TEST(ServerOptionsTest, ErrorsAreOneLineWithNonZeroExit) {
  struct Case {
    std::vector<std::string> args;
    std::string reason;
  };
  std::vector<Case> cases = {
      {{"--bogus"}, "--bogus"},
      {{"--metrics-port", "70000"}, "70000"},
      {{"--metrics-port", "abc"}, "abc"},
      {{"--log-level", "loud"}, "loud"},
      {{"--config", "/no/such/file.toml"}, "/no/such/file.toml"},
  };
  for (const Case& c : cases) {
    ServerOptions o = Defaults();
    CLI::App app;
    AddServerFlags(app, &o);
    ParseResult r = Parse(app, c.args);
    ASSERT_TRUE(r.exit_code.has_value()) << c.reason;
    EXPECT_NE(*r.exit_code, 0) << c.reason;
    EXPECT_THAT(r.stderr_text, HasSubstr(c.reason));
    EXPECT_THAT(r.stderr_text, HasSubstr("skein-test: error: "));
    EXPECT_EQ(std::count(r.stderr_text.begin(), r.stderr_text.end(), '\n'), 1) << r.stderr_text;
  }
}

TEST(ServerOptionsTest, HelpExitsZero) {
  ServerOptions o = Defaults();
  CLI::App app;
  AddServerFlags(app, &o);
  ::testing::internal::CaptureStdout();
  ParseResult r = Parse(app, {"--help"});
  std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_TRUE(r.exit_code.has_value());
  EXPECT_EQ(*r.exit_code, 0);
  EXPECT_THAT(out, HasSubstr("--metrics-port"));
}

TEST(SplitHostPortTest, AcceptsHostPortForms) {
  std::string host;
  int port = -1;
  ASSERT_TRUE(SplitHostPort("127.0.0.1:0", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 0);
  ASSERT_TRUE(SplitHostPort("[::1]:8080", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 8080);
}

TEST(SplitHostPortTest, RejectsMalformedAddresses) {
  std::string host;
  int port = 0;
  for (const char* bad : {"localhost", ":80", "host:", "host:-1", "host:65536", "host:8o"}) {
    absl::Status s = SplitHostPort(bad, &host, &port);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ValidateServerOptionsTest, NamesTheFlag) {
  ServerOptions o = Defaults();
  o.listen = "nonsense";
  absl::Status s = ValidateServerOptions(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("--listen"));
}

}  // namespace
}  // namespace skein
