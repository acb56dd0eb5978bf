#include "services/state_store/checksum.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "xxhash.h"

namespace skein::state_store {
namespace {

std::string Bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

// Check values of CRC32C (Castagnoli): the standard "123456789" check value and the iSCSI
// test vectors of RFC 3720, appendix B.4.
TEST(Crc32cTest, MatchesPublishedVectors) {
  std::string zeros(32, '\0'), ones(32, '\xff'), up, down;
  for (int i = 0; i < 32; ++i) up.push_back(static_cast<char>(i));
  for (int i = 31; i >= 0; --i) down.push_back(static_cast<char>(i));
  for (auto* crc : {&Crc32c, &Crc32cPortable}) {
    EXPECT_EQ((*crc)(0, "123456789"), 0xE3069283u);
    EXPECT_EQ((*crc)(0, ""), 0u);
    EXPECT_EQ((*crc)(0, zeros), 0x8A9136AAu);
    EXPECT_EQ((*crc)(0, ones), 0x62A8AB43u);
    EXPECT_EQ((*crc)(0, up), 0x46DD794Eu);
    EXPECT_EQ((*crc)(0, down), 0x113FDB5Cu);
    // An iSCSI SCSI Read (10) command PDU, RFC 3720 B.4.
    std::string pdu =
        Bytes({0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
               0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
               0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
               0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00});
    EXPECT_EQ((*crc)(0, pdu), 0xD9963A56u);
  }
}

TEST(Crc32cTest, FastPathEqualsPortableForEveryLengthAndAlignment) {
  std::mt19937 gen(42);
  std::string data(4096 + 16, '\0');
  for (char& c : data) c = static_cast<char>(gen());
  for (size_t offset = 0; offset < 9; ++offset) {
    for (size_t length : {0, 1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255, 1000, 4096}) {
      std::string_view piece(data.data() + offset, length);
      ASSERT_EQ(Crc32c(0, piece), Crc32cPortable(0, piece)) << offset << " " << length;
    }
  }
}

TEST(Crc32cTest, ExtendingEqualsComputingAtOnce) {
  std::string data = "The quick brown fox jumps over the lazy dog, twice over.";
  for (size_t split = 0; split <= data.size(); ++split) {
    uint32_t first = Crc32c(0, std::string_view(data).substr(0, split));
    EXPECT_EQ(Crc32c(first, std::string_view(data).substr(split)), Crc32c(0, data));
    uint32_t first_portable = Crc32cPortable(0, std::string_view(data).substr(0, split));
    EXPECT_EQ(Crc32cPortable(first_portable, std::string_view(data).substr(split)),
              Crc32c(0, data));
  }
}

TEST(ChecksumTest, Xxh3IsTheLibrarysSeedZeroHash) {
  // XXH3-64 of empty input with seed 0, as published by the xxHash project.
  EXPECT_EQ(ComputeChecksum(ChecksumAlgorithm::kXxh3_64, ""), 0x2D06800538D394C2ull);
  std::string data(100'000, 'x');
  EXPECT_EQ(ComputeChecksum(ChecksumAlgorithm::kXxh3_64, data),
            XXH3_64bits(data.data(), data.size()));
  EXPECT_EQ(ComputeChecksum(ChecksumAlgorithm::kCrc32c, "123456789"), 0xE3069283u);
}

TEST(ChecksumTest, AccumulatorMatchesOneShotForEveryAlgorithm) {
  std::mt19937 gen(7);
  std::string data(300'000, '\0');
  for (char& c : data) c = static_cast<char>(gen());
  for (ChecksumAlgorithm algorithm : {ChecksumAlgorithm::kCrc32c, ChecksumAlgorithm::kXxh3_64}) {
    ChecksumAccumulator acc(algorithm);
    size_t offset = 0;
    for (size_t step = 1; offset < data.size(); step = step * 3 + 1) {
      size_t n = std::min(step, data.size() - offset);
      acc.Update(std::string_view(data).substr(offset, n));
      offset += n;
    }
    EXPECT_EQ(acc.Value(), ComputeChecksum(algorithm, data)) << ChecksumAlgorithmName(algorithm);
    // A different byte gives a different sum.
    data[12345] ^= 1;
    EXPECT_NE(acc.Value(), ComputeChecksum(algorithm, data));
    data[12345] ^= 1;
  }
}

TEST(ChecksumTest, NamesRoundTrip) {
  for (ChecksumAlgorithm algorithm : {ChecksumAlgorithm::kCrc32c, ChecksumAlgorithm::kXxh3_64}) {
    EXPECT_EQ(ParseChecksumAlgorithm(ChecksumAlgorithmName(algorithm)), algorithm);
  }
  EXPECT_EQ(ParseChecksumAlgorithm("xxh3"), ChecksumAlgorithm::kXxh3_64);
  EXPECT_FALSE(ParseChecksumAlgorithm("md5").has_value());
}

}  // namespace
}  // namespace skein::state_store
