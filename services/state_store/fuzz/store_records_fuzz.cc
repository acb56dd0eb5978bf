// libFuzzer target: the state store opening a backend whose contents are arbitrary, as after
// disk corruption, a bug in an older version, or a hostile neighbour on a shared Redis. The
// input is a backend image (backend_image.h): records (serialized StoredEntry, StoredSnapshot
// and StoredPart protobufs) and blobs, under any group and name. The store rebuilds its index
// from them (StateStore::Open), then is driven through every operation that parses a stored
// record or reads a blob: Stat, Get of each part (zstd and checksums included), List across
// pages, commit or abort of each snapshot found, Touch, Delete, a Put that has to evict to
// make room, and a sweep after the clock has moved past every TTL.
//
// It may refuse anything (DATA_LOSS is the expected answer to a corrupt record), but must not
// crash, leak, or allocate what a record merely claims; whatever Get returns must match its
// checksum; and the store must still work afterwards: a fresh Put reads back intact.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "google/protobuf/stubs/logging.h"
#include "services/common/logging.h"
#include "services/state_store/checksum.h"
#include "services/state_store/fuzz/backend_image.h"
#include "services/state_store/memory_backend.h"
#include "services/state_store/store.h"

namespace skein::state_store {
namespace {

constexpr uint32_t kPartsTried = 4;

void CheckBlob(const StateStore::Blob& blob) {
  if (blob.data.size() != blob.header.size()) std::abort();
  const v1::Checksum& sum = blob.header.checksum();
  ChecksumAlgorithm algorithm;
  switch (sum.algorithm()) {
    case v1::Checksum::ALGORITHM_CRC32C:
      algorithm = ChecksumAlgorithm::kCrc32c;
      break;
    case v1::Checksum::ALGORITHM_XXH3_64:
      algorithm = ChecksumAlgorithm::kXxh3_64;
      break;
    default:
      std::abort();  // the store may only hand out data it could verify
  }
  if (ComputeChecksum(algorithm, blob.data) != sum.value()) std::abort();
}

void ReadEverything(StateStore& store, const std::set<std::string>& keys) {
  for (const std::string& key : keys) {
    (void)store.Stat(key);
    for (uint32_t part = 0; part < kPartsTried; ++part) {
      absl::StatusOr<StateStore::Blob> blob = store.Get(key, part);
      if (blob.ok()) CheckBlob(*blob);
    }
  }
  // Small pages, so page tokens are issued and followed; keys come strictly in order.
  v1::ListRequest list;
  list.set_page_size(2);
  std::string previous;
  for (int page = 0; page < 256; ++page) {
    absl::StatusOr<v1::ListResponse> listed = store.List(list);
    if (!listed.ok()) break;
    for (const v1::EntryInfo& e : listed->entries()) {
      if (!previous.empty() && e.key() <= previous) std::abort();
      previous = e.key();
    }
    if (listed->next_page_token().empty()) break;
    list.set_page_token(listed->next_page_token());
  }
}

void Exercise(StateStore& store, base::FakeClock& clock,
              const std::vector<fuzz::ImageObject>& objects) {
  std::set<std::string> keys;
  std::set<std::pair<std::string, std::string>> snapshots;  // (key, hex)
  for (const fuzz::ImageObject& o : objects) {
    keys.insert(o.group);
    if (!o.blob && o.name.rfind("s/", 0) == 0) snapshots.insert({o.group, o.name.substr(2)});
  }
  ReadEverything(store, keys);

  for (const auto& [key, hex] : snapshots) {
    const std::string id = MakeSnapshotId(hex, key);
    v1::CommitSnapshotRequest commit;
    commit.set_snapshot_id(id);
    if (!store.CommitSnapshot(commit).ok()) {
      v1::AbortSnapshotRequest abort;
      abort.set_snapshot_id(id);
      (void)store.AbortSnapshot(abort);
    }
  }
  ReadEverything(store, keys);

  int n = 0;
  for (const std::string& key : keys) {
    if (n++ % 2 == 0) {
      v1::TouchRequest touch;
      touch.set_key(key);
      touch.set_ttl_seconds(60);
      (void)store.Touch(touch);
    } else {
      v1::DeleteRequest del;
      del.set_key(key);
      (void)store.Delete(del);
    }
  }

  // A write that needs most of the capacity, so it evicts what the image left behind; its
  // bytes do not compress, so it keeps that size when stored.
  std::string data(3000, '\0');
  uint32_t noise = 12345;
  for (char& c : data) {
    noise = noise * 1664525u + 1013904223u;
    c = static_cast<char>(noise >> 24);
  }
  v1::PutHeader put;
  put.set_key("fuzz/fresh");
  put.set_total_size(data.size());
  put.mutable_checksum()->set_algorithm(v1::Checksum::ALGORITHM_CRC32C);
  put.mutable_checksum()->set_value(ComputeChecksum(ChecksumAlgorithm::kCrc32c, data));
  absl::StatusOr<v1::PutResponse> written = store.Put(put, data);
  if (written.ok()) {
    absl::StatusOr<StateStore::Blob> back = store.Get("fuzz/fresh", 0);
    if (!back.ok() || back->data != data) std::abort();
  }

  clock.Advance(absl::Hours(24 * 365 * 20));
  store.SweepOnce();
  ReadEverything(store, keys);
}

}  // namespace
}  // namespace skein::state_store

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Corrupt records are logged as errors, and protobuf logs every string field that is not
  // UTF-8: silence both, or the fuzzer's output is nothing else.
  skein::log::SetMinLevel(
      static_cast<skein::log::Level>(static_cast<int>(skein::log::Level::kError) + 1));
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace skein::state_store;
  const std::vector<fuzz::ImageObject> objects =
      fuzz::DecodeBackendImage(std::string_view(reinterpret_cast<const char*>(data), size));
  auto backend = std::make_unique<MemoryBackend>();
  for (const fuzz::ImageObject& o : objects) {
    if (o.blob) {
      (void)backend->WriteBlob(o.group, o.name, o.value, absl::InfiniteFuture());
    } else {
      Batch batch(o.group);
      batch.PutRecord(o.name, o.value);
      (void)backend->Apply(batch);
    }
  }
  skein::base::FakeClock clock;
  StoreOptions options;
  options.capacity_bytes = 4096;
  options.max_blob_bytes = 4096;
  options.zstd_level = 1;
  absl::StatusOr<std::unique_ptr<StateStore>> store =
      StateStore::Open(std::move(backend), options, &clock);
  if (store.ok()) Exercise(**store, clock, objects);
  return 0;
}
