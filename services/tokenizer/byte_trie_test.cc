#include "services/tokenizer/byte_trie.h"

#include <algorithm>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "gtest/gtest.h"

namespace skein::tokenizer {
namespace {

// The longest key that prefixes `text`, by trying every key.
ByteTrie::Match BruteForce(const std::vector<std::string>& keys,
                           const std::vector<uint32_t>& values, const std::string& text) {
  ByteTrie::Match best{0, 0};
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].empty() || values[i] == 0) continue;
    if (text.compare(0, keys[i].size(), keys[i]) == 0 && keys[i].size() > best.length) {
      best = {values[i], keys[i].size()};
    }
  }
  return best;
}

TEST(ByteTrieTest, EmptyTrieMatchesNothing) {
  const ByteTrie trie = ByteTrie::Build({});
  EXPECT_EQ(trie.LongestPrefix("abc").length, 0u);
  EXPECT_EQ(trie.LongestPrefix("").length, 0u);
  const ByteTrie default_trie;
  EXPECT_EQ(default_trie.LongestPrefix("abc").length, 0u);
}

TEST(ByteTrieTest, LongestKeyWins) {
  const std::vector<ByteTrie::Key> keys = {{"a", 1}, {"abc", 2}, {"ab", 3}, {"abcdef", 4}};
  const ByteTrie trie = ByteTrie::Build(keys);
  EXPECT_EQ(trie.LongestPrefix("abcde").value, 2u);
  EXPECT_EQ(trie.LongestPrefix("abcde").length, 3u);
  EXPECT_EQ(trie.LongestPrefix("abcdefg").value, 4u);
  EXPECT_EQ(trie.LongestPrefix("abx").value, 3u);
  EXPECT_EQ(trie.LongestPrefix("a").value, 1u);
  EXPECT_EQ(trie.LongestPrefix("b").length, 0u);
}

TEST(ByteTrieTest, FirstOfEqualKeysWinsAndEmptyOrZeroKeysAreIgnored) {
  const std::vector<ByteTrie::Key> keys = {{"", 7}, {"x", 0}, {"xy", 5}, {"xy", 3}, {"x", 9}};
  const ByteTrie trie = ByteTrie::Build(keys);
  EXPECT_EQ(trie.LongestPrefix("xyz").value, 5u);
  EXPECT_EQ(trie.LongestPrefix("xa").value, 9u);
  EXPECT_EQ(trie.LongestPrefix("q").length, 0u);
}

TEST(ByteTrieTest, ValuesUpToTheLargest) {
  const std::vector<ByteTrie::Key> keys = {{"a", UINT32_MAX}, {"ab", UINT32_MAX - 1}, {"abc", 1}};
  const ByteTrie trie = ByteTrie::Build(keys);
  EXPECT_EQ(trie.LongestPrefix("ax").value, UINT32_MAX);
  EXPECT_EQ(trie.LongestPrefix("abx").value, UINT32_MAX - 1);
  EXPECT_EQ(trie.LongestPrefix("abcx").value, 1u);
  EXPECT_EQ(trie.LongestPrefix("abcx").length, 3u);
}

TEST(ByteTrieTest, AllByteValuesAndLongKeys) {
  std::vector<std::string> storage;
  for (int b = 0; b < 256; ++b) storage.push_back(std::string(1, static_cast<char>(b)));
  storage.push_back(std::string(300, '\xFF'));
  storage.push_back(std::string(3, '\0'));
  std::vector<ByteTrie::Key> keys;
  for (size_t i = 0; i < storage.size(); ++i) {
    keys.push_back({storage[i], static_cast<uint32_t>(i + 1)});
  }
  const ByteTrie trie = ByteTrie::Build(keys);
  for (int b = 0; b < 256; ++b) {
    const ByteTrie::Match m = trie.LongestPrefix(storage[b] + "z");
    EXPECT_EQ(m.value, static_cast<uint32_t>(b + 1));
    EXPECT_EQ(m.length, 1u);
  }
  EXPECT_EQ(trie.LongestPrefix(std::string(301, '\xFF')).value, 257u);
  EXPECT_EQ(trie.LongestPrefix(std::string(299, '\xFF')).value, 256u);
  EXPECT_EQ(trie.LongestPrefix(std::string(4, '\0')).value, 258u);
}

// Random key sets over small and large alphabets, against the brute-force answer.
TEST(ByteTrieTest, MatchesBruteForceOnRandomKeys) {
  for (uint32_t seed = 0; seed < 40; ++seed) {
    std::mt19937 rng(seed);
    const int alphabet = seed % 2 == 0 ? 3 : 256;
    std::vector<std::string> storage;
    std::vector<uint32_t> values;
    const int count = 1 + rng() % 400;
    for (int i = 0; i < count; ++i) {
      std::string key(rng() % 12, '\0');
      for (char& c : key) c = static_cast<char>(rng() % alphabet);
      storage.push_back(key);
      values.push_back(rng() % 5 == 0 ? 0 : 1 + rng() % 100000);
    }
    std::vector<ByteTrie::Key> keys;
    for (size_t i = 0; i < storage.size(); ++i) keys.push_back({storage[i], values[i]});
    const ByteTrie trie = ByteTrie::Build(keys);
    for (int probe = 0; probe < 200; ++probe) {
      std::string text(rng() % 16, '\0');
      for (char& c : text) c = static_cast<char>(rng() % alphabet);
      const ByteTrie::Match got = trie.LongestPrefix(text);
      const ByteTrie::Match want = BruteForce(storage, values, text);
      ASSERT_EQ(got.length, want.length) << "seed " << seed;
      if (want.length == 0) continue;
      // Equal keys: the first in input order wins.
      uint32_t first_value = 0;
      for (size_t i = 0; i < storage.size(); ++i) {
        if (values[i] != 0 && storage[i] == text.substr(0, want.length)) {
          first_value = values[i];
          break;
        }
      }
      ASSERT_EQ(got.value, first_value) << "seed " << seed;
    }
  }
}

// Large key sets fill the double array densely, which exercises every way the builder finds
// room for a state's children.
TEST(ByteTrieTest, ManyKeysMatchAHashMapReference) {
  for (uint32_t seed = 0; seed < 4; ++seed) {
    std::mt19937 rng(1000 + seed);
    const int alphabet = seed % 2 == 0 ? 5 : 256;
    std::vector<std::string> storage;
    std::unordered_map<std::string, uint32_t> first_value;
    size_t max_length = 0;
    for (int i = 0; i < 30000; ++i) {
      std::string key(1 + rng() % (seed < 2 ? 8 : 40), '\0');
      for (char& c : key) c = static_cast<char>(rng() % alphabet);
      storage.push_back(key);
      first_value.emplace(key, i + 1);
      max_length = std::max(max_length, key.size());
    }
    std::vector<ByteTrie::Key> keys;
    for (size_t i = 0; i < storage.size(); ++i) {
      keys.push_back({storage[i], static_cast<uint32_t>(i + 1)});
    }
    const ByteTrie trie = ByteTrie::Build(keys);
    for (int probe = 0; probe < 3000; ++probe) {
      // Half the probes extend a stored key, so that long matches are common.
      std::string text = probe % 2 == 0 ? storage[rng() % storage.size()] : std::string();
      const size_t extra = rng() % 12;
      for (size_t i = 0; i < extra; ++i) text.push_back(static_cast<char>(rng() % alphabet));
      ByteTrie::Match want{0, 0};
      for (size_t len = std::min(max_length, text.size()); len > 0; --len) {
        auto it = first_value.find(text.substr(0, len));
        if (it != first_value.end()) {
          want = {it->second, len};
          break;
        }
      }
      const ByteTrie::Match got = trie.LongestPrefix(text);
      ASSERT_EQ(got.length, want.length) << "seed " << seed;
      ASSERT_EQ(got.value, want.value) << "seed " << seed;
    }
  }
}

}  // namespace
}  // namespace skein::tokenizer
