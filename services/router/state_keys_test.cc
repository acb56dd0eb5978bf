#include "services/router/state_keys.h"

#include <vector>

#include "gtest/gtest.h"

namespace skein::router {
namespace {

v1::StageInfo Stage(const std::string& fingerprint, uint32_t first, uint32_t last) {
  v1::StageInfo s;
  s.mutable_model()->mutable_model()->set_fingerprint(fingerprint);
  s.mutable_model()->set_weight_dtype("bf16");
  s.mutable_model()->set_architecture("x070");
  s.mutable_layers()->set_first(first);
  s.mutable_layers()->set_last(last);
  return s;
}

TEST(PipelineIdentity, DependsOnEveryStageFingerprintRangeAndDtype) {
  const ChainHash base = PipelineIdentity({Stage("aa", 0, 6), Stage("bb", 6, 12)});
  EXPECT_EQ(base, PipelineIdentity({Stage("aa", 0, 6), Stage("bb", 6, 12)}));
  EXPECT_NE(base, PipelineIdentity({Stage("aa", 0, 6), Stage("bc", 6, 12)}));
  EXPECT_NE(base, PipelineIdentity({Stage("aa", 0, 5), Stage("bb", 5, 12)}));
  EXPECT_NE(base, PipelineIdentity({Stage("aabb", 0, 12)}));
  v1::StageInfo fp32 = Stage("bb", 6, 12);
  fp32.mutable_model()->set_weight_dtype("fp32");
  EXPECT_NE(base, PipelineIdentity({Stage("aa", 0, 6), fp32}));
}

TEST(ExtendChain, IsAChainOverTokensInOrder) {
  const ChainHash id = PipelineIdentity({Stage("aa", 0, 12)});
  const std::vector<uint32_t> tokens = {1, 2, 3, 65535, 0};
  const ChainHash all = ExtendChain(id, tokens);
  // Extending in pieces equals extending at once: the hash of a prefix continues.
  ChainHash pieces = ExtendChain(id, std::span(tokens).first(2));
  pieces = ExtendChain(pieces, std::span(tokens).subspan(2));
  EXPECT_EQ(all, pieces);
  EXPECT_EQ(id, ExtendChain(id, {}));
  // Order, value and length all matter.
  EXPECT_NE(all, ExtendChain(id, std::vector<uint32_t>{2, 1, 3, 65535, 0}));
  EXPECT_NE(all, ExtendChain(id, std::vector<uint32_t>{1, 2, 3, 65536, 0}));
  EXPECT_NE(all, ExtendChain(id, std::vector<uint32_t>{1, 2, 3, 65535}));
  // Another pipeline never shares a key with this one.
  EXPECT_NE(StateKey(id, all),
            StateKey(PipelineIdentity({Stage("ab", 0, 12)}),
                     ExtendChain(PipelineIdentity({Stage("ab", 0, 12)}), tokens)));
}

TEST(StateKeys, NamesAndHex) {
  ChainHash h{};
  h[0] = 0xab;
  h[15] = 0x01;
  EXPECT_EQ(HashHex(h), "ab000000000000000000000000000001");
  ChainHash back{};
  EXPECT_TRUE(HashFromBytes(HashBytes(h), &back));
  EXPECT_EQ(back, h);
  EXPECT_FALSE(HashFromBytes("short", &back));
  EXPECT_EQ(SessionKey("chat-1"), "skein/sessions/chat-1");
  EXPECT_EQ(StateKey(h, h).rfind("skein/states/", 0), 0u);
}

TEST(ValidSessionId, AcceptsTheDocumentedAlphabetOnly) {
  EXPECT_TRUE(ValidSessionId("a"));
  EXPECT_TRUE(ValidSessionId("Chat_1.v-2"));
  EXPECT_TRUE(ValidSessionId(std::string(128, 'x')));
  EXPECT_FALSE(ValidSessionId(""));
  EXPECT_FALSE(ValidSessionId(std::string(129, 'x')));
  EXPECT_FALSE(ValidSessionId("a/b"));
  EXPECT_FALSE(ValidSessionId("a b"));
  EXPECT_FALSE(ValidSessionId(".."));
  EXPECT_FALSE(ValidSessionId("é"));
}

TEST(StateKeys, InitialStatesStartTheirOwnChains) {
  const ChainHash identity = ExtendChain(ChainHash{}, std::vector<uint32_t>{1});
  const ChainHash a = InitialStateChain(identity, "00000000000000aa");
  EXPECT_NE(a, identity);
  EXPECT_EQ(a, InitialStateChain(identity, "00000000000000aa"));
  EXPECT_NE(a, InitialStateChain(identity, "00000000000000ab"));
  EXPECT_NE(a,
            InitialStateChain(ExtendChain(identity, std::vector<uint32_t>{2}), "00000000000000aa"));
  // The same tokens from two starts land on different keys.
  const std::vector<uint32_t> tokens = {5, 6, 7};
  EXPECT_NE(StateKey(identity, ExtendChain(a, tokens)),
            StateKey(identity, ExtendChain(identity, tokens)));
}

}  // namespace
}  // namespace skein::router
