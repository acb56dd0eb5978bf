#include "services/tokenizer/utf8.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace skein::tokenizer {
namespace {

const std::string kFffd(kReplacementCharacter);

// Independent reference for the maximal-subpart rule, driven by Unicode Table 3-7 ("Well-
// Formed UTF-8 Byte Sequences") written out as rows of byte ranges.
struct Row {
  int length;
  unsigned char lo[4], hi[4];
};
const std::vector<Row>& WellFormedRows() {
  static const std::vector<Row> rows = {
      {1, {0x00}, {0x7F}},
      {2, {0xC2, 0x80}, {0xDF, 0xBF}},
      {3, {0xE0, 0xA0, 0x80}, {0xE0, 0xBF, 0xBF}},
      {3, {0xE1, 0x80, 0x80}, {0xEC, 0xBF, 0xBF}},
      {3, {0xED, 0x80, 0x80}, {0xED, 0x9F, 0xBF}},
      {3, {0xEE, 0x80, 0x80}, {0xEF, 0xBF, 0xBF}},
      {4, {0xF0, 0x90, 0x80, 0x80}, {0xF0, 0xBF, 0xBF, 0xBF}},
      {4, {0xF1, 0x80, 0x80, 0x80}, {0xF3, 0xBF, 0xBF, 0xBF}},
      {4, {0xF4, 0x80, 0x80, 0x80}, {0xF4, 0x8F, 0xBF, 0xBF}},
  };
  return rows;
}

std::string ReferenceRepair(const std::string& in) {
  std::string out;
  size_t pos = 0;
  while (pos < in.size()) {
    int best_prefix = 0;  // longest matching prefix of any row
    bool complete = false;
    for (const Row& row : WellFormedRows()) {
      int k = 0;
      while (k < row.length && pos + k < in.size() &&
             static_cast<unsigned char>(in[pos + k]) >= row.lo[k] &&
             static_cast<unsigned char>(in[pos + k]) <= row.hi[k]) {
        ++k;
      }
      if (k > best_prefix) best_prefix = k;
      if (k == row.length) complete = true;
    }
    if (complete) {
      out.append(in, pos, best_prefix);
      pos += best_prefix;
    } else {
      out += kFffd;
      pos += best_prefix == 0 ? 1 : best_prefix;
    }
  }
  return out;
}

TEST(Utf8Test, ValidTextIsUnchanged) {
  const std::vector<std::string> valid = {
      "",
      "plain ASCII text, long enough to take the eight-byte path",
      "\xC2\x80",          // U+0080
      "\xDF\xBF",          // U+07FF
      "\xE0\xA0\x80",      // U+0800
      "\xED\x9F\xBF",      // U+D7FF, just below the surrogates
      "\xEE\x80\x80",      // U+E000, just above them
      "\xEF\xBF\xBF",      // U+FFFF
      "\xF0\x90\x80\x80",  // U+10000
      "\xF4\x8F\xBF\xBF",  // U+10FFFF
      std::string("nul\0inside", 10),
      "caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80",
  };
  for (const std::string& s : valid) {
    EXPECT_TRUE(IsValidUtf8(s)) << s;
    EXPECT_EQ(RepairUtf8(s), s);
  }
}

// The example of Unicode 15 §3.9, Table 3-8 ("Use of U+FFFD in UTF-8 Conversion").
TEST(Utf8Test, UnicodeTable3_8Example) {
  const std::string in = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64";
  const std::string want = "a" + kFffd + kFffd + kFffd + "b" + kFffd + "c" + kFffd + kFffd + "d";
  EXPECT_FALSE(IsValidUtf8(in));
  EXPECT_EQ(RepairUtf8(in), want);
}

TEST(Utf8Test, MaximalSubparts) {
  struct Case {
    std::string in;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"\xFF", kFffd},
      {"\x80", kFffd},
      {"\xC0\xAF", kFffd + kFffd},                          // overlong: C0 never starts a sequence
      {"\xE0\x80\x80", kFffd + kFffd + kFffd},              // overlong 3-byte form
      {"\xED\xA0\x80", kFffd + kFffd + kFffd},              // a surrogate
      {"\xF4\x90\x80\x80", kFffd + kFffd + kFffd + kFffd},  // above U+10FFFF
      {"\xF5\x80", kFffd + kFffd},
      {"\xE2\x82(", kFffd + "("},  // truncated by a non-continuation byte
      {"\xF0\x9F\x98", kFffd},     // truncated by the end
      {"x\xF0\x9F", "x" + kFffd},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(IsValidUtf8(c.in));
    EXPECT_EQ(RepairUtf8(c.in), c.want);
    EXPECT_EQ(ReferenceRepair(c.in), c.want);
  }
}

TEST(Utf8Test, NotAtEndKeepsOnlyAnUnfinishedTail) {
  std::string out;
  EXPECT_EQ(AppendUtf8Repaired("ab\xF0\x9F\x98", /*at_end=*/false, &out), 2u);
  EXPECT_EQ(out, "ab");
  out.clear();
  // A non-continuation byte proves the sequence can never complete: repaired at once.
  EXPECT_EQ(AppendUtf8Repaired("\xF0\x9F"
                               "a",
                               /*at_end=*/false, &out),
            3u);
  EXPECT_EQ(out, kFffd + "a");
  out.clear();
  // An invalid byte at the very end is not an unfinished character either.
  EXPECT_EQ(AppendUtf8Repaired("a\xFF", /*at_end=*/false, &out), 2u);
  EXPECT_EQ(out, "a" + kFffd);
}

TEST(Utf8Test, NextSequenceKinds) {
  using Kind = Utf8Sequence::Kind;
  EXPECT_EQ(NextUtf8Sequence("a").kind, Kind::kValid);
  EXPECT_EQ(NextUtf8Sequence("\xE2\x82\xAC").length, 3u);
  EXPECT_EQ(NextUtf8Sequence("\xE2\x82").kind, Kind::kTruncated);
  EXPECT_EQ(NextUtf8Sequence("\xE2\x82").length, 2u);
  EXPECT_EQ(NextUtf8Sequence("\xE2\x82(").kind, Kind::kInvalid);
  EXPECT_EQ(NextUtf8Sequence("\xE2\x82(").length, 2u);
}

// Random bytes, biased towards the bytes that make UTF-8 interesting.
std::string RandomBytes(std::mt19937& rng, size_t n) {
  static const unsigned char kInteresting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                               0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
                                               0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
  std::string s(n, '\0');
  for (char& c : s) {
    const uint32_t r = rng();
    c = static_cast<char>((r & 1) ? kInteresting[(r >> 1) % sizeof(kInteresting)] : (r >> 8));
  }
  return s;
}

TEST(Utf8Test, MatchesReferenceOnRandomBytes) {
  for (uint32_t seed = 0; seed < 300; ++seed) {
    std::mt19937 rng(seed);
    const std::string in = RandomBytes(rng, rng() % 64);
    const std::string repaired = RepairUtf8(in);
    ASSERT_EQ(repaired, ReferenceRepair(in)) << "seed " << seed;
    ASSERT_TRUE(IsValidUtf8(repaired));
    ASSERT_EQ(IsValidUtf8(in), repaired == in);
  }
}

TEST(Utf8Test, IncrementalRepairEqualsWholeRepair) {
  for (uint32_t seed = 0; seed < 300; ++seed) {
    std::mt19937 rng(seed);
    const std::string in = RandomBytes(rng, rng() % 64);
    std::string out, pending;
    size_t pos = 0;
    while (pos < in.size()) {
      const size_t n = 1 + rng() % 5;
      pending += in.substr(pos, n);
      pos += n;
      const size_t used = AppendUtf8Repaired(pending, /*at_end=*/false, &out);
      ASSERT_LE(pending.size() - used, 3u);
      pending.erase(0, used);
    }
    AppendUtf8Repaired(pending, /*at_end=*/true, &out);
    ASSERT_EQ(out, RepairUtf8(in)) << "seed " << seed;
  }
}

}  // namespace
}  // namespace skein::tokenizer
