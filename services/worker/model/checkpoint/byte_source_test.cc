// MapFile and ByteSourceFromString, and what happens when a mapped file shrinks underneath.
#include "services/worker/model/checkpoint/byte_source.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace skein::model {
namespace {

std::string TempFile(const std::string& name, const std::string& content) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir ? dir : "/tmp") + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

TEST(ByteSourceTest, MapsTheWholeFile) {
  const std::string content(10000, 'w');
  absl::StatusOr<std::shared_ptr<const ByteSource>> mapped = MapFile(TempFile("w.bin", content));
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  EXPECT_EQ((*mapped)->bytes(), content);
  absl::StatusOr<std::shared_ptr<const ByteSource>> empty = MapFile(TempFile("e.bin", ""));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE((*empty)->bytes().empty());
  EXPECT_EQ(MapFile("/nonexistent/x.pth").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(MapFile("/").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ByteSourceFromString("abc")->bytes(), "abc");
}

TEST(ByteSourceDeathTest, ATruncatedMappingIsExplainedNotASigbus) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string path = TempFile("t.pth", std::string(1 << 20, 'x'));
  EXPECT_EXIT(
      {
        absl::StatusOr<std::shared_ptr<const ByteSource>> mapped = MapFile(path);
        if (!mapped.ok()) std::abort();
        if (truncate(path.c_str(), 100) != 0) std::abort();
        volatile char c = (*mapped)->bytes()[900000];  // beyond the new end
        (void)c;
        std::exit(0);
      },
      ::testing::ExitedWithCode(kTruncatedMappingExitCode),
      "the checkpoint .*t\\.pth changed on disk.*reading byte 900000");
}

TEST(ByteSourceDeathTest, OtherBusErrorsStillKill) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string path = TempFile("other.bin", std::string(1 << 20, 'y'));
  EXPECT_EXIT(
      {
        // A mapping of our own, not a checkpoint: its SIGBUS keeps the default action.
        absl::StatusOr<std::shared_ptr<const ByteSource>> unrelated = MapFile(path);  // installs
        (void)unrelated;
        const std::string other = TempFile("raw.bin", std::string(1 << 20, 'z'));
        FILE* f = std::fopen(other.c_str(), "r");
        if (f == nullptr) std::abort();
        void* raw = mmap(nullptr, 1 << 20, PROT_READ, MAP_PRIVATE, fileno(f), 0);
        if (raw == MAP_FAILED || truncate(other.c_str(), 0) != 0) std::abort();
        volatile char c = static_cast<const char*>(raw)[500000];
        (void)c;
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGBUS), "");
}

}  // namespace
}  // namespace skein::model
