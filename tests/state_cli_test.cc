// `skein state ...` against a real skein-state-store process: the operator's commands, their
// output and exit codes, and that a failed get never writes (or clobbers) the target file.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/child_process.h"

namespace skein {
namespace {

using ::skein::testing::ChildProcess;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class StateCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("cli");
    std::string ready = dir_ + "/ready.json";
    store_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        testing::RunfilePath("services/state_store/skein-state-store"), "--listen", "127.0.0.1:0",
        "--metrics-port", "0", "--ready-file", ready, "--data-dir", dir_ + "/data"});
    std::string content = testing::WaitForFile(ready, 30s);
    ASSERT_FALSE(content.empty()) << store_->Stderr();
    address_ = nlohmann::json::parse(content)["grpc"];
  }

  Result Skein(std::vector<std::string> args) {
    std::vector<std::string> argv = {testing::RunfilePath("tools/skein"), "state"};
    argv.insert(argv.begin() + 2, args.begin(), args.end());
    argv.insert(argv.begin() + 3, {"--store", address_});
    ChildProcess p(argv);
    Result r;
    std::optional<int> code = p.Wait(60s);
    r.code = code.value_or(-1);
    r.out = p.Stdout();
    r.err = p.Stderr();
    return r;
  }

  std::string dir_;
  std::string address_;
  std::unique_ptr<ChildProcess> store_;
};

TEST_F(StateCliTest, PutGetStatListRemove) {
  std::string data(300'000, '\0');
  std::mt19937 gen(5);
  for (char& c : data) c = static_cast<char>(gen());
  std::string in = dir_ + "/state.bin";
  std::ofstream(in, std::ios::binary) << data;

  Result put = Skein({"put", "--key", "sessions/cli", "--file", in, "--layers", "0:12",
                      "--position", "42", "--checksum", "crc32c"});
  ASSERT_EQ(put.code, 0) << put.err;
  EXPECT_THAT(put.out, HasSubstr("stored sessions/cli version"));

  std::string out = dir_ + "/copy.bin";
  Result get = Skein({"get", "--key", "sessions/cli", "--file", out});
  ASSERT_EQ(get.code, 0) << get.err;
  EXPECT_EQ(ReadFile(out), data);

  Result stat = Skein({"stat", "--key", "sessions/cli"});
  ASSERT_EQ(stat.code, 0) << stat.err;
  nlohmann::json info = nlohmann::json::parse(stat.out);
  EXPECT_EQ(info["key"], "sessions/cli");
  EXPECT_EQ(info["total_size"], "300000");
  EXPECT_EQ(info["parts"][0]["metadata"]["layers"]["last"], 12);
  EXPECT_EQ(info["parts"][0]["metadata"]["token_position"], "42");
  EXPECT_EQ(info["parts"][0]["checksum"]["algorithm"], "ALGORITHM_CRC32C");

  ASSERT_EQ(Skein({"put", "--key", "other/x", "--file", in}).code, 0);
  Result ls = Skein({"ls", "--prefix", "sessions/"});
  ASSERT_EQ(ls.code, 0) << ls.err;
  EXPECT_EQ(ls.out.rfind("sessions/cli\t", 0), 0u) << ls.out;
  EXPECT_EQ(std::count(ls.out.begin(), ls.out.end(), '\n'), 1) << ls.out;
  EXPECT_THAT(ls.out, HasSubstr("\t300000\t1\t-"));

  Result rm = Skein({"rm", "--key", "sessions/cli"});
  ASSERT_EQ(rm.code, 0) << rm.err;
  EXPECT_THAT(rm.out, HasSubstr("deleted sessions/cli"));
  rm = Skein({"rm", "--key", "sessions/cli"});
  ASSERT_EQ(rm.code, 0);
  EXPECT_THAT(rm.out, HasSubstr("did not exist"));
}

TEST_F(StateCliTest, AMissingKeyFailsWithNotFoundAndWritesNothing) {
  std::string fresh = dir_ + "/fresh.bin";
  Result get = Skein({"get", "--key", "sessions/none", "--file", fresh});
  EXPECT_NE(get.code, 0);
  EXPECT_THAT(get.err, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(get.err, HasSubstr("sessions/none"));
  EXPECT_FALSE(std::filesystem::exists(fresh));

  std::string existing = dir_ + "/existing.bin";
  std::ofstream(existing) << "keep me";
  EXPECT_NE(Skein({"get", "--key", "sessions/none", "--file", existing}).code, 0);
  EXPECT_EQ(ReadFile(existing), "keep me");
  // No temporary files are left beside the targets.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    files += entry.is_regular_file() ? 1 : 0;
  }
  EXPECT_EQ(files, 2);  // ready.json and existing.bin
}

TEST_F(StateCliTest, RefusalsExitNonZeroWithTheirCode) {
  std::string in = dir_ + "/small.bin";
  std::ofstream(in) << "tiny";
  Result bad_key = Skein({"put", "--key", "../escape", "--file", in});
  EXPECT_NE(bad_key.code, 0);
  EXPECT_THAT(bad_key.err, HasSubstr("INVALID_ARGUMENT"));
  Result cas = Skein({"put", "--key", "k", "--file", in, "--expected-version", "5"});
  EXPECT_NE(cas.code, 0);
  EXPECT_THAT(cas.err, HasSubstr("ABORTED"));
  Result missing_file = Skein({"put", "--key", "k", "--file", dir_ + "/nope"});
  EXPECT_NE(missing_file.code, 0);
  EXPECT_THAT(missing_file.err, HasSubstr("cannot read"));
  Result stat = Skein({"stat", "--key", "k"});
  EXPECT_NE(stat.code, 0);
  EXPECT_THAT(stat.err, HasSubstr("NOT_FOUND"));
}

}  // namespace
}  // namespace skein
