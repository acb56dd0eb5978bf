#include "services/worker/model/state_blob.h"

#include <xxhash.h>

#include <string>

#include "gtest/gtest.h"
#include "services/worker/model/state.h"

namespace skein::model {
namespace {

constexpr uint64_t kModel = 0x1234abcd5678ef00ull;

StateShape Shape() { return StateShape{2, 5, 8, 2, 4}; }

// Overwrites the little-endian integer at `offset` and recomputes the trailing checksum, as a
// buggy (or hostile) writer would: the blob passes the checksum and only the header checks
// stand between it and the decoder's arithmetic.
template <typename T>
void SetAndReseal(std::string& blob, size_t offset, T value) {
  for (size_t i = 0; i < sizeof(T); ++i) {
    blob[offset + i] = static_cast<char>(static_cast<uint64_t>(value) >> (8 * i));
  }
  const size_t body = blob.size() - 8;
  const uint64_t sum = XXH3_64bits(blob.data(), body);
  for (size_t i = 0; i < 8; ++i) blob[body + i] = static_cast<char>(sum >> (8 * i));
}

RwkvState FilledState() {
  RwkvState state(Shape());
  absl::Span<float> data = state.data();
  for (size_t i = 0; i < data.size(); ++i) data[i] = 0.25f * static_cast<float>(i) - 3.0f;
  state.set_position(1234567);
  return state;
}

TEST(StateTest, LayoutAndAccessors) {
  RwkvState state(Shape());
  EXPECT_EQ(state.data().size(), 3u * (2 * 8 + 2 * 4 * 4));
  state.att_kv(3)[0] = 7.0f;
  // Layer 3 is the second stored layer: its att_kv starts after layer 2 and its att_x_prev.
  EXPECT_EQ(state.data()[Shape().floats_per_layer() + 8], 7.0f);
  state.ffn_x_prev(4)[7] = 9.0f;
  EXPECT_EQ(state.data().back(), 9.0f);
  RwkvState copy = state;  // fork
  copy.att_kv(3)[0] = 1.0f;
  EXPECT_EQ(state.att_kv(3)[0], 7.0f);
  state.Reset();
  EXPECT_EQ(state.att_kv(3)[0], 0.0f);
  EXPECT_EQ(state.position(), 0);
}

TEST(StateBlobTest, RoundTrips) {
  const RwkvState state = FilledState();
  const std::string blob = EncodeStateBlob(state, kModel);
  absl::StatusOr<RwkvState> back = DecodeStateBlob(blob, kModel, Shape());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->position(), 1234567);
  EXPECT_TRUE(back->shape() == Shape());
  ASSERT_EQ(back->data().size(), state.data().size());
  for (size_t i = 0; i < state.data().size(); ++i) ASSERT_EQ(back->data()[i], state.data()[i]);

  absl::StatusOr<StateBlobInfo> info = InspectStateBlob(blob);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->version, kStateBlobVersion);
  EXPECT_EQ(info->model_fingerprint, kModel);
  EXPECT_TRUE(info->shape == Shape());
}

TEST(StateBlobTest, RejectsWrongMagic) {
  std::string blob = EncodeStateBlob(FilledState(), kModel);
  blob[0] = 'X';
  EXPECT_EQ(DecodeStateBlob(blob, kModel, Shape()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeStateBlob("", kModel, Shape()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(StateBlobTest, RejectsOtherVersion) {
  std::string blob = EncodeStateBlob(FilledState(), kModel);
  blob[8] = 2;
  EXPECT_EQ(DecodeStateBlob(blob, kModel, Shape()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(StateBlobTest, RejectsCorruptPayloadAndHeader) {
  const std::string good = EncodeStateBlob(FilledState(), kModel);
  for (size_t offset :
       {size_t{20}, size_t{48}, size_t{64}, good.size() / 2, good.size() - 9, good.size() - 1}) {
    std::string blob = good;
    blob[offset] ^= 0x10;
    absl::Status s = DecodeStateBlob(blob, kModel, Shape()).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << "flipped byte " << offset << ": " << s;
  }
}

TEST(StateBlobTest, RejectsTruncation) {
  const std::string good = EncodeStateBlob(FilledState(), kModel);
  for (size_t length : {size_t{12}, size_t{40}, size_t{64}, good.size() - 1}) {
    absl::Status s = DecodeStateBlob(good.substr(0, length), kModel, Shape()).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << length << ": " << s;
  }
  std::string longer = good + "x";
  EXPECT_EQ(DecodeStateBlob(longer, kModel, Shape()).status().code(), absl::StatusCode::kDataLoss);
}

TEST(StateBlobTest, RejectsOtherModelOrLayerRange) {
  const std::string blob = EncodeStateBlob(FilledState(), kModel);
  absl::Status other_model = DecodeStateBlob(blob, kModel + 1, Shape()).status();
  EXPECT_EQ(other_model.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(other_model.message().find("another model"), std::string::npos);
  StateShape other_range = Shape();
  other_range.first_layer = 0;
  EXPECT_EQ(DecodeStateBlob(blob, kModel, other_range).status().code(),
            absl::StatusCode::kFailedPrecondition);
  StateShape other_width = Shape();
  other_width.embd = 16;
  other_width.heads = 4;
  EXPECT_EQ(DecodeStateBlob(blob, kModel, other_width).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// Found by state_blob_fuzz_test: a checksummed header whose head count and layer range are
// huge overflowed the int64 size computation (undefined behaviour) before the payload size
// was compared. Such headers must be refused as inconsistent, whatever their product.
TEST(StateBlobTest, RejectsHeadersWhoseSizeOverflows) {
  const std::string good = EncodeStateBlob(FilledState(), kModel);
  std::string blob = good;
  SetAndReseal<uint32_t>(blob, 28, 0x66000003u);  // last layer
  SetAndReseal<uint32_t>(blob, 40, 0xfdffff01u);  // heads
  EXPECT_EQ(InspectStateBlob(blob).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeStateBlob(blob, kModel, Shape()).status().code(), absl::StatusCode::kDataLoss);
  // Dimensions that each look plausible but multiply past 64 bits.
  blob = good;
  SetAndReseal<uint32_t>(blob, 24, 0);            // first layer
  SetAndReseal<uint32_t>(blob, 28, 0x7fffffffu);  // last layer
  SetAndReseal<uint32_t>(blob, 40, 1u << 20);     // heads
  SetAndReseal<uint32_t>(blob, 44, 4096);         // head size
  EXPECT_EQ(InspectStateBlob(blob).status().code(), absl::StatusCode::kDataLoss);
  // A header whose sizes agree with its payload still decodes after resealing.
  blob = good;
  SetAndReseal<uint64_t>(blob, 48, 99);  // position
  absl::StatusOr<RwkvState> moved = DecodeStateBlob(blob, kModel, Shape());
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(moved->position(), 99);
}

// Found by state_blob_fuzz_test (UBSan): a state of no layers has no storage, and encoding or
// decoding it passed a null pointer to memcpy. It round-trips as an empty payload.
TEST(StateBlobTest, RoundTripsAStateOfNoLayers) {
  const StateShape empty{3, 3, 8, 2, 4};
  RwkvState state(empty);
  state.set_position(7);
  const std::string blob = EncodeStateBlob(state, kModel);
  EXPECT_EQ(blob.size(), 64u + 8u);
  absl::StatusOr<RwkvState> back = DecodeStateBlob(blob, kModel, empty);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->data().empty());
  EXPECT_EQ(back->position(), 7);
}

}  // namespace
}  // namespace skein::model
