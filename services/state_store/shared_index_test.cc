// Several stores, one Redis Cluster (three masters, real redis-server processes), one view:
// what one store writes, pins, expires or evicts, every other store sees, and the capacity
// is one budget for all of them.
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "gtest/gtest.h"
#include "services/state_store/checksum.h"
#include "services/state_store/store.h"
#include "services/state_store/testing/backend_fixture.h"
#include "tests/support/prerequisite.h"

namespace skein::state_store {
namespace {

using testing::BackendFactory;
using testing::BackendKind;

v1::PutHeader HeaderFor(const std::string& key, const std::string& data, uint64_t ttl = 0) {
  v1::PutHeader header;
  header.set_key(key);
  header.set_total_size(data.size());
  header.set_ttl_seconds(ttl);
  header.mutable_checksum()->set_algorithm(v1::Checksum::ALGORITHM_XXH3_64);
  header.mutable_checksum()->set_value(ComputeChecksum(ChecksumAlgorithm::kXxh3_64, data));
  return header;
}

class SharedIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    factory_ = std::make_unique<BackendFactory>(BackendKind::kRedisCluster);
    if (!factory_->unavailable_reason().empty())
      SKEIN_MISSING_PREREQUISITE() << factory_->unavailable_reason();
  }
  std::unique_ptr<StateStore> OpenStore(uint64_t capacity = 0) {
    StoreOptions options;
    options.capacity_bytes = capacity;
    auto backend = factory_->Make();
    EXPECT_TRUE(backend.ok()) << backend.status();
    auto index = factory_->MakeIndex();
    EXPECT_TRUE(index.ok()) << index.status();
    auto store =
        StateStore::Open(*std::move(backend), options, &clock_, nullptr, *std::move(index));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
  static std::vector<std::string> Keys(StateStore& store) {
    v1::ListRequest request;
    request.set_page_size(1000);
    auto listed = store.List(request);
    EXPECT_TRUE(listed.ok()) << listed.status();
    std::vector<std::string> keys;
    for (const auto& e : listed->entries()) keys.push_back(e.key());
    return keys;
  }

  std::unique_ptr<BackendFactory> factory_;
  base::FakeClock clock_;
};

TEST_F(SharedIndexTest, WritesVersionsAndListsAreOneViewAcrossStores) {
  auto a = OpenStore(), b = OpenStore();
  // Keys spread over the cluster's slots.
  for (int i = 0; i < 12; ++i) {
    const std::string key = "sessions/s" + std::to_string(i);
    ASSERT_TRUE((i % 2 ? a : b)
                    ->Put(HeaderFor(key, std::string(100 + i, 'x')), std::string(100 + i, 'x'))
                    .ok());
  }
  EXPECT_EQ(Keys(*a).size(), 12u);
  EXPECT_EQ(Keys(*a), Keys(*b));
  EXPECT_EQ(a->usage().entries, 12u);
  EXPECT_EQ(b->usage().committed_bytes, a->usage().committed_bytes);
  // Compare-and-set against the version the other store issued.
  auto stat = b->Stat("sessions/s1");
  ASSERT_TRUE(stat.ok());
  v1::PutHeader cas = HeaderFor("sessions/s1", "new");
  cas.set_expected_version(stat->version());
  ASSERT_TRUE(b->Put(cas, "new").ok());
  v1::PutHeader stale = HeaderFor("sessions/s1", "newer");
  stale.set_expected_version(stat->version());  // replaced by b's write
  EXPECT_EQ(a->Put(stale, "newer").status().code(), absl::StatusCode::kAborted);
  auto got = a->Get("sessions/s1", 0);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->data, "new");
  // A delete through one store is gone for the other.
  v1::DeleteRequest del;
  del.set_key("sessions/s2");
  ASSERT_TRUE(a->Delete(del).ok());
  EXPECT_EQ(b->Stat("sessions/s2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Keys(*b).size(), 11u);
}

TEST_F(SharedIndexTest, OneCapacityOneLruAndPinsHonouredByEveryStore) {
  const std::string kb(1000, 'k');
  auto a = OpenStore(/*capacity=*/3500), b = OpenStore(/*capacity=*/3500);
  ASSERT_TRUE(a->Put(HeaderFor("old", kb), kb).ok());
  ASSERT_TRUE(b->Put(HeaderFor("pinned", kb), kb).ok());
  ASSERT_TRUE(a->Put(HeaderFor("recent", kb), kb).ok());
  v1::PinRequest pin;
  pin.set_key("pinned");
  pin.set_holder("router-1");
  pin.set_lease_seconds(60);
  ASSERT_TRUE(a->Pin(pin).ok());
  // B's write exceeds the shared budget: the least recently used unpinned entry goes, though
  // another store wrote it; the entry A pinned stays.
  ASSERT_TRUE(b->Put(HeaderFor("newest", kb), kb).ok());
  EXPECT_EQ(a->Stat("old").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(b->Stat("pinned").ok());
  EXPECT_TRUE(a->Stat("recent").ok());
  EXPECT_LE(a->usage().committed_bytes, 3500u);
  // When everything left is pinned, a write that does not fit is refused.
  for (const char* key : {"recent", "newest"}) {
    pin.set_key(key);
    ASSERT_TRUE(b->Pin(pin).ok());
  }
  EXPECT_EQ(a->Put(HeaderFor("too-much", kb), kb).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(SharedIndexTest, TtlsExpireEverywhereAndASweepByAnyStoreRemovesThem) {
  auto a = OpenStore(), b = OpenStore();
  ASSERT_TRUE(a->Put(HeaderFor("short", "x", /*ttl=*/10), "x").ok());
  ASSERT_TRUE(a->Put(HeaderFor("long", "y", /*ttl=*/1000), "y").ok());
  clock_.Advance(absl::Seconds(11));
  EXPECT_EQ(b->Stat("short").status().code(), absl::StatusCode::kNotFound);
  b->SweepOnce();
  EXPECT_EQ(Keys(*a), std::vector<std::string>{"long"});
  EXPECT_EQ(a->usage().entries, 1u);
}

TEST_F(SharedIndexTest, AStoreStartingLaterSeesTheSameIndexWithoutDoubleCounting) {
  auto a = OpenStore();
  ASSERT_TRUE(a->Put(HeaderFor("k1", "abc"), "abc").ok());
  const StoreIndex::Usage before = a->usage();
  auto b = OpenStore();  // re-derives the index from the records: idempotent
  EXPECT_EQ(b->usage().entries, before.entries);
  EXPECT_EQ(b->usage().committed_bytes, before.committed_bytes);
}

}  // namespace
}  // namespace skein::state_store
