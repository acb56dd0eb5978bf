#include "services/worker/model/checkpoint/zip_reader.h"

#include <zlib.h>

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/absl_bridge.h"
#include "services/worker/model/checkpoint/byte_io.h"

namespace skein::model {
namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndOfCentralDirSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kEndOfCentralDirSize = 22;
constexpr size_t kZip64LocatorSize = 20;
constexpr size_t kZip64EndSize = 56;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kLocalHeaderSize = 30;
constexpr uint16_t kZip64ExtraId = 0x0001;

// True if [offset, offset + len) lies inside a buffer of `size` bytes, without overflow.
bool InBounds(uint64_t offset, uint64_t len, uint64_t size) {
  return offset <= size && len <= size - offset;
}

}  // namespace

absl::StatusOr<ZipReader> ZipReader::Open(std::string_view bytes, std::string path) {
  ZipReader reader(bytes, std::move(path));
  if (absl::Status s = reader.Parse(); !s.ok()) return s;
  return reader;
}

const ZipEntry* ZipReader::Find(std::string_view name) const {
  auto it = index_.find(base::AsAbsl(name));
  return it == index_.end() ? nullptr : &entries_[it->second];
}

absl::Status ZipReader::Parse() {
  const uint64_t size = bytes_.size();
  const char* base = bytes_.data();
  auto corrupt = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat(path_, ": corrupt zip archive: ", what));
  };
  if (size < kEndOfCentralDirSize) {
    return absl::DataLossError(
        absl::StrCat(path_, ": too short to be a zip archive (", size, " bytes)"));
  }

  // The end-of-central-directory record sits in the last 22 + 65535 bytes; scan backwards for
  // a signature whose comment length reaches exactly to the end of the file.
  uint64_t eocd = UINT64_MAX;
  const uint64_t lowest =
      size > kEndOfCentralDirSize + 0xFFFF ? size - kEndOfCentralDirSize - 0xFFFF : 0;
  for (uint64_t pos = size - kEndOfCentralDirSize + 1; pos-- > lowest;) {
    if (LoadLE<uint32_t>(base + pos) != kEndOfCentralDirSig) continue;
    uint16_t comment_len = LoadLE<uint16_t>(base + pos + 20);
    if (pos + kEndOfCentralDirSize + comment_len == size) {
      eocd = pos;
      break;
    }
  }
  if (eocd == UINT64_MAX) {
    return absl::DataLossError(absl::StrCat(
        path_, ": no zip end-of-central-directory record (not a zip archive, or truncated)"));
  }
  const char* e = base + eocd;
  uint16_t disk = LoadLE<uint16_t>(e + 4);
  uint16_t cd_disk = LoadLE<uint16_t>(e + 6);
  uint64_t count = LoadLE<uint16_t>(e + 10);
  uint64_t cd_size = LoadLE<uint32_t>(e + 12);
  uint64_t cd_offset = LoadLE<uint32_t>(e + 16);

  // Zip64: a locator just before the record points at the 64-bit end record.
  if (eocd >= kZip64LocatorSize &&
      LoadLE<uint32_t>(base + eocd - kZip64LocatorSize) == kZip64LocatorSig) {
    uint64_t z64 = LoadLE<uint64_t>(base + eocd - kZip64LocatorSize + 8);
    if (!InBounds(z64, kZip64EndSize, eocd - kZip64LocatorSize) ||
        LoadLE<uint32_t>(base + z64) != kZip64EndSig) {
      return corrupt("bad zip64 end-of-central-directory record");
    }
    const char* z = base + z64;
    disk = static_cast<uint16_t>(std::min<uint32_t>(LoadLE<uint32_t>(z + 16), 0xFFFF));
    cd_disk = static_cast<uint16_t>(std::min<uint32_t>(LoadLE<uint32_t>(z + 20), 0xFFFF));
    count = LoadLE<uint64_t>(z + 32);
    cd_size = LoadLE<uint64_t>(z + 40);
    cd_offset = LoadLE<uint64_t>(z + 48);
  } else if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    return corrupt("zip64 fields without a zip64 end-of-central-directory locator");
  }
  if (disk != 0 || cd_disk != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": multi-disk zip archives are not supported"));
  }
  if (!InBounds(cd_offset, cd_size, size)) {
    return corrupt(absl::StrCat("central directory (offset ", cd_offset, ", ", cd_size,
                                " bytes) lies outside the file (", size, " bytes)"));
  }
  if (count > cd_size / kCentralHeaderSize) {
    return corrupt(
        absl::StrCat(count, " entries cannot fit in a central directory of ", cd_size, " bytes"));
  }

  entries_.reserve(count);
  uint64_t pos = cd_offset;
  const uint64_t cd_end = cd_offset + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    if (!InBounds(pos, kCentralHeaderSize, cd_end) ||
        LoadLE<uint32_t>(base + pos) != kCentralHeaderSig) {
      return corrupt(absl::StrCat("central directory entry ", i, " is missing or damaged"));
    }
    const char* h = base + pos;
    ZipEntry entry;
    entry.flags = LoadLE<uint16_t>(h + 8);
    entry.method = LoadLE<uint16_t>(h + 10);
    entry.crc32 = LoadLE<uint32_t>(h + 16);
    entry.compressed_size = LoadLE<uint32_t>(h + 20);
    entry.uncompressed_size = LoadLE<uint32_t>(h + 24);
    uint16_t name_len = LoadLE<uint16_t>(h + 28);
    uint16_t extra_len = LoadLE<uint16_t>(h + 30);
    uint16_t comment_len = LoadLE<uint16_t>(h + 32);
    uint16_t start_disk = LoadLE<uint16_t>(h + 34);
    entry.local_header_offset = LoadLE<uint32_t>(h + 42);
    const uint64_t var_len = uint64_t{name_len} + extra_len + comment_len;
    if (!InBounds(pos + kCentralHeaderSize, var_len, cd_end)) {
      return corrupt(absl::StrCat("central directory entry ", i, " runs past its end"));
    }
    entry.name.assign(h + kCentralHeaderSize, name_len);

    // Zip64 extra field: 64-bit values for exactly the fields saturated at 0xFFFFFFFF.
    const char* extra = h + kCentralHeaderSize + name_len;
    for (uint32_t x = 0; x + 4 <= extra_len;) {
      uint16_t id = LoadLE<uint16_t>(extra + x);
      uint16_t len = LoadLE<uint16_t>(extra + x + 2);
      if (x + 4 + len > extra_len) {
        return corrupt(absl::StrCat("extra field of '", entry.name, "' runs past its end"));
      }
      if (id == kZip64ExtraId) {
        const char* f = extra + x + 4;
        uint32_t used = 0;
        auto take = [&](uint64_t& field) -> bool {
          if (field != 0xFFFFFFFF) return true;
          if (used + 8 > len) return false;
          field = LoadLE<uint64_t>(f + used);
          used += 8;
          return true;
        };
        if (!take(entry.uncompressed_size) || !take(entry.compressed_size) ||
            !take(entry.local_header_offset)) {
          return corrupt(absl::StrCat("zip64 extra field of '", entry.name, "' is too short"));
        }
      }
      x += 4 + len;
    }
    if (start_disk != 0 && start_disk != 0xFFFF) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": multi-disk zip archives are not supported"));
    }
    if (entry.flags & 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": zip entry '", entry.name, "' is encrypted"));
    }
    if (absl::Status s = LocateData(entry); !s.ok()) return s;
    if (!index_.emplace(entry.name, entries_.size()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": zip entry '", entry.name, "' appears more than once"));
    }
    entries_.push_back(std::move(entry));
    pos += kCentralHeaderSize + var_len;
  }
  return absl::OkStatus();
}

absl::Status ZipReader::LocateData(ZipEntry& entry) const {
  const uint64_t size = bytes_.size();
  const char* base = bytes_.data();
  if (!InBounds(entry.local_header_offset, kLocalHeaderSize, size) ||
      LoadLE<uint32_t>(base + entry.local_header_offset) != kLocalHeaderSig) {
    return absl::DataLossError(absl::StrCat(path_, ": corrupt zip archive: local header of '",
                                            entry.name, "' is missing or damaged"));
  }
  const char* h = base + entry.local_header_offset;
  uint64_t name_len = LoadLE<uint16_t>(h + 26);
  uint64_t extra_len = LoadLE<uint16_t>(h + 28);
  if (!InBounds(entry.local_header_offset + kLocalHeaderSize, name_len + extra_len, size) ||
      std::string_view(h + kLocalHeaderSize, name_len) != entry.name) {
    return absl::DataLossError(absl::StrCat(path_, ": corrupt zip archive: local header of '",
                                            entry.name, "' names a different file"));
  }
  entry.data_offset = entry.local_header_offset + kLocalHeaderSize + name_len + extra_len;
  if (!InBounds(entry.data_offset, entry.compressed_size, size)) {
    return absl::DataLossError(absl::StrCat(path_, ": zip entry '", entry.name, "' (",
                                            entry.compressed_size,
                                            " bytes) runs past the end of the file"));
  }
  if (entry.method == ZipReader::kStored && entry.compressed_size != entry.uncompressed_size) {
    return absl::DataLossError(absl::StrCat(
        path_, ": corrupt zip archive: stored entry '", entry.name, "' has different stored (",
        entry.compressed_size, ") and real (", entry.uncompressed_size, ") sizes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string_view> ZipReader::StoredData(const ZipEntry& entry) const {
  if (entry.method != kStored) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": zip entry '", entry.name,
                                                   "' is compressed (method ", entry.method,
                                                   "); tensor data must be stored uncompressed"));
  }
  return bytes_.substr(entry.data_offset, entry.compressed_size);
}

absl::StatusOr<std::string> ZipReader::ReadAll(const ZipEntry& entry, uint64_t max_size) const {
  if (entry.uncompressed_size > max_size) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": zip entry '", entry.name, "' is ",
                                                   entry.uncompressed_size,
                                                   " bytes, more than the limit of ", max_size));
  }
  std::string out;
  std::string_view in = bytes_.substr(entry.data_offset, entry.compressed_size);
  if (entry.method == kStored) {
    out.assign(in);
  } else if (entry.method == kDeflated) {
    out.resize(entry.uncompressed_size);
    z_stream zs{};
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
      return absl::InternalError(absl::StrCat(path_, ": cannot initialise zlib"));
    }
    // zlib counts in uInt; feed at most 1 GiB at a time.
    uint64_t in_left = in.size(), out_left = out.size();
    const char* next_in = in.data();
    char* next_out = out.data();
    int rc = Z_OK;
    while (rc == Z_OK) {
      uInt in_chunk = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
      uInt out_chunk = static_cast<uInt>(std::min<uint64_t>(out_left, 1u << 30));
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(next_in));
      zs.avail_in = in_chunk;
      zs.next_out = reinterpret_cast<Bytef*>(next_out);
      zs.avail_out = out_chunk;
      rc = inflate(&zs, Z_NO_FLUSH);
      uint64_t consumed = in_chunk - zs.avail_in, produced = out_chunk - zs.avail_out;
      next_in += consumed;
      in_left -= consumed;
      next_out += produced;
      out_left -= produced;
      if (rc == Z_OK && consumed == 0 && produced == 0) rc = Z_BUF_ERROR;
    }
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || out_left != 0) {
      return absl::DataLossError(absl::StrCat(path_, ": zip entry '", entry.name,
                                              "' does not inflate to its recorded size"));
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": zip entry '", entry.name,
                                                   "' uses unsupported compression method ",
                                                   entry.method));
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  for (size_t off = 0; off < out.size(); off += 1u << 30) {
    size_t n = std::min<size_t>(out.size() - off, 1u << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(out.data() + off), static_cast<uInt>(n));
  }
  if (static_cast<uint32_t>(crc) != entry.crc32) {
    return absl::DataLossError(
        absl::StrCat(path_, ": zip entry '", entry.name, "' fails its CRC-32 check"));
  }
  return out;
}

}  // namespace skein::model
