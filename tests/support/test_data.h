// Locates reference data (goldens, vocabularies) for tests.
//
// Search order: $SKEIN_SHARED_DIR; the `shared/` folder beside the source tree (../shared
// from the repository root); the project's own tests/data/; a download where the machine has
// internet and the file has a known upstream location (saved under the ignored
// tests/data/downloads/). When nothing is found, tests skip with
// the reason this helper gives.
#ifndef SKEIN_TESTS_SUPPORT_TEST_DATA_H_
#define SKEIN_TESTS_SUPPORT_TEST_DATA_H_

#include <string>

#include "tests/support/prerequisite.h"

namespace skein::testing {

// Returns the absolute path of `relative` (e.g. "golden/rwkv7/tiny-l2-c128-v256.pth") in the
// first data root that has it, or an empty string. On failure, `*why` (if given) says which
// places were searched.
std::string FindTestData(const std::string& relative, std::string* why = nullptr);

// The repository root (where WORKSPACE is), found from the test's runfiles; empty if unknown.
std::string SourceRoot();

// Reads a whole file into a string; aborts the test binary with a message on failure.
std::string ReadFileOrDie(const std::string& path);

}  // namespace skein::testing

// Sets `var` to the path of `relative` or skips the current GoogleTest test with the reason
// (fails it where prerequisites are required; see prerequisite.h).
#define SKEIN_REQUIRE_TEST_DATA(var, relative)                                              \
  std::string var;                                                                          \
  do {                                                                                      \
    std::string skein_why_;                                                                 \
    var = ::skein::testing::FindTestData(relative, &skein_why_);                            \
    if (var.empty()) SKEIN_MISSING_PREREQUISITE() << "test data not found: " << skein_why_; \
  } while (0)

#endif  // SKEIN_TESTS_SUPPORT_TEST_DATA_H_
