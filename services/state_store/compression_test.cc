#include "services/state_store/compression.h"

#include <zstd.h>

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace skein::state_store {
namespace {

TEST(CompressionTest, RoundTripsAndShrinksRedundantData) {
  std::string data;
  for (int i = 0; i < 10'000; ++i) data += "state " + std::to_string(i % 17) + ";";
  absl::StatusOr<std::string> frame = ZstdCompress(data, 3);
  ASSERT_TRUE(frame.ok()) << frame.status();
  EXPECT_LT(frame->size(), data.size() / 10);
  absl::StatusOr<std::string> back = ZstdDecompress(*frame, data.size());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, data);

  absl::StatusOr<std::string> empty = ZstdCompress("", 1);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*ZstdDecompress(*empty, 0), "");
}

TEST(CompressionTest, CorruptTruncatedOrMisSizedFramesAreDataLoss) {
  std::mt19937 gen(1);
  std::string data(50'000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(gen() % 4);
  std::string frame = *ZstdCompress(data, 1);
  EXPECT_EQ(ZstdDecompress(frame, data.size() + 1).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ZstdDecompress(frame.substr(0, frame.size() / 2), data.size()).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ZstdDecompress("not zstd at all", 10).status().code(), absl::StatusCode::kDataLoss);
  std::string flipped = frame;
  flipped[flipped.size() / 2] ^= 0x55;
  absl::StatusOr<std::string> result = ZstdDecompress(flipped, data.size());
  // zstd may or may not notice a flipped bit; if it decodes, the bytes differ and the store's
  // checksum catches it.
  if (result.ok()) {
    EXPECT_NE(*result, data);
  }
}

// A frame without its content size, as other zstd writers (streaming ones) produce.
std::string FrameWithoutContentSize(const std::string& data) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  std::string frame(ZSTD_compressBound(data.size()), '\0');
  const size_t n = ZSTD_compress2(cctx, frame.data(), frame.size(), data.data(), data.size());
  ZSTD_freeCCtx(cctx);
  EXPECT_FALSE(ZSTD_isError(n));
  frame.resize(n);
  EXPECT_EQ(ZSTD_getFrameContentSize(frame.data(), frame.size()), ZSTD_CONTENTSIZE_UNKNOWN);
  return frame;
}

// Found by store_records_fuzz_test: the expected size comes from a stored record, and the
// decoder allocated all of it up front. A corrupt record claiming a terabyte for a frame that
// does not state its size aborted the store (std::bad_alloc) on the next Get.
TEST(CompressionTest, ASizeClaimedByTheRecordIsNotAllocatedOnTrust) {
  const std::string data(100, 'a');
  const std::string frame = FrameWithoutContentSize(data);
  EXPECT_EQ(*ZstdDecompress(frame, data.size()), data);
  absl::StatusOr<std::string> huge = ZstdDecompress(frame, uint64_t{1} << 40);
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kDataLoss) << huge.status();
  EXPECT_EQ(ZstdDecompress(frame, ~uint64_t{0}).status().code(), absl::StatusCode::kDataLoss);
  absl::Status smaller = ZstdDecompress(frame, 99).status();
  EXPECT_EQ(smaller.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(smaller.message().find("more than"), std::string::npos) << smaller;

  // The frame's own size field is stored data too: a hand-made frame (one raw block of five
  // bytes) whose header claims a terabyte, matching the record, is refused the same way.
  std::string lying("\x28\xb5\x2f\xfd", 4);
  lying.push_back('\xe0');  // 8-byte content size, single segment
  for (int i = 0; i < 8; ++i) lying.push_back(static_cast<char>((uint64_t{1} << 40) >> (8 * i)));
  lying += std::string("\x29\x00\x00", 3) + "hello";  // last block, raw, 5 bytes
  EXPECT_EQ(ZstdDecompress(lying, uint64_t{1} << 40).status().code(), absl::StatusCode::kDataLoss);
}

// The output grows as the decoder fills it; data that compresses a thousandfold still
// round-trips whether or not the frame states its size.
TEST(CompressionTest, HighlyCompressibleDataRoundTrips) {
  std::string data(10 << 20, '\0');
  for (size_t i = 0; i < data.size(); i += 4096) data[i] = static_cast<char>(i >> 12);
  absl::StatusOr<std::string> frame = ZstdCompress(data, 3);
  ASSERT_TRUE(frame.ok());
  EXPECT_LT(frame->size(), data.size() / 1000);
  EXPECT_EQ(*ZstdDecompress(*frame, data.size()), data);
  EXPECT_EQ(*ZstdDecompress(FrameWithoutContentSize(data), data.size()), data);
  EXPECT_EQ(ZstdDecompress(*frame, data.size() + 1).status().code(), absl::StatusCode::kDataLoss);
}

TEST(CompressionTest, RejectsLevelsZstdDoesNotHave) {
  EXPECT_EQ(ZstdCompress("x", 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ZstdCompress("x", 1000).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace skein::state_store
