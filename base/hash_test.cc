// Xxh3_64 is libxxhash's XXH3-64 with seed 0, whichever build of it runs.
#include "base/hash.h"

#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "xxhash.h"

namespace skein::base {
namespace {

TEST(HashTest, Xxh3IsTheLibrarysSeedZeroHash) {
  // XXH3-64 of empty input with seed 0, as published by the xxHash project.
  EXPECT_EQ(Xxh3_64("", 0), 0x2D06800538D394C2ull);
  const std::string data(100'000, 'x');
  EXPECT_EQ(Xxh3_64(data.data(), data.size()), XXH3_64bits(data.data(), data.size()));
}

TEST(HashTest, Xxh3EqualsTheLibraryAtEveryLengthAndAlignment) {
  // The AVX2 build takes different code paths by length (0-16, 17-128, 129-240, stripes of
  // 64, blocks of 1024) and must agree with the library on all of them.
  std::string data(3 << 20, '\0');
  uint32_t x = 12345;
  for (char& c : data) c = static_cast<char>((x = x * 1103515245u + 12345u) >> 24);
  std::vector<size_t> sizes;
  for (size_t n = 0; n <= 2100; ++n) sizes.push_back(n);
  for (size_t n : {4095, 4096, 65537, 1 << 20, (3 << 20) - 64}) sizes.push_back(n);
  for (size_t n : sizes) {
    for (size_t offset : {0, 1, 7}) {
      if (offset + n > data.size()) continue;
      ASSERT_EQ(Xxh3_64(data.data() + offset, n), XXH3_64bits(data.data() + offset, n))
          << "size " << n << " offset " << offset;
    }
  }
}

}  // namespace
}  // namespace skein::base
