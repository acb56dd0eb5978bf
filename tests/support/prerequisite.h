// Skips for missing prerequisites that turn into failures where they must be present.
//
// A test that needs something outside the build (reference data, redis-server, prometheus,
// clang++, node packages, curl, openssl) skips with a reason on a user's machine that lacks
// it. In CI (`CI=true`, or `SKEIN_REQUIRE_DATA=1` anywhere) the same test fails instead, so a
// missing install step cannot hide behind a skip. Missing hardware (a GPU, an ISA extension)
// is not a prerequisite: such tests use GTEST_SKIP directly and skip everywhere.
#ifndef SKEIN_TESTS_SUPPORT_PREREQUISITE_H_
#define SKEIN_TESTS_SUPPORT_PREREQUISITE_H_

#include <cstdlib>
#include <cstring>

#include "gtest/gtest.h"

namespace skein::testing {

// True when CI is "true" or "1", or SKEIN_REQUIRE_DATA is set to anything but "" or "0".
inline bool PrerequisitesRequired() {
  const char* ci = std::getenv("CI");
  if (ci != nullptr && (std::strcmp(ci, "true") == 0 || std::strcmp(ci, "1") == 0)) return true;
  const char* require = std::getenv("SKEIN_REQUIRE_DATA");
  return require != nullptr && *require != '\0' && std::strcmp(require, "0") != 0;
}

inline ::testing::TestPartResult::Type MissingPrerequisiteResult() {
  return PrerequisitesRequired() ? ::testing::TestPartResult::kFatalFailure
                                 : ::testing::TestPartResult::kSkip;
}

inline const char* MissingPrerequisitePrefix() {
  return PrerequisitesRequired()
             ? "missing prerequisite (a failure, not a skip, because CI or SKEIN_REQUIRE_DATA "
               "is set):"
             : "missing prerequisite:";
}

}  // namespace skein::testing

// Use like GTEST_SKIP(): `if (path.empty()) SKEIN_MISSING_PREREQUISITE() << "no vocab";`.
// Returns from the current function (a void test body, SetUp or helper), skipping the test or,
// where prerequisites are required, failing it.
#define SKEIN_MISSING_PREREQUISITE()                                            \
  return ::testing::internal::AssertHelper(                                     \
             ::skein::testing::MissingPrerequisiteResult(), __FILE__, __LINE__, \
             ::skein::testing::MissingPrerequisitePrefix()) = ::testing::Message()

#endif  // SKEIN_TESTS_SUPPORT_PREREQUISITE_H_
