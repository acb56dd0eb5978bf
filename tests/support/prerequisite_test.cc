// SKEIN_MISSING_PREREQUISITE skips on a user's machine and fails where CI or
// SKEIN_REQUIRE_DATA asks for every prerequisite.
#include "tests/support/prerequisite.h"

#include <cstdlib>
#include <string>

#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"

namespace skein::testing {
namespace {

bool reached_after = false;

void MissingVocabulary() {
  SKEIN_MISSING_PREREQUISITE() << "no vocabulary at /nowhere";
  reached_after = true;
}

// The result MissingVocabulary records with CI and SKEIN_REQUIRE_DATA set as given (null:
// unset).
::testing::TestPartResult Record(const char* ci, const char* require) {
  const char* saved_ci = std::getenv("CI");
  const char* saved_require = std::getenv("SKEIN_REQUIRE_DATA");
  const std::string old_ci = saved_ci ? saved_ci : "",
                    old_require = saved_require ? saved_require : "";
  ci ? setenv("CI", ci, 1) : unsetenv("CI");
  require ? setenv("SKEIN_REQUIRE_DATA", require, 1) : unsetenv("SKEIN_REQUIRE_DATA");
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    reached_after = false;
    MissingVocabulary();
  }
  saved_ci ? setenv("CI", old_ci.c_str(), 1) : unsetenv("CI");
  saved_require ? setenv("SKEIN_REQUIRE_DATA", old_require.c_str(), 1)
                : unsetenv("SKEIN_REQUIRE_DATA");
  EXPECT_FALSE(reached_after) << "the macro must return";
  EXPECT_EQ(results.size(), 1);
  return results.GetTestPartResult(0);
}

TEST(PrerequisiteTest, SkipsOnAUsersMachine) {
  for (const char* require : {static_cast<const char*>(nullptr), "", "0"}) {
    ::testing::TestPartResult r = Record(nullptr, require);
    EXPECT_TRUE(r.skipped()) << (require ? require : "(unset)");
    EXPECT_NE(std::string(r.message()).find("no vocabulary at /nowhere"), std::string::npos);
  }
  EXPECT_TRUE(Record("false", nullptr).skipped());
}

TEST(PrerequisiteTest, FailsInCi) {
  for (const char* ci : {"true", "1"}) {
    ::testing::TestPartResult r = Record(ci, nullptr);
    EXPECT_TRUE(r.fatally_failed()) << ci;
    EXPECT_NE(std::string(r.message()).find("no vocabulary at /nowhere"), std::string::npos);
    EXPECT_NE(std::string(r.message()).find("CI or SKEIN_REQUIRE_DATA"), std::string::npos);
  }
}

TEST(PrerequisiteTest, FailsWhenDataIsRequired) {
  EXPECT_TRUE(Record(nullptr, "1").fatally_failed());
  EXPECT_TRUE(Record("false", "yes").fatally_failed());
}

}  // namespace
}  // namespace skein::testing
