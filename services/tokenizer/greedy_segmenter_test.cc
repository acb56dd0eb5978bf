#include "services/tokenizer/greedy_segmenter.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "services/tokenizer/byte_trie.h"
#include "services/tokenizer/test_vocab.h"
#include "services/tokenizer/world_tokenizer.h"
#include "tests/support/test_data.h"

namespace skein::tokenizer {
namespace {

// The plain greedy walk: one LongestPrefix call per key.
std::vector<uint32_t> ReferenceWalk(const ByteTrie& trie, absl::string_view text) {
  std::vector<uint32_t> values;
  while (!text.empty()) {
    const ByteTrie::Match m = trie.LongestPrefix(text);
    if (m.length == 0) break;
    values.push_back(m.value);
    text.remove_prefix(m.length);
  }
  return values;
}

std::vector<uint32_t> Fast(const ByteTrie& trie, absl::string_view text,
                           GreedySegmenter::Step step = GreedySegmenter::Step::kFastest) {
  // Appended after existing values, which stay.
  std::vector<uint32_t> values = {7, 8};
  GreedySegmenter segmenter(&trie, step);
  segmenter.Segment(text, &values);
  EXPECT_EQ(values[0], 7u);
  EXPECT_EQ(values[1], 8u);
  values.erase(values.begin(), values.begin() + 2);
  EXPECT_EQ(segmenter.CountKeys(text), values.size());
  return values;
}

// The same with the portable C++ step, which x86-64 otherwise does not run.
std::vector<uint32_t> FastPortable(const ByteTrie& trie, absl::string_view text) {
  return Fast(trie, text, GreedySegmenter::Step::kPortable);
}

std::vector<uint32_t> Simple(const ByteTrie& trie, absl::string_view text) {
  std::vector<uint32_t> values;
  GreedySegmenter(&trie).SegmentSimply(text, &values);
  return values;
}

// Keys and a trie built from them; `storage` owns the bytes the keys point at.
struct TestTrie {
  std::vector<std::string> storage;
  ByteTrie trie;
};

TestTrie BuildTrie(std::vector<std::string> keys) {
  TestTrie t;
  t.storage = std::move(keys);
  std::vector<ByteTrie::Key> trie_keys;
  for (size_t i = 0; i < t.storage.size(); ++i) {
    trie_keys.push_back({t.storage[i], static_cast<uint32_t>(i + 1)});
  }
  t.trie = ByteTrie::Build(trie_keys);
  return t;
}

std::vector<std::string> AllSingleBytes() {
  std::vector<std::string> keys;
  for (int b = 0; b < 256; ++b) keys.push_back(std::string(1, static_cast<char>(b)));
  return keys;
}

// Texts of one of several kinds: uniform bytes (NULs, invalid UTF-8), long runs of a few
// bytes (which force the longest keys), multilingual UTF-8, and concatenated keys.
std::string RandomText(std::mt19937& rng, int kind, size_t length,
                       const std::vector<std::string>& keys) {
  static const char* kPieces[] = {"the ",
                                  "你好",
                                  "世界",
                                  "😀",
                                  "é",
                                  "\n\n",
                                  "  ",
                                  "Привет ",
                                  "мир ",
                                  "مرحبا ",
                                  "ー",
                                  "こんにちは",
                                  "def f(x):\n",
                                  "🏽",
                                  "12345",
                                  "\t",
                                  "<|endoftext|>",
                                  "👨‍👩‍👧",
                                  "🇯🇵",
                                  "ﬁ"};
  std::string s;
  while (s.size() < length) {
    switch (kind) {
      case 0:
        s.push_back(static_cast<char>(rng()));
        break;
      case 1:
        s.append(1 + rng() % 300, " \n\0a\xF0\xFF="[rng() % 7]);
        break;
      case 2:
        s += kPieces[rng() % (sizeof(kPieces) / sizeof(kPieces[0]))];
        break;
      default:
        s += keys[rng() % keys.size()];
        break;
    }
  }
  s.resize(length);
  return s;
}

// Lengths from empty to several segments per lane, dense around the smallest texts that
// take the interleaved path (where segments are a few bytes long and boundaries are many).
std::vector<size_t> Lengths(std::mt19937& rng) {
  std::vector<size_t> lengths;
  for (size_t n = 0; n < 64; ++n) lengths.push_back(n);
  for (size_t n = 700; n < 1400; n += 7) lengths.push_back(n);
  for (int i = 0; i < 40; ++i) lengths.push_back(1400 + rng() % 20000);
  for (int i = 0; i < 4; ++i) lengths.push_back(100000 + rng() % 300000);
  return lengths;
}

// Keys over a small alphabet make long matches and long walks past the last key common.
TEST(GreedySegmenterTest, MatchesTheReferenceWalkOnRandomVocabularies) {
  for (uint32_t seed = 0; seed < 6; ++seed) {
    std::mt19937 rng(seed);
    std::vector<std::string> keys = AllSingleBytes();
    const int alphabet = seed % 2 == 0 ? 3 : 256;
    for (int i = 0; i < 3000; ++i) {
      std::string key(2 + rng() % (seed < 2 ? 6 : 40), '\0');
      for (char& c : key) c = static_cast<char>(rng() % alphabet);
      keys.push_back(key);
    }
    const TestTrie t = BuildTrie(keys);
    ASSERT_TRUE(t.trie.covers_all_bytes());
    for (size_t length : Lengths(rng)) {
      const int kind = static_cast<int>(rng() % 4);
      std::string text = RandomText(rng, kind, length, t.storage);
      if (alphabet == 3 && kind != 3) {
        for (char& c : text) c = static_cast<char>(static_cast<uint8_t>(c) % 3);
      }
      const std::vector<uint32_t> want = ReferenceWalk(t.trie, text);
      ASSERT_EQ(Fast(t.trie, text), want)
          << "seed " << seed << " kind " << kind << " length " << length;
      ASSERT_EQ(FastPortable(t.trie, text), want)
          << "seed " << seed << " kind " << kind << " length " << length;
      ASSERT_EQ(Simple(t.trie, text), want);
    }
  }
}

// Keys "a" and "aa" over a run of 'a': the boundaries of a segment that starts at an odd
// offset never meet the true ones, so the join must carry the true segmentation on through
// whole segments.
TEST(GreedySegmenterTest, SegmentsThatNeverSynchroniseAreRedone) {
  std::vector<std::string> keys = AllSingleBytes();
  keys.push_back("aa");
  const TestTrie t = BuildTrie(keys);
  for (size_t length = 900; length < 1400; ++length) {
    const std::string text(length, 'a');
    ASSERT_EQ(Fast(t.trie, text), ReferenceWalk(t.trie, text)) << length;
    ASSERT_EQ(FastPortable(t.trie, text), ReferenceWalk(t.trie, text)) << length;
  }
  const std::string text(300001, 'a');
  ASSERT_EQ(Fast(t.trie, text), ReferenceWalk(t.trie, text));
  ASSERT_EQ(Simple(t.trie, text), ReferenceWalk(t.trie, text));
}

// Keys "abcd" and single bytes over "abcabc...": every lane walk passes "abc", which is no
// key, and stops there, so every lane key is wrong and the true segmentation (single bytes)
// must be rebuilt everywhere; runs of "abcd" in between let the two meet again.
TEST(GreedySegmenterTest, WalksThatStopWhereNoKeyEnds) {
  std::vector<std::string> keys = AllSingleBytes();
  keys.push_back("abcd");
  const TestTrie t = BuildTrie(keys);
  std::mt19937 rng(3);
  std::string periodic;
  while (periodic.size() < 200000) periodic += "abc";
  std::string mixed;
  while (mixed.size() < 200000) mixed += rng() % 4 == 0 ? "abcd" : "abc";
  std::string random;
  while (random.size() < 200000) random.push_back("abcd"[rng() % 4]);
  for (const std::string* text : {&periodic, &mixed, &random}) {
    for (size_t length : Lengths(rng)) {
      const absl::string_view piece = absl::string_view(*text).substr(0, length);
      const std::vector<uint32_t> want = ReferenceWalk(t.trie, piece);
      ASSERT_EQ(Fast(t.trie, piece), want) << length;
      ASSERT_EQ(FastPortable(t.trie, piece), want) << length;
      ASSERT_EQ(Simple(t.trie, piece), want) << length;
    }
  }
}

// Failure links of every kind. "abc" is no key; its longest key is "a" and its link the state
// "bc" (on the way to "bce"), so a lane that stops at "abc" on 'e' goes on at "bce" and is
// right, while on 'f' the link has no child and the join must redo the keys from "b". "xyz"
// has no link at all ("yz" starts no key). Random texts over these letters mix all three.
TEST(GreedySegmenterTest, FailureStepsThatFollowMissOrLackALink) {
  std::vector<std::string> keys = AllSingleBytes();
  for (const char* key : {"abcd", "bce", "bcef", "xyzw", "ab", "ef"}) keys.push_back(key);
  const TestTrie t = BuildTrie(keys);
  std::mt19937 rng(11);
  for (const char* alphabet : {"abcdef", "abcefxyzw"}) {
    const size_t letters = std::string(alphabet).size();
    for (size_t length : Lengths(rng)) {
      std::string text;
      while (text.size() < length) {
        // Mostly whole prefixes of the keys, so that walks reach the states that matter.
        if (rng() % 3 == 0) {
          text.push_back(alphabet[rng() % letters]);
        } else {
          const std::string& key = t.storage[256 + rng() % 6];
          text += key.substr(0, 1 + rng() % key.size());
        }
      }
      text.resize(length);
      const std::vector<uint32_t> want = ReferenceWalk(t.trie, text);
      ASSERT_EQ(Fast(t.trie, text), want) << alphabet << " " << length;
      ASSERT_EQ(FastPortable(t.trie, text), want) << alphabet << " " << length;
    }
  }
  // The cases one by one, each in a text long enough for the lanes.
  for (const char* piece : {"abce", "abcf", "abcef", "xyzq", "xyzwabcd", "abcabce"}) {
    std::string text;
    while (text.size() < 3000) text += piece;
    ASSERT_EQ(Fast(t.trie, text), ReferenceWalk(t.trie, text)) << piece;
    ASSERT_EQ(FastPortable(t.trie, text), ReferenceWalk(t.trie, text)) << piece;
  }
}

// Only long keys over a small alphabet, besides single bytes: walks go deep and usually stop
// in a state without a key, often several bytes past the last key, and the keys found again
// from there overlap further lane keys.
TEST(GreedySegmenterTest, LongKeysWithFewKeysOnTheirPaths) {
  for (uint32_t seed = 0; seed < 4; ++seed) {
    std::mt19937 rng(100 + seed);
    std::vector<std::string> keys = AllSingleBytes();
    for (int i = 0; i < 500; ++i) {
      std::string key(4 + rng() % 12, '\0');
      for (char& c : key) c = static_cast<char>('a' + rng() % 3);
      keys.push_back(key);
    }
    const TestTrie t = BuildTrie(keys);
    for (size_t length : Lengths(rng)) {
      std::string text(length, '\0');
      for (char& c : text) c = static_cast<char>('a' + rng() % 3);
      const std::vector<uint32_t> want = ReferenceWalk(t.trie, text);
      ASSERT_EQ(Fast(t.trie, text), want) << "seed " << seed << " length " << length;
      ASSERT_EQ(FastPortable(t.trie, text), want) << "seed " << seed << " length " << length;
      ASSERT_EQ(Simple(t.trie, text), want);
    }
  }
}

// Values up to 2^32 - 1 and a key longer than 2^16 bytes come out unchanged.
TEST(GreedySegmenterTest, LargeValuesAndVeryLongKeys) {
  std::vector<std::string> storage = AllSingleBytes();
  storage.push_back(std::string(70000, 'a'));
  storage.push_back(std::string(69999, 'a') + "b");
  std::vector<ByteTrie::Key> keys;
  for (size_t i = 0; i < storage.size(); ++i) {
    keys.push_back({storage[i], static_cast<uint32_t>(UINT32_MAX - i)});
  }
  const ByteTrie trie = ByteTrie::Build(keys);
  ASSERT_TRUE(trie.covers_all_bytes());
  const std::string text = std::string(140000, 'a') + "c" + std::string(69999, 'a') + "bxyz";
  const std::vector<uint32_t> want = ReferenceWalk(trie, text);
  ASSERT_EQ(want, (std::vector<uint32_t>{UINT32_MAX - 256, UINT32_MAX - 256, UINT32_MAX - 'c',
                                         UINT32_MAX - 257, UINT32_MAX - 'x', UINT32_MAX - 'y',
                                         UINT32_MAX - 'z'}));
  EXPECT_EQ(Fast(trie, text), want);
  EXPECT_EQ(FastPortable(trie, text), want);
}

// Without a key for every byte the walk stops where no key starts, on either path.
TEST(GreedySegmenterTest, StopsWhereNoKeyStarts) {
  const TestTrie t = BuildTrie({"a", "b", "ab", "abc"});
  ASSERT_FALSE(t.trie.covers_all_bytes());
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "abcab";
  text += "x";
  text += std::string(2000, 'a');
  const std::vector<uint32_t> want = ReferenceWalk(t.trie, text);
  EXPECT_EQ(want.size(), 2000u);  // 1000 times "abc", "ab", then nothing at "x"
  EXPECT_EQ(Fast(t.trie, text), want);
  EXPECT_TRUE(Fast(ByteTrie(), text).empty());
}

// The World vocabulary: the tokenizer's Encode against the plain walk over a trie built here
// from its tokens.
class WorldSegmenterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKEIN_REQUIRE_TEST_DATA(vocab, testing::kWorldVocabPath);
    tokenizer_ = &testing::SharedWorldTokenizer(vocab);
    for (uint32_t id = 1; id < tokenizer_->vocab_size(); ++id) {
      if (tokenizer_->HasBytes(id)) keys_.push_back({tokenizer_->TokenBytes(id), id});
    }
    trie_ = ByteTrie::Build(keys_);
  }

  void ExpectSame(const std::string& text, const std::string& what) {
    const std::vector<uint32_t> want = ReferenceWalk(trie_, text);
    ASSERT_EQ(tokenizer_->Encode(text), want) << what;
    ASSERT_EQ(tokenizer_->CountTokens(text), want.size()) << what;
    ASSERT_EQ(Fast(trie_, text), want) << what;
    ASSERT_EQ(FastPortable(trie_, text), want) << what;
  }

  const WorldTokenizer* tokenizer_ = nullptr;
  std::vector<ByteTrie::Key> keys_;
  ByteTrie trie_;
};

TEST_F(WorldSegmenterTest, RandomBytesOfManyLengths) {
  std::mt19937 rng(7);
  std::vector<std::string> tokens;
  for (const ByteTrie::Key& k : keys_) tokens.emplace_back(k.bytes);
  for (size_t length : Lengths(rng)) {
    const int kind = static_cast<int>(rng() % 4);
    ExpectSame(RandomText(rng, kind, length, tokens),
               "kind " + std::to_string(kind) + " length " + std::to_string(length));
  }
  // Runs longer than the longest token (128 spaces), and of bytes without long tokens.
  ExpectSame(std::string(200000, ' '), "spaces");
  ExpectSame(std::string(200003, '\0'), "NULs");
  ExpectSame(std::string(150001, '\xFF'), "0xFF");
}

TEST_F(WorldSegmenterTest, GoldenCasesAloneRepeatedAndConcatenated) {
  SKEIN_REQUIRE_TEST_DATA(golden, testing::kWorldGoldenPath);
  const std::vector<testing::GoldenCase> cases = testing::ReadGoldenCases(golden);
  ASSERT_FALSE(cases.empty());
  std::string all;
  for (const testing::GoldenCase& c : cases) {
    ASSERT_EQ(tokenizer_->Encode(c.bytes), c.ids) << c.name;
    ExpectSame(c.bytes, c.name);
    std::string repeated;
    while (!c.bytes.empty() && repeated.size() < 5000) repeated += c.bytes;
    ExpectSame(repeated, c.name + " repeated");
    all += c.bytes;
  }
  ExpectSame(all, "all golden cases");
}

TEST_F(WorldSegmenterTest, MultiMegabyteMultilingualText) {
  std::mt19937 rng(11);
  std::string text;
  while (text.size() < 3000000) {
    // Paragraphs of one kind each, as in real documents.
    text += RandomText(rng, rng() % 10 == 0 ? 0 : 2, 200 + rng() % 4000, {});
    text += "\n\n";
  }
  ExpectSame(text, "multilingual text");
}

}  // namespace
}  // namespace skein::tokenizer
