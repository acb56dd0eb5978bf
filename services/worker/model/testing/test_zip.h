// Test helpers that take zip archives apart and put them back together, so tests can build
// checkpoints with hand-made pickles, damaged records or unusual layouts. Test-only.
#ifndef SKEIN_SERVICES_WORKER_MODEL_TESTING_TEST_ZIP_H_
#define SKEIN_SERVICES_WORKER_MODEL_TESTING_TEST_ZIP_H_

#include <cstdint>
#include <string>
#include <vector>

namespace skein::model::testing {

struct ZipRecord {
  std::string name;
  std::string data;
  bool deflate = false;  // store it deflated instead of stored
};

// A zip archive of `records` in order. Data of stored records is aligned to `align` bytes
// (1 = no padding), as torch aligns to 64.
std::string BuildZip(const std::vector<ZipRecord>& records, uint64_t align = 64);

// The records of a zip archive (aborts the test binary on malformed input).
std::vector<ZipRecord> ReadZip(const std::string& bytes);

// Replaces the data of record `name` (which must exist).
void SetRecord(std::vector<ZipRecord>& records, const std::string& name, std::string data);
// The data of record `name`.
const std::string& GetRecord(const std::vector<ZipRecord>& records, const std::string& name);

// Reads and writes whole files.
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& bytes);

// A fresh path under the test's temporary directory.
std::string TempPath(const std::string& name);

}  // namespace skein::model::testing

#endif  // SKEIN_SERVICES_WORKER_MODEL_TESTING_TEST_ZIP_H_
