// Writes seeds for store_records_fuzz_test: backend images (backend_image.h) taken from real
// stores after real operations, so the fuzzer starts from records and blobs that the store
// itself wrote. Two stores, one compressing (zstd) and one not, each holding a plain entry, an
// entry with a TTL, one checksummed with XXH3, a committed two-part snapshot, and a snapshot
// left open with one of its two parts written. Each store's whole backend is one seed, and
// each key's objects on their own are another, smaller one. One more seed is a regression
// case: a record claiming a terabyte for a zstd frame that does not state its size (the store
// used to allocate whatever the record claimed).
#include <zstd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "services/state_store/checksum.h"
#include "services/state_store/fuzz/backend_image.h"
#include "services/state_store/memory_backend.h"
#include "services/state_store/store.h"

namespace skein::state_store {
namespace {

// Compressible but not constant, so zstd stores it compressed.
std::string Data(size_t size, int seed) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>('a' + (i * seed / 7) % 5);
  return out;
}

v1::PutHeader Header(const std::string& key, const std::string& data, bool xxh3) {
  v1::PutHeader h;
  h.set_key(key);
  h.set_total_size(data.size());
  const ChecksumAlgorithm algorithm =
      xxh3 ? ChecksumAlgorithm::kXxh3_64 : ChecksumAlgorithm::kCrc32c;
  h.mutable_checksum()->set_algorithm(xxh3 ? v1::Checksum::ALGORITHM_XXH3_64
                                           : v1::Checksum::ALGORITHM_CRC32C);
  h.mutable_checksum()->set_value(ComputeChecksum(algorithm, data));
  h.mutable_metadata()->mutable_model()->set_name("rwkv7-fuzz");
  h.mutable_metadata()->set_token_position(12);
  return h;
}

absl::Status Fill(StateStore& store) {
  const std::string a = Data(300, 3), b = Data(200, 5), c = Data(100, 7);
  if (auto r = store.Put(Header("sessions/plain", a, false), a); !r.ok()) return r.status();
  v1::PutHeader ttl = Header("sessions/ttl", b, false);
  ttl.set_ttl_seconds(3600);
  if (auto r = store.Put(ttl, b); !r.ok()) return r.status();
  if (auto r = store.Put(Header("states/xxh3", c, true), c); !r.ok()) return r.status();
  for (const char* key : {"states/committed", "states/open"}) {
    v1::BeginSnapshotRequest begin;
    begin.set_key(key);
    begin.set_part_count(2);
    absl::StatusOr<v1::BeginSnapshotResponse> snap = store.BeginSnapshot(begin);
    if (!snap.ok()) return snap.status();
    const bool commit = std::string(key) == "states/committed";
    for (uint32_t part = 0; part < (commit ? 2u : 1u); ++part) {
      const std::string data = Data(150 + part, 11 + part);
      v1::PutHeader h = Header(key, data, part == 1);
      h.set_snapshot_id(snap->snapshot_id());
      h.set_part(part);
      h.mutable_metadata()->mutable_layers()->set_first(part * 4);
      h.mutable_metadata()->mutable_layers()->set_last(part * 4 + 4);
      if (auto r = store.Put(h, data); !r.ok()) return r.status();
    }
    if (commit) {
      v1::CommitSnapshotRequest request;
      request.set_snapshot_id(snap->snapshot_id());
      if (auto r = store.CommitSnapshot(request); !r.ok()) return r.status();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<fuzz::ImageObject>> Dump(StorageBackend& backend) {
  std::vector<fuzz::ImageObject> objects;
  absl::Status s = backend.ScanRecords(
      [&](std::string_view group, std::string_view name, std::string_view value) {
        objects.push_back({false, std::string(group), std::string(name), std::string(value)});
      });
  if (!s.ok()) return s;
  std::vector<std::pair<std::string, std::string>> blobs;
  s = backend.ScanBlobs(
      [&](std::string_view group, std::string_view name) { blobs.emplace_back(group, name); });
  if (!s.ok()) return s;
  for (const auto& [group, name] : blobs) {
    absl::StatusOr<std::string> value = backend.ReadBlob(group, name);
    if (!value.ok()) return value.status();
    objects.push_back({true, group, name, *std::move(value)});
  }
  return objects;
}

// An entry whose record says its one part holds 2^40 bytes, stored as a zstd frame of 100
// bytes that leaves its content size out.
std::vector<fuzz::ImageObject> LyingEntry() {
  const std::string data(100, 'a');
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  std::string frame(ZSTD_compressBound(data.size()), '\0');
  frame.resize(ZSTD_compress2(cctx, frame.data(), frame.size(), data.data(), data.size()));
  ZSTD_freeCCtx(cctx);
  StoredEntry entry;
  entry.set_format(1);
  entry.set_key("sessions/lie");
  entry.set_version(1);
  StoredPart* part = entry.add_parts();
  part->set_size(uint64_t{1} << 40);
  part->mutable_checksum()->set_algorithm(v1::Checksum::ALGORITHM_CRC32C);
  part->mutable_checksum()->set_value(ComputeChecksum(ChecksumAlgorithm::kCrc32c, data));
  part->set_blob("b/0123456789abcdef0123456789abcdef");
  part->set_compression(COMPRESSION_ZSTD);
  part->set_stored_size(frame.size());
  return {{false, "sessions/lie", "e", entry.SerializeAsString()},
          {true, "sessions/lie", part->blob(), frame}};
}

bool WriteImage(const std::string& path, const std::vector<fuzz::ImageObject>& objects) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << fuzz::EncodeBackendImage(objects);
  return static_cast<bool>(out);
}

int Main(const std::string& dir) {
  if (!WriteImage(dir + "/lying_size.image", LyingEntry())) {
    std::fprintf(stderr, "store_records_fuzz_seeds: cannot write into %s\n", dir.c_str());
    return 1;
  }
  for (int level : {0, 1}) {
    base::FakeClock clock;  // the fuzz target's clock starts at the same time
    StoreOptions options;
    options.zstd_level = level;
    absl::StatusOr<std::unique_ptr<StateStore>> store =
        StateStore::Open(std::make_unique<MemoryBackend>(), options, &clock);
    absl::Status s = store.ok() ? Fill(**store) : store.status();
    absl::StatusOr<std::vector<fuzz::ImageObject>> objects = s.ok() ? Dump((*store)->backend()) : s;
    if (!objects.ok()) {
      std::fprintf(stderr, "store_records_fuzz_seeds: %s\n",
                   std::string(objects.status().message()).c_str());
      return 1;
    }
    const std::string prefix = dir + (level == 0 ? "/plain" : "/zstd");
    bool ok = WriteImage(prefix + ".image", *objects);
    std::map<std::string, std::vector<fuzz::ImageObject>> by_key;
    for (const fuzz::ImageObject& o : *objects) by_key[o.group].push_back(o);
    int n = 0;
    for (const auto& [key, group] : by_key) {
      ok &= WriteImage(prefix + "_key" + std::to_string(n++) + ".image", group);
    }
    if (!ok) {
      std::fprintf(stderr, "store_records_fuzz_seeds: cannot write into %s\n", dir.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace skein::state_store

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: store_records_fuzz_seeds DIR\n");
    return 2;
  }
  return skein::state_store::Main(argv[1]);
}
