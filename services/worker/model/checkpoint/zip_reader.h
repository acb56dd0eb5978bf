// Reads the central directory of a zip archive held in memory (zip64 included) and locates
// each entry's data. Only what PyTorch checkpoints need: no multi-disk archives, no
// encryption; entries are stored or deflated.
//
// A ZipReader borrows the bytes it was opened on; it is immutable after Open and safe to share
// between threads.
#ifndef SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_ZIP_READER_H_
#define SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_ZIP_READER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace skein::model {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 = stored, 8 = deflate
  uint16_t flags = 0;
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  uint64_t local_header_offset = 0;
  uint64_t data_offset = 0;  // first byte of the (possibly compressed) data
};

class ZipReader {
 public:
  static constexpr uint16_t kStored = 0;
  static constexpr uint16_t kDeflated = 8;

  // Parses the archive. DATA_LOSS for truncated or inconsistent structures, INVALID_ARGUMENT
  // for archives that are not zip files or use unsupported features. Errors name `path`.
  static absl::StatusOr<ZipReader> Open(std::string_view bytes, std::string path);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  // Null if there is no entry of that name.
  const ZipEntry* Find(std::string_view name) const;

  // The bytes of a stored entry, in place. INVALID_ARGUMENT if the entry is compressed.
  absl::StatusOr<std::string_view> StoredData(const ZipEntry& entry) const;
  // The decompressed bytes of an entry (stored or deflated), CRC-checked. Refuses entries
  // whose uncompressed size exceeds `max_size`.
  absl::StatusOr<std::string> ReadAll(const ZipEntry& entry, uint64_t max_size) const;

 private:
  ZipReader(std::string_view bytes, std::string path) : bytes_(bytes), path_(std::move(path)) {}
  absl::Status Parse();
  absl::Status LocateData(ZipEntry& entry) const;

  std::string_view bytes_;
  std::string path_;
  std::vector<ZipEntry> entries_;
  absl::flat_hash_map<std::string, size_t> index_;
};

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_ZIP_READER_H_
