// One suite, three backends: everything StateStore promises (state_store.proto) must hold the
// same on RocksDB, Redis (a real redis-server on a free loopback port) and memory. Time is a
// base::FakeClock, so TTLs, leases and snapshot time-outs are exact.
#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "services/state_store/checksum.h"
#include "services/state_store/store.h"
#include "services/state_store/testing/backend_fixture.h"
#include "skein/state_store/records.pb.h"
#include "tests/support/prerequisite.h"

namespace skein::state_store {
namespace {

using ::skein::state_store::testing::BackendFactory;
using ::skein::state_store::testing::BackendKind;
using ::testing::HasSubstr;

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(gen());
  return out;
}

v1::PutHeader HeaderFor(const std::string& key, const std::string& data,
                        ChecksumAlgorithm algorithm = ChecksumAlgorithm::kXxh3_64) {
  v1::PutHeader header;
  header.set_key(key);
  header.set_total_size(data.size());
  header.mutable_checksum()->set_algorithm(algorithm == ChecksumAlgorithm::kCrc32c
                                               ? v1::Checksum::ALGORITHM_CRC32C
                                               : v1::Checksum::ALGORITHM_XXH3_64);
  header.mutable_checksum()->set_value(ComputeChecksum(algorithm, data));
  return header;
}

// The value of a counter or gauge in `registry` whose labels include `labels`.
double MetricValue(prometheus::Registry& registry, const std::string& name,
                   const std::map<std::string, std::string>& labels = {}) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      bool match = true;
      for (const auto& [k, v] : labels) {
        bool found = false;
        for (const prometheus::ClientMetric::Label& l : metric.label) {
          found |= l.name == k && l.value == v;
        }
        match &= found;
      }
      if (match)
        return family.type == prometheus::MetricType::Counter ? metric.counter.value
                                                              : metric.gauge.value;
    }
  }
  return -1;
}

class StoreConformanceTest : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override {
    factory_ = std::make_unique<BackendFactory>(GetParam());
    if (!factory_->unavailable_reason().empty()) {
      SKEIN_MISSING_PREREQUISITE() << factory_->unavailable_reason();
    }
    Open();
  }

  // (Re)opens the store over the factory's data, as a restarted process would.
  void Open(StoreOptions options = StoreOptions()) {
    store_.reset();
    registry_ = std::make_unique<prometheus::Registry>();
    absl::StatusOr<std::unique_ptr<StorageBackend>> backend = factory_->Make();
    ASSERT_TRUE(backend.ok()) << backend.status();
    absl::StatusOr<std::unique_ptr<StoreIndex>> index = factory_->MakeIndex();
    ASSERT_TRUE(index.ok()) << index.status();
    absl::StatusOr<std::unique_ptr<StateStore>> store =
        StateStore::Open(*std::move(backend), options, &clock_, registry_.get(), *std::move(index));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  absl::StatusOr<v1::PutResponse> Put(const std::string& key, const std::string& data,
                                      std::optional<uint64_t> expected_version = std::nullopt,
                                      uint64_t ttl_seconds = 0) {
    v1::PutHeader header = HeaderFor(key, data);
    if (expected_version) header.set_expected_version(*expected_version);
    header.set_ttl_seconds(ttl_seconds);
    return store_->Put(header, data);
  }

  absl::StatusOr<v1::PutResponse> PutPart(const std::string& key, const std::string& id,
                                          uint32_t part, const std::string& data,
                                          uint64_t position = 7) {
    v1::PutHeader header = HeaderFor(key, data);
    header.set_snapshot_id(id);
    header.set_part(part);
    header.mutable_metadata()->set_token_position(position);
    header.mutable_metadata()->mutable_model()->set_fingerprint("f00d");
    header.mutable_metadata()->mutable_layers()->set_first(part * 4);
    header.mutable_metadata()->mutable_layers()->set_last(part * 4 + 4);
    return store_->Put(header, data);
  }

  std::string Begin(const std::string& key, uint32_t parts, uint64_t timeout_seconds = 0) {
    v1::BeginSnapshotRequest request;
    request.set_key(key);
    request.set_part_count(parts);
    request.set_open_timeout_seconds(timeout_seconds);
    absl::StatusOr<v1::BeginSnapshotResponse> response = store_->BeginSnapshot(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->snapshot_id() : "";
  }

  absl::StatusOr<v1::EntryInfo> Commit(const std::string& id,
                                       std::optional<uint64_t> expected_version = std::nullopt) {
    v1::CommitSnapshotRequest request;
    request.set_snapshot_id(id);
    if (expected_version) request.set_expected_version(*expected_version);
    return store_->CommitSnapshot(request);
  }

  absl::StatusOr<std::string> GetData(const std::string& key, uint32_t part = 0) {
    absl::StatusOr<StateStore::Blob> blob = store_->Get(key, part);
    if (!blob.ok()) return blob.status();
    return blob->data;
  }

  double Metric(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    return MetricValue(*registry_, name, labels);
  }

  // Every record name the backend holds for `key`.
  std::set<std::string> RecordNames(const std::string& key) {
    std::set<std::string> names;
    EXPECT_TRUE(
        store_->backend()
            .ScanRecords([&](std::string_view group, std::string_view name, std::string_view) {
              if (group == key) names.insert(std::string(name));
            })
            .ok());
    return names;
  }
  std::set<std::string> BlobNames(const std::string& key) {
    std::set<std::string> names;
    EXPECT_TRUE(store_->backend()
                    .ScanBlobs([&](std::string_view group, std::string_view name) {
                      if (group == key) names.insert(std::string(name));
                    })
                    .ok());
    return names;
  }

  // Rewrites an open snapshot's record to claim `claimed_parts` parts, behind the store's
  // back, and checks that commit, abort and a part write all answer DATA_LOSS.
  void ExpectDamagedSnapshotIsDataLoss(uint32_t claimed_parts);

  // Flips one byte of the stored bytes of `key`'s part `part`, behind the store's back.
  void CorruptStoredBlob(const std::string& key, uint32_t part = 0) {
    absl::StatusOr<std::optional<std::string>> raw = store_->backend().ReadRecord(key, "e");
    ASSERT_TRUE(raw.ok() && raw->has_value());
    StoredEntry entry;
    ASSERT_TRUE(entry.ParseFromString(**raw));
    const std::string& blob_name = entry.parts(static_cast<int>(part)).blob();
    absl::StatusOr<std::string> blob = store_->backend().ReadBlob(key, blob_name);
    ASSERT_TRUE(blob.ok()) << blob.status();
    ASSERT_FALSE(blob->empty());
    (*blob)[blob->size() / 2] ^= 0x20;
    ASSERT_TRUE(store_->backend().WriteBlob(key, blob_name, *blob, absl::InfiniteFuture()).ok());
  }

  base::FakeClock clock_;
  std::unique_ptr<BackendFactory> factory_;
  std::unique_ptr<prometheus::Registry> registry_;
  std::unique_ptr<StateStore> store_;
};

TEST_P(StoreConformanceTest, PutThenGetReturnsTheSameBytesAndMetadata) {
  for (ChecksumAlgorithm algorithm : {ChecksumAlgorithm::kCrc32c, ChecksumAlgorithm::kXxh3_64}) {
    std::string key = "sessions/s-" + std::string(ChecksumAlgorithmName(algorithm));
    std::string data = RandomBytes(10'000 + static_cast<int>(algorithm), 1);
    v1::PutHeader header = HeaderFor(key, data, algorithm);
    header.mutable_metadata()->mutable_model()->set_name("rwkv7-tiny");
    header.mutable_metadata()->mutable_model()->set_fingerprint("abc123");
    header.mutable_metadata()->mutable_layers()->set_last(12);
    header.mutable_metadata()->set_token_position(4096);
    header.mutable_metadata()->set_format_version(1);
    absl::StatusOr<v1::PutResponse> put = store_->Put(header, data);
    ASSERT_TRUE(put.ok()) << put.status();
    EXPECT_EQ(put->key(), key);
    EXPECT_GT(put->version(), 0u);

    absl::StatusOr<StateStore::Blob> blob = store_->Get(key, 0);
    ASSERT_TRUE(blob.ok()) << blob.status();
    EXPECT_EQ(blob->data, data);
    EXPECT_EQ(blob->header.size(), data.size());
    EXPECT_EQ(blob->header.checksum().value(), header.checksum().value());
    EXPECT_EQ(blob->header.metadata().model().fingerprint(), "abc123");
    EXPECT_EQ(blob->header.metadata().token_position(), 4096u);
    EXPECT_EQ(blob->header.metadata().layers().last(), 12u);
    EXPECT_EQ(blob->header.metadata().size_bytes(), data.size());
    EXPECT_EQ(blob->header.entry().version(), put->version());

    absl::StatusOr<v1::EntryInfo> info = store_->Stat(key);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->total_size(), data.size());
    EXPECT_EQ(info->parts_size(), 1);
    EXPECT_EQ(info->expires_at_unix_ms(), 0);
    EXPECT_FALSE(info->pinned());
  }
  EXPECT_EQ(Metric("skein_state_store_lookups_total", {{"result", "hit"}}), 2);
  EXPECT_EQ(Metric("skein_state_store_entries"), 2);
}

TEST_P(StoreConformanceTest, EmptyBlobRoundTrips) {
  ASSERT_TRUE(Put("empty", "").ok());
  absl::StatusOr<std::string> data = GetData("empty");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(*data, "");
}

TEST_P(StoreConformanceTest, UnknownKeysAreNotFoundAndCountedAsMisses) {
  EXPECT_EQ(store_->Get("nope", 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Stat("nope").status().code(), absl::StatusCode::kNotFound);
  v1::TouchRequest touch;
  touch.set_key("nope");
  EXPECT_EQ(store_->Touch(touch).status().code(), absl::StatusCode::kNotFound);
  v1::PinRequest pin;
  pin.set_key("nope");
  pin.set_holder("w0");
  EXPECT_EQ(store_->Pin(pin).status().code(), absl::StatusCode::kNotFound);
  v1::DeleteRequest del;
  del.set_key("nope");
  absl::StatusOr<v1::DeleteResponse> deleted = store_->Delete(del);
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(deleted->existed());
  EXPECT_EQ(Metric("skein_state_store_lookups_total", {{"result", "miss"}}), 1);
}

TEST_P(StoreConformanceTest, InvalidKeysAreRejectedEverywhere) {
  const std::vector<std::string> bad = {"",
                                        std::string(257, 'k'),
                                        "tab\tkey",
                                        "nl\n",
                                        std::string("nul\0x", 5),
                                        "del\x7f",
                                        "caf\xc3\xa9",
                                        "/abs",
                                        "trailing/",
                                        "a//b",
                                        "a/../b",
                                        "..",
                                        "./a",
                                        "a\\b"};
  for (const std::string& key : bad) {
    SCOPED_TRACE(key);
    EXPECT_EQ(Put(key, "x").status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store_->Get(key, 0).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store_->Stat(key).status().code(), absl::StatusCode::kInvalidArgument);
    v1::BeginSnapshotRequest begin;
    begin.set_key(key);
    begin.set_part_count(1);
    EXPECT_EQ(store_->BeginSnapshot(begin).status().code(), absl::StatusCode::kInvalidArgument);
  }
  for (const std::string& key :
       {std::string(256, 'k'), std::string("a..b/c.d"), std::string("model:fp/sess {1} #2")}) {
    EXPECT_TRUE(Put(key, "x").ok()) << key;
    EXPECT_TRUE(GetData(key).ok()) << key;
  }
}

TEST_P(StoreConformanceTest, DataThatDoesNotMatchItsHeaderIsRejectedAndNothingIsStored) {
  std::string data = RandomBytes(5000, 2);
  v1::PutHeader header = HeaderFor("k", data);
  header.mutable_checksum()->set_value(header.checksum().value() ^ 1);
  absl::Status status = store_->Put(header, data).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("nothing was stored"));
  EXPECT_EQ(Metric("skein_state_store_checksum_failures_total", {{"source", "client"}}), 1);

  header = HeaderFor("k", data);
  EXPECT_EQ(store_->Put(header, data.substr(1)).status().code(), absl::StatusCode::kDataLoss);

  header = HeaderFor("k", data);
  header.mutable_checksum()->set_algorithm(v1::Checksum::ALGORITHM_UNSPECIFIED);
  EXPECT_EQ(store_->Put(header, data).status().code(), absl::StatusCode::kInvalidArgument);
  header = HeaderFor("k", data);
  header.mutable_metadata()->set_size_bytes(4);
  EXPECT_EQ(store_->Put(header, data).status().code(), absl::StatusCode::kInvalidArgument);
  header = HeaderFor("k", data);
  header.set_part(1);
  EXPECT_EQ(store_->Put(header, data).status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(store_->Stat("k").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(RecordNames("k").empty());
  if (!store_->backend().ExpiresObjects()) {
    EXPECT_TRUE(BlobNames("k").empty());
  }
}

TEST_P(StoreConformanceTest, OversizedBlobsAreRejectedBeforeTheirData) {
  StoreOptions options;
  options.max_blob_bytes = 1000;
  Open(options);
  v1::PutHeader header = HeaderFor("big", std::string(1001, 'x'));
  EXPECT_EQ(store_->CheckPutHeader(header).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(Put("fits", std::string(1000, 'x')).ok());
}

TEST_P(StoreConformanceTest, VersionsGrowAndCompareAndSetFollowsTheRule) {
  absl::StatusOr<v1::PutResponse> v1 = Put("cas", "one", /*expected_version=*/0);
  ASSERT_TRUE(v1.ok()) << v1.status();
  // 0 means "must not exist".
  EXPECT_EQ(Put("cas", "dup", 0).status().code(), absl::StatusCode::kAborted);
  absl::StatusOr<v1::PutResponse> v2 = Put("cas", "two", v1->version());
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_GT(v2->version(), v1->version());
  // A stale version loses and changes nothing.
  absl::Status stale = Put("cas", "three", v1->version()).status();
  EXPECT_EQ(stale.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(*GetData("cas"), "two");
  EXPECT_EQ(Metric("skein_state_store_version_conflicts_total"), 2);
  // Without expected_version the last writer wins.
  absl::StatusOr<v1::PutResponse> v3 = Put("cas", "four");
  ASSERT_TRUE(v3.ok());
  EXPECT_GT(v3->version(), v2->version());
  EXPECT_EQ(*GetData("cas"), "four");

  v1::DeleteRequest del;
  del.set_key("cas");
  del.set_expected_version(v2->version());
  EXPECT_EQ(store_->Delete(del).status().code(), absl::StatusCode::kAborted);
  del.set_expected_version(v3->version());
  absl::StatusOr<v1::DeleteResponse> deleted = store_->Delete(del);
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(deleted->existed());
  EXPECT_EQ(store_->Get("cas", 0).status().code(), absl::StatusCode::kNotFound);
  // Re-created keys continue above the old versions, so an old CAS cannot succeed on them.
  absl::StatusOr<v1::PutResponse> again = Put("cas", "five", 0);
  ASSERT_TRUE(again.ok());
  EXPECT_GT(again->version(), v3->version());
  EXPECT_EQ(Put("cas", "six", v3->version()).status().code(), absl::StatusCode::kAborted);
}

TEST_P(StoreConformanceTest, ConcurrentWritersNeverTearAndExactlyOneCasWins) {
  constexpr int kWriters = 4;
  constexpr int kRounds = 6;
  std::vector<std::string> contents;
  for (int w = 0; w < kWriters; ++w) contents.push_back(RandomBytes(20'000, 100 + w));
  ASSERT_TRUE(Put("shared", contents[0]).ok());
  std::atomic<bool> torn{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int r = 0; r < kRounds; ++r) {
        if (!Put("shared", contents[w]).ok()) ++failures;
        absl::StatusOr<std::string> seen = GetData("shared");
        if (!seen.ok()) {
          ++failures;
        } else if (std::find(contents.begin(), contents.end(), *seen) == contents.end()) {
          torn = true;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_FALSE(torn);
  EXPECT_EQ(failures, 0);

  // Everyone tries to replace the same version: one wins, the rest are ABORTED.
  uint64_t base = store_->Stat("shared")->version();
  std::atomic<int> wins{0}, aborted{0};
  threads.clear();
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      absl::Status s = Put("shared", contents[w], base).status();
      if (s.ok()) ++wins;
      if (s.code() == absl::StatusCode::kAborted) ++aborted;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wins, 1);
  EXPECT_EQ(aborted, kWriters - 1);
}

TEST_P(StoreConformanceTest, CorruptStoredDataIsNeverReturnedAndIsCounted) {
  std::string data = RandomBytes(9000, 3);
  ASSERT_TRUE(Put("fragile", data).ok());
  CorruptStoredBlob("fragile");
  absl::Status status = store_->Get("fragile", 0).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("fragile"));
  EXPECT_EQ(Metric("skein_state_store_checksum_failures_total", {{"source", "storage"}}), 1);
  // The entry can still be described and replaced.
  EXPECT_TRUE(store_->Stat("fragile").ok());
  ASSERT_TRUE(Put("fragile", data).ok());
  EXPECT_EQ(*GetData("fragile"), data);
}

// A damaged snapshot record claiming billions of parts is refused as DATA_LOSS by every
// operation that reads it, at once (found by store_records_fuzz_test: each looped over them).
TEST_P(StoreConformanceTest, ASnapshotRecordClaimingTooManyPartsIsDataLoss) {
  for (uint32_t claimed : {0xFFFFFFFFu, 0u}) {  // zero: nothing to commit, nothing to index
    SCOPED_TRACE(claimed);
    ExpectDamagedSnapshotIsDataLoss(claimed);
  }
}

void StoreConformanceTest::ExpectDamagedSnapshotIsDataLoss(uint32_t claimed_parts) {
  v1::BeginSnapshotRequest begin;
  begin.set_key("huge");
  begin.set_part_count(2);
  absl::StatusOr<v1::BeginSnapshotResponse> open = store_->BeginSnapshot(begin);
  ASSERT_TRUE(open.ok()) << open.status();
  const std::string record = "s/" + open->snapshot_id().substr(0, 32);
  absl::StatusOr<std::optional<std::string>> raw = store_->backend().ReadRecord("huge", record);
  ASSERT_TRUE(raw.ok() && raw->has_value());
  StoredSnapshot snapshot;
  ASSERT_TRUE(snapshot.ParseFromString(**raw));
  snapshot.set_part_count(claimed_parts);
  Batch damage("huge");
  damage.PutRecord(record, snapshot.SerializeAsString(), absl::InfiniteFuture());
  ASSERT_TRUE(store_->backend().Apply(damage).ok());

  v1::CommitSnapshotRequest commit;
  commit.set_snapshot_id(open->snapshot_id());
  EXPECT_EQ(store_->CommitSnapshot(commit).status().code(), absl::StatusCode::kDataLoss);
  v1::AbortSnapshotRequest abort;
  abort.set_snapshot_id(open->snapshot_id());
  EXPECT_EQ(store_->AbortSnapshot(abort).code(), absl::StatusCode::kDataLoss);
  v1::PutHeader part = HeaderFor("huge", "x");
  part.set_snapshot_id(open->snapshot_id());
  EXPECT_EQ(store_->Put(part, "x").status().code(), absl::StatusCode::kDataLoss);
}

TEST_P(StoreConformanceTest, CompressedBlobsRoundTripAndCorruptionIsCaught) {
  StoreOptions options;
  options.zstd_level = 3;
  Open(options);
  std::string compressible(50'000, '\0');
  for (size_t i = 0; i < compressible.size(); i += 7) compressible[i] = static_cast<char>(i);
  absl::StatusOr<v1::PutResponse> put = Put("zipped", compressible);
  ASSERT_TRUE(put.ok());
  EXPECT_LT(put->stored_bytes(), compressible.size() / 4);
  EXPECT_EQ(*GetData("zipped"), compressible);
  // Random bytes do not shrink, so they are kept as they are.
  std::string noise = RandomBytes(20'000, 4);
  put = Put("noise", noise);
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->stored_bytes(), noise.size());
  EXPECT_EQ(*GetData("noise"), noise);

  CorruptStoredBlob("zipped");
  EXPECT_EQ(store_->Get("zipped", 0).status().code(), absl::StatusCode::kDataLoss);
  // A store opened without compression still reads compressed entries.
  Open();
  EXPECT_EQ(*GetData("noise"), noise);
}

TEST_P(StoreConformanceTest, ListsByPrefixInKeyOrderAPageAtATime) {
  for (const char* key : {"a/3", "a/1", "b/1", "a/2", "a/5", "a/4", "ab"}) {
    ASSERT_TRUE(Put(key, key).ok());
  }
  std::vector<std::string> seen;
  v1::ListRequest request;
  request.set_prefix("a/");
  request.set_page_size(2);
  int pages = 0;
  do {
    absl::StatusOr<v1::ListResponse> page = store_->List(request);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const v1::EntryInfo& e : page->entries()) seen.push_back(e.key());
    request.set_page_token(page->next_page_token());
    ++pages;
  } while (!request.page_token().empty() && pages < 10);
  EXPECT_THAT(seen, ::testing::ElementsAre("a/1", "a/2", "a/3", "a/4", "a/5"));
  EXPECT_EQ(pages, 3);

  request = v1::ListRequest();
  absl::StatusOr<v1::ListResponse> all = store_->List(request);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->entries_size(), 7);
  EXPECT_EQ(all->entries(0).total_size(), 3u);

  request.set_page_size(1001);
  EXPECT_EQ(store_->List(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_page_size(10);
  request.set_page_token("garbage");
  EXPECT_EQ(store_->List(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_page_token("");
  request.set_prefix("bad\x01");
  EXPECT_EQ(store_->List(request).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, EntriesExpireAfterTheirTtlAndTouchMovesTheExpiry) {
  ASSERT_TRUE(Put("ttl", "data", std::nullopt, /*ttl_seconds=*/10).ok());
  ASSERT_TRUE(Put("forever", "data").ok());
  absl::StatusOr<v1::EntryInfo> info = store_->Stat("ttl");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->expires_at_unix_ms(), absl::ToUnixMillis(clock_.Now() + absl::Seconds(10)));
  clock_.Advance(absl::Seconds(5));
  v1::TouchRequest touch;
  touch.set_key("ttl");
  touch.set_ttl_seconds(10);
  ASSERT_TRUE(store_->Touch(touch).ok());
  clock_.Advance(absl::Seconds(8));
  EXPECT_TRUE(GetData("ttl").ok());
  clock_.Advance(absl::Seconds(3));
  EXPECT_EQ(store_->Get("ttl", 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Stat("ttl").status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<v1::ListResponse> list = store_->List(v1::ListRequest());
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->entries_size(), 1);
  EXPECT_EQ(list->entries(0).key(), "forever");

  store_->SweepOnce();
  EXPECT_EQ(Metric("skein_state_store_evictions_total", {{"reason", "ttl"}}), 1);
  EXPECT_TRUE(RecordNames("ttl").empty());
  EXPECT_EQ(store_->usage().entries, 1u);
  // An expired key counts as absent for compare-and-set.
  EXPECT_TRUE(Put("ttl", "new", 0).ok());

  // Touch with 0 removes the expiry.
  ASSERT_TRUE(Put("ttl2", "data", std::nullopt, 5).ok());
  touch.set_key("ttl2");
  touch.set_ttl_seconds(0);
  ASSERT_TRUE(store_->Touch(touch).ok());
  clock_.Advance(absl::Hours(1));
  EXPECT_TRUE(GetData("ttl2").ok());
}

TEST_P(StoreConformanceTest, DefaultTtlAppliesToWritesWithoutOne) {
  StoreOptions options;
  options.default_ttl = absl::Seconds(30);
  Open(options);
  ASSERT_TRUE(Put("d", "x").ok());
  clock_.Advance(absl::Seconds(31));
  EXPECT_EQ(store_->Get("d", 0).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, PinnedEntriesOutliveTheirTtlUntilTheLeaseEnds) {
  ASSERT_TRUE(Put("pinned", "data", std::nullopt, 10).ok());
  v1::PinRequest pin;
  pin.set_key("pinned");
  pin.set_holder("worker-0");
  pin.set_lease_seconds(60);
  absl::StatusOr<v1::PinResponse> lease = store_->Pin(pin);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(lease->lease_expires_at_unix_ms(),
            absl::ToUnixMillis(clock_.Now() + absl::Seconds(60)));
  EXPECT_TRUE(store_->Stat("pinned")->pinned());
  clock_.Advance(absl::Seconds(30));
  store_->SweepOnce();
  EXPECT_TRUE(GetData("pinned").ok());
  clock_.Advance(absl::Seconds(31));
  store_->SweepOnce();
  EXPECT_EQ(store_->Get("pinned", 0).status().code(), absl::StatusCode::kNotFound);

  // Unpin releases at once.
  ASSERT_TRUE(Put("p2", "data", std::nullopt, 10).ok());
  pin.set_key("p2");
  ASSERT_TRUE(store_->Pin(pin).ok());
  v1::UnpinRequest unpin;
  unpin.set_key("p2");
  unpin.set_holder("worker-0");
  ASSERT_TRUE(store_->Unpin(unpin).ok());
  ASSERT_TRUE(store_->Unpin(unpin).ok());
  EXPECT_FALSE(store_->Stat("p2")->pinned());
  clock_.Advance(absl::Seconds(11));
  EXPECT_EQ(store_->Get("p2", 0).status().code(), absl::StatusCode::kNotFound);

  // Bad pins.
  ASSERT_TRUE(Put("p3", "data").ok());
  pin.set_key("p3");
  pin.set_holder("");
  EXPECT_EQ(store_->Pin(pin).status().code(), absl::StatusCode::kInvalidArgument);
  pin.set_holder("w");
  pin.set_lease_seconds(3601);
  EXPECT_EQ(store_->Pin(pin).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, CapacityEvictsLeastRecentlyUsedUnpinnedEntries) {
  StoreOptions options;
  options.capacity_bytes = 3000;
  Open(options);
  ASSERT_TRUE(Put("a", std::string(1000, 'a')).ok());
  ASSERT_TRUE(Put("b", std::string(1000, 'b')).ok());
  ASSERT_TRUE(Put("c", std::string(1000, 'c')).ok());
  ASSERT_TRUE(GetData("a").ok());  // a is now more recent than b
  ASSERT_TRUE(Put("d", std::string(1000, 'd')).ok());
  EXPECT_EQ(store_->Get("b", 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(GetData("a").ok());
  EXPECT_EQ(Metric("skein_state_store_evictions_total", {{"reason", "capacity"}}), 1);
  EXPECT_EQ(store_->usage().committed_bytes, 3000u);

  // Least recent first is now c, d, a. Pinned entries are skipped: c is pinned, so d goes.
  v1::PinRequest pin;
  pin.set_key("c");
  pin.set_holder("w");
  ASSERT_TRUE(store_->Pin(pin).ok());
  ASSERT_TRUE(Put("e", std::string(1000, 'e')).ok());
  EXPECT_TRUE(GetData("c").ok());
  EXPECT_EQ(store_->Get("d", 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(GetData("a").ok());

  // When everything left is pinned there is no room.
  for (const char* key : {"a", "e"}) {
    pin.set_key(key);
    ASSERT_TRUE(store_->Pin(pin).ok());
  }
  EXPECT_EQ(Put("f", std::string(1000, 'f')).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Put("huge", std::string(3001, 'h')).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(store_->Stat("f").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, SnapshotBecomesVisibleOnlyWhenCommittedWithEveryPart) {
  ASSERT_TRUE(Put("sess", "old state").ok());
  std::string id = Begin("sess", 3);
  std::vector<std::string> parts = {RandomBytes(3000, 10), RandomBytes(5000, 11),
                                    RandomBytes(100, 12)};
  absl::StatusOr<v1::PutResponse> p0 = PutPart("sess", id, 0, parts[0]);
  ASSERT_TRUE(p0.ok()) << p0.status();
  ASSERT_TRUE(PutPart("sess", id, 2, parts[2]).ok());
  // Readers still see the previous entry.
  EXPECT_EQ(*GetData("sess"), "old state");
  absl::Status missing = Commit(id).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.message(), HasSubstr("1"));
  EXPECT_EQ(*GetData("sess"), "old state");
  // Rewriting a part replaces it.
  ASSERT_TRUE(PutPart("sess", id, 1, "wrong").ok());
  ASSERT_TRUE(PutPart("sess", id, 1, parts[1]).ok());

  absl::StatusOr<v1::EntryInfo> info = Commit(id);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->parts_size(), 3);
  EXPECT_EQ(info->total_size(), 8100u);
  EXPECT_EQ(info->version(), p0->version());
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(*GetData("sess", i), parts[i]) << i;
  EXPECT_EQ(store_->Get("sess", 3).status().code(), absl::StatusCode::kOutOfRange);
  // Committing again answers the same; writing to a committed snapshot is refused.
  absl::StatusOr<v1::EntryInfo> again = Commit(id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->version(), info->version());
  EXPECT_EQ(PutPart("sess", id, 0, "late").status().code(), absl::StatusCode::kFailedPrecondition);
  // Only the entry's own records remain; staged parts were folded in.
  for (const std::string& name : RecordNames("sess")) {
    EXPECT_TRUE(name == "e" || name.rfind("s/", 0) == 0) << name;
  }
  if (!store_->backend().ExpiresObjects()) {
    EXPECT_EQ(BlobNames("sess").size(), 3u);
  }
  EXPECT_EQ(Metric("skein_state_store_snapshots_total", {{"outcome", "committed"}}), 1);
  EXPECT_EQ(store_->usage().pending_bytes, 0u);
}

TEST_P(StoreConformanceTest, SnapshotPartsAreCheckedAgainstTheSnapshot) {
  std::string id = Begin("s", 2);
  EXPECT_EQ(PutPart("s", id, 2, "x").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(PutPart("other", id, 0, "x").status().code(), absl::StatusCode::kInvalidArgument);
  std::string unknown = MakeSnapshotId(std::string(32, 'a'), "s");
  EXPECT_EQ(PutPart("s", unknown, 0, "x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(PutPart("s", "not-an-id", 0, "x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Commit(unknown).status().code(), absl::StatusCode::kNotFound);
  v1::PutHeader header = HeaderFor("s", "x");
  header.set_snapshot_id(id);
  header.set_expected_version(0);
  EXPECT_EQ(store_->Put(header, "x").status().code(), absl::StatusCode::kInvalidArgument);

  // Parts that disagree on the position cannot be committed.
  ASSERT_TRUE(PutPart("s", id, 0, "x", /*position=*/10).ok());
  ASSERT_TRUE(PutPart("s", id, 1, "y", /*position=*/11).ok());
  EXPECT_EQ(Commit(id).status().code(), absl::StatusCode::kFailedPrecondition);

  v1::BeginSnapshotRequest begin;
  begin.set_key("s");
  EXPECT_EQ(store_->BeginSnapshot(begin).status().code(), absl::StatusCode::kInvalidArgument);
  begin.set_part_count(257);
  EXPECT_EQ(store_->BeginSnapshot(begin).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, SnapshotCommitHonoursExpectedVersion) {
  absl::StatusOr<v1::PutResponse> current = Put("cas-snap", "v1");
  ASSERT_TRUE(current.ok());
  std::string id = Begin("cas-snap", 1);
  ASSERT_TRUE(PutPart("cas-snap", id, 0, "v2").ok());
  EXPECT_EQ(Commit(id, current->version() + 1).status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(*GetData("cas-snap"), "v1");
  absl::StatusOr<v1::EntryInfo> info = Commit(id, current->version());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_GT(info->version(), current->version());
  EXPECT_EQ(*GetData("cas-snap"), "v2");
}

TEST_P(StoreConformanceTest, UncommittedSnapshotsAreDiscardedAfterTheirTimeoutOrAbort) {
  std::string id = Begin("slow", 2, /*timeout_seconds=*/5);
  ASSERT_TRUE(PutPart("slow", id, 0, RandomBytes(4000, 5)).ok());
  EXPECT_EQ(store_->usage().pending_bytes, 4000u);
  EXPECT_EQ(store_->usage().open_snapshots, 1u);
  clock_.Advance(absl::Seconds(6));
  EXPECT_EQ(PutPart("slow", id, 1, "late").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Commit(id).status().code(), absl::StatusCode::kNotFound);
  store_->SweepOnce();
  EXPECT_EQ(store_->usage().pending_bytes, 0u);
  EXPECT_EQ(store_->usage().open_snapshots, 0u);
  EXPECT_TRUE(RecordNames("slow").empty());
  if (!store_->backend().ExpiresObjects()) {
    EXPECT_TRUE(BlobNames("slow").empty());
  }
  EXPECT_EQ(Metric("skein_state_store_snapshots_total", {{"outcome", "expired"}}), 1);
  EXPECT_EQ(store_->Get("slow", 0).status().code(), absl::StatusCode::kNotFound);

  id = Begin("dropped", 1);
  ASSERT_TRUE(PutPart("dropped", id, 0, "x").ok());
  v1::AbortSnapshotRequest abort;
  abort.set_snapshot_id(id);
  ASSERT_TRUE(store_->AbortSnapshot(abort).ok());
  ASSERT_TRUE(store_->AbortSnapshot(abort).ok());
  EXPECT_EQ(Commit(id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(RecordNames("dropped").empty());
  EXPECT_EQ(Metric("skein_state_store_snapshots_total", {{"outcome", "aborted"}}), 1);
}

TEST_P(StoreConformanceTest, ARestartedStoreKeepsCommittedDataAndOpenSnapshots) {
  std::string data = RandomBytes(30'000, 6);
  ASSERT_TRUE(Put("kept", data).ok());
  ASSERT_TRUE(Put("gone", "x").ok());
  v1::DeleteRequest del;
  del.set_key("gone");
  ASSERT_TRUE(store_->Delete(del).ok());
  std::string id = Begin("snap", 2, 600);
  ASSERT_TRUE(PutPart("snap", id, 0, "part zero").ok());
  // What a writer killed between writing its blob and committing leaves behind.
  ASSERT_TRUE(store_->backend()
                  .WriteBlob("kept", "b/0123456789abcdef0123456789abcdef", "orphan",
                             clock_.Now() + absl::Minutes(10))
                  .ok());

  Open();
  EXPECT_EQ(*GetData("kept"), data);
  EXPECT_EQ(store_->Get("gone", 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->usage().entries, 1u);
  EXPECT_EQ(store_->usage().committed_bytes, data.size());
  EXPECT_EQ(store_->usage().open_snapshots, 1u);
  if (!store_->backend().ExpiresObjects()) {
    EXPECT_EQ(BlobNames("kept").size(), 1u);
    EXPECT_EQ(Metric("skein_state_store_orphans_removed_total"), 1);
  }
  ASSERT_TRUE(PutPart("snap", id, 1, "part one").ok());
  ASSERT_TRUE(Commit(id).ok());
  EXPECT_EQ(*GetData("snap", 1), "part one");
}

INSTANTIATE_TEST_SUITE_P(AllBackends, StoreConformanceTest,
                         ::testing::Values(BackendKind::kMemory, BackendKind::kRocksDb,
                                           BackendKind::kRedis, BackendKind::kRedisCluster),
                         testing::BackendKindName);

// ---------------------------------------------------------------------------------------------
// The backend contract itself.

class BackendContractTest : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override {
    factory_ = std::make_unique<BackendFactory>(GetParam());
    if (!factory_->unavailable_reason().empty())
      SKEIN_MISSING_PREREQUISITE() << factory_->unavailable_reason();
    absl::StatusOr<std::unique_ptr<StorageBackend>> backend = factory_->Make();
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = *std::move(backend);
  }
  std::unique_ptr<BackendFactory> factory_;
  std::unique_ptr<StorageBackend> backend_;
};

TEST_P(BackendContractTest, BatchesApplyWhollyOrNotAtAll) {
  Batch create("g");
  create.ExpectRecord("r", std::nullopt).PutRecord("r", "v1").PutRecord("other", "o");
  ASSERT_TRUE(backend_->Apply(create).ok());
  EXPECT_EQ(**backend_->ReadRecord("g", "r"), "v1");

  // A failed expectation changes nothing, not even the operations listed before it.
  Batch stale("g");
  stale.PutRecord("other", "changed").ExpectRecord("r", "v0").PutRecord("r", "v2");
  EXPECT_TRUE(IsConflict(backend_->Apply(stale)));
  EXPECT_EQ(**backend_->ReadRecord("g", "r"), "v1");
  EXPECT_EQ(**backend_->ReadRecord("g", "other"), "o");

  Batch missing_blob("g");
  missing_blob.ExpectBlob("b/none").DeleteRecord("r");
  EXPECT_TRUE(IsConflict(backend_->Apply(missing_blob)));

  std::string big(10'000, 'z');
  big[9'999] = 'y';
  ASSERT_TRUE(backend_->WriteBlob("g", "b/1", big, absl::InfiniteFuture()).ok());
  EXPECT_EQ(*backend_->ReadBlob("g", "b/1"), big);
  ASSERT_TRUE(backend_->WriteBlob("g", "b/1", "small", absl::InfiniteFuture()).ok());
  EXPECT_EQ(*backend_->ReadBlob("g", "b/1"), "small");
  ASSERT_TRUE(backend_->WriteBlob("g", "b/empty", "", absl::InfiniteFuture()).ok());
  EXPECT_EQ(*backend_->ReadBlob("g", "b/empty"), "");

  Batch swap("g");
  swap.ExpectRecord("r", "v1").ExpectBlob("b/1").PutRecord("r", "v2").DeleteBlob("b/1");
  ASSERT_TRUE(backend_->Apply(swap).ok());
  EXPECT_EQ(**backend_->ReadRecord("g", "r"), "v2");
  EXPECT_EQ(backend_->ReadBlob("g", "b/1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(backend_->ReadRecord("g", "none")->has_value());

  std::set<std::string> records, blobs;
  ASSERT_TRUE(
      backend_
          ->ScanRecords([&](std::string_view group, std::string_view name, std::string_view value) {
            records.insert(
                absl::StrCat(std::string(group), "|", std::string(name), "=", std::string(value)));
          })
          .ok());
  ASSERT_TRUE(backend_
                  ->ScanBlobs([&](std::string_view group, std::string_view name) {
                    blobs.insert(absl::StrCat(std::string(group), "|", std::string(name)));
                  })
                  .ok());
  EXPECT_THAT(records, ::testing::ElementsAre("g|other=o", "g|r=v2"));
  EXPECT_THAT(blobs, ::testing::ElementsAre("g|b/empty"));
}

TEST_P(BackendContractTest, GroupsWithAwkwardCharactersStaySeparate) {
  for (std::string group : {"a", "a:r:b", "{x}", "}y{", "a/b"}) {
    Batch batch(group);
    batch.PutRecord("e", group);
    ASSERT_TRUE(backend_->Apply(batch).ok()) << group;
  }
  for (std::string group : {"a", "a:r:b", "{x}", "}y{", "a/b"}) {
    EXPECT_EQ(**backend_->ReadRecord(group, "e"), group);
  }
  std::set<std::string> groups;
  ASSERT_TRUE(
      backend_
          ->ScanRecords([&](std::string_view group, std::string_view, std::string_view value) {
            EXPECT_EQ(group, value);
            groups.insert(std::string(group));
          })
          .ok());
  EXPECT_EQ(groups.size(), 5u);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BackendContractTest,
                         ::testing::Values(BackendKind::kMemory, BackendKind::kRocksDb,
                                           BackendKind::kRedis, BackendKind::kRedisCluster),
                         testing::BackendKindName);

}  // namespace
}  // namespace skein::state_store
