#include "services/worker/model/sampler.h"

#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include "gtest/gtest.h"

namespace skein::model {
namespace {

std::vector<float> LogitsFor(const std::vector<double>& probabilities) {
  std::vector<float> logits;
  for (double p : probabilities) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

Sampler Make(const SamplerOptions& o, int64_t vocab) {
  absl::StatusOr<Sampler> s = Sampler::Create(o, vocab);
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

// Frequencies of `draws` samples, each from a fresh history (no penalties build up).
std::map<int32_t, double> Frequencies(SamplerOptions o, const std::vector<float>& logits,
                                      int draws) {
  Sampler s = Make(o, logits.size());
  std::map<int32_t, double> freq;
  for (int i = 0; i < draws; ++i) {
    absl::StatusOr<int32_t> t = s.Sample(logits);
    EXPECT_TRUE(t.ok());
    freq[*t] += 1.0 / draws;
  }
  return freq;
}

TEST(SamplerTest, GreedyTakesTheHighestLogitAndLowestIdOnTies) {
  SamplerOptions o;  // temperature 0
  Sampler s = Make(o, 5);
  EXPECT_EQ(*s.Sample({0.1f, 2.0f, -1.0f, 2.0f, 1.9f}), 1);
  EXPECT_EQ(*s.Sample({5.0f, 2.0f, -1.0f, 2.0f, 1.9f}), 0);
}

TEST(SamplerTest, TemperatureOneFollowsTheSoftmax) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.seed = 42;
  std::map<int32_t, double> f = Frequencies(o, LogitsFor({0.5, 0.3, 0.2}), 20000);
  EXPECT_NEAR(f[0], 0.5, 0.02);
  EXPECT_NEAR(f[1], 0.3, 0.02);
  EXPECT_NEAR(f[2], 0.2, 0.02);
}

TEST(SamplerTest, TemperatureSharpensAndFlattens) {
  const std::vector<float> logits = LogitsFor({0.5, 0.3, 0.2});
  SamplerOptions cold;
  cold.temperature = 0.1f;
  EXPECT_GT(Frequencies(cold, logits, 2000)[0], 0.98);
  SamplerOptions hot;
  hot.temperature = 100.0f;
  std::map<int32_t, double> f = Frequencies(hot, logits, 20000);
  for (int t = 0; t < 3; ++t) EXPECT_NEAR(f[t], 1.0 / 3, 0.02) << t;
}

TEST(SamplerTest, TopKKeepsOnlyTheMostLikely) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_k = 1;
  EXPECT_DOUBLE_EQ(Frequencies(o, LogitsFor({0.2, 0.5, 0.3}), 500)[1], 1.0);
  // top_k 2, then temperature 2 on what is kept: p ∝ (0.5^½, 0.3^½).
  o.top_k = 2;
  o.temperature = 2.0f;
  std::map<int32_t, double> f = Frequencies(o, LogitsFor({0.2, 0.5, 0.3}), 20000);
  EXPECT_EQ(f.count(0), 0u);
  const double a = std::sqrt(0.5), b = std::sqrt(0.3);
  EXPECT_NEAR(f[1], a / (a + b), 0.02);
  // top_k >= V is no truncation.
  o.top_k = 3;
  o.temperature = 1.0f;
  EXPECT_EQ(Frequencies(o, LogitsFor({0.2, 0.5, 0.3}), 2000).size(), 3u);
}

TEST(SamplerTest, TopPKeepsTheSmallestPrefixReachingP) {
  const std::vector<float> logits = LogitsFor({0.05, 0.5, 0.15, 0.3});
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_p = 0.4f;  // 0.5 alone reaches it
  EXPECT_DOUBLE_EQ(Frequencies(o, logits, 500)[1], 1.0);
  o.top_p = 0.7f;  // 0.5 + 0.3
  std::map<int32_t, double> f = Frequencies(o, logits, 20000);
  EXPECT_EQ(f.size(), 2u);
  EXPECT_NEAR(f[1], 0.5 / 0.8, 0.02);
  o.top_p = 0.9f;  // 0.5 + 0.3 + 0.15
  EXPECT_EQ(Frequencies(o, logits, 5000).size(), 3u);
  o.top_p = 1.0f;  // no nucleus: every token can come out
  EXPECT_EQ(Frequencies(o, logits, 5000).size(), 4u);
}

TEST(SamplerTest, TopPKeepsTiesAtTheCutoff) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_p = 0.5f;  // reached at the first 0.3; the other 0.3 ties with it
  std::map<int32_t, double> f = Frequencies(o, LogitsFor({0.3, 0.4, 0.3}), 5000);
  EXPECT_EQ(f.size(), 3u);
}

TEST(SamplerTest, TopPOnALargeVocabularyGrowsThePrefix) {
  // 5000 nearly equally likely tokens, most likely first: top_p 0.5 keeps about the first
  // 2500, far beyond the first sorted prefix.
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_p = 0.5f;
  std::vector<float> logits(5000);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = -1e-5f * static_cast<float>(i);
  std::map<int32_t, double> f = Frequencies(o, logits, 4000);
  EXPECT_GT(f.size(), 1500u);
  EXPECT_GT(f.rbegin()->first, 2000);
  EXPECT_LT(f.rbegin()->first, 2500);
}

TEST(SamplerTest, PresenceAndFrequencyPenaltiesDiscourageRepeats) {
  SamplerOptions o;
  o.presence_penalty = 1.0f;
  Sampler s = Make(o, 3);
  const std::vector<float> logits = {1.5f, 1.0f, 0.0f};
  EXPECT_EQ(*s.Sample(logits), 0);
  EXPECT_EQ(*s.Sample(logits), 1);  // 0 now at 0.5
  EXPECT_EQ(*s.Sample(logits), 0);  // 0 at 0.5 (presence is flat), 1 at 0.0
  EXPECT_NEAR(s.occurrences().at(0), 1 + 0.996 * 0.996, 1e-6);

  SamplerOptions freq;
  freq.frequency_penalty = 0.3f;
  freq.penalty_decay = 1.0f;
  Sampler f = Make(freq, 2);
  const std::vector<float> close = {1.0f, 0.5f};
  EXPECT_EQ(*f.Sample(close), 0);  // 0: 1.0 − 0.3 = 0.7 next
  EXPECT_EQ(*f.Sample(close), 0);  // 0.7 > 0.5; then 0.4
  EXPECT_EQ(*f.Sample(close), 1);
  EXPECT_FLOAT_EQ(f.occurrences().at(0), 2.0f);
}

TEST(SamplerTest, PenaltyDecayForgets) {
  SamplerOptions o;
  o.presence_penalty = 0.0f;
  o.frequency_penalty = 1.0f;
  o.penalty_decay = 0.5f;
  Sampler s = Make(o, 2);
  const std::vector<float> logits = {1.0f, 0.2f};
  EXPECT_EQ(*s.Sample(logits), 0);  // count(0) = 1 → penalty 1
  EXPECT_EQ(*s.Sample(logits), 1);  // 0 at 0.0 < 0.2; then count(0) = 0.5, count(1) = 1
  EXPECT_EQ(*s.Sample(logits), 0);  // 0 at 0.5 > 1 at −0.8
  EXPECT_FLOAT_EQ(s.occurrences().at(1), 0.5f);
}

TEST(SamplerTest, LogitBiasAndBannedTokens) {
  SamplerOptions o;
  o.logit_bias = {{2, 10.0f}};
  EXPECT_EQ(*Make(o, 4).Sample({3.0f, 2.0f, 0.0f, 1.0f}), 2);
  SamplerOptions ban;
  ban.banned_tokens = {0};
  EXPECT_EQ(*Make(ban, 4).Sample({3.0f, 2.0f, 0.0f, 1.0f}), 1);
  ban.temperature = 1.0f;
  EXPECT_EQ(Frequencies(ban, {3.0f, 2.0f, 0.0f, 1.0f}, 2000).count(0), 0u);
  ban.banned_tokens = {0, 1, 2, 3};
  EXPECT_EQ(Make(ban, 4).Sample({3.0f, 2.0f, 0.0f, 1.0f}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(SamplerTest, SeedsAreReproducible) {
  std::vector<float> logits(1000);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(i % 7) * 0.1f;
  auto draw = [&](uint64_t seed) {
    SamplerOptions o;
    o.temperature = 1.0f;
    o.top_p = 0.9f;
    o.seed = seed;
    Sampler s = Make(o, logits.size());
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(*s.Sample(logits));
    return out;
  };
  EXPECT_EQ(draw(7), draw(7));
  EXPECT_NE(draw(7), draw(8));
}

TEST(SamplerTest, RejectsInvalidOptions) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<SamplerOptions> bad(13);
  bad[0].temperature = -0.5f;
  bad[1].temperature = nan;
  bad[2].temperature = inf;
  bad[3].top_p = 0.0f;
  bad[4].top_p = 1.5f;
  bad[5].top_p = nan;
  bad[6].top_k = -1;
  bad[7].presence_penalty = nan;
  bad[8].frequency_penalty = inf;
  bad[9].penalty_decay = 1.5f;
  bad[10].logit_bias = {{10, 1.0f}};
  bad[11].logit_bias = {{1, nan}};
  bad[12].banned_tokens = {-1};
  for (size_t i = 0; i < bad.size(); ++i) {
    EXPECT_EQ(Sampler::Create(bad[i], 10).status().code(), absl::StatusCode::kInvalidArgument)
        << "case " << i;
  }
  EXPECT_EQ(Sampler::Create(SamplerOptions{}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SamplerTest, RejectsInvalidLogits) {
  Sampler s = Make(SamplerOptions{}, 3);
  EXPECT_EQ(s.Sample({1.0f, 2.0f}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Sample({1.0f, std::numeric_limits<float>::quiet_NaN(), 0.0f}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Sample({1.0f, std::numeric_limits<float>::infinity(), 0.0f}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SamplerTest, SavedStateContinuesExactlyWhereItStopped) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.presence_penalty = 0.3f;
  o.frequency_penalty = 0.2f;
  o.seed = 1234;
  const std::vector<float> logits = LogitsFor({0.1, 0.2, 0.3, 0.15, 0.25});
  Sampler a = Make(o, 5);
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(a.Sample(logits).ok());
  const std::string saved = a.SerializeState();
  Sampler b = Make(o, 5);
  ASSERT_TRUE(b.RestoreState(saved).ok());
  EXPECT_EQ(b.occurrences(), a.occurrences());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(*b.Sample(logits), *a.Sample(logits)) << i;
}

TEST(SamplerTest, RestoreRejectsForeignOrTruncatedBytesAndKeepsItsState) {
  SamplerOptions o;
  o.seed = 9;
  Sampler a = Make(o, 5);
  a.Record(3);
  const std::string saved = a.SerializeState();
  Sampler b = Make(o, 5);
  EXPECT_EQ(b.RestoreState("nonsense").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.RestoreState(saved.substr(0, saved.size() - 1)).code(),
            absl::StatusCode::kInvalidArgument);
  Sampler small = Make(o, 3);  // token 3 is outside a vocabulary of 3
  EXPECT_EQ(small.RestoreState(saved).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(b.occurrences().empty());
}

TEST(SamplerTest, SetOptionsKeepsTheGeneratorAndReseedRestartsIt) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.seed = 77;
  const std::vector<float> logits = LogitsFor({0.2, 0.2, 0.2, 0.2, 0.2});
  Sampler a = Make(o, 5);
  Sampler b = Make(o, 5);
  ASSERT_TRUE(a.Sample(logits).ok());
  ASSERT_TRUE(b.Sample(logits).ok());
  SamplerOptions changed = o;
  changed.top_k = 5;  // keeps all five: the same distribution
  changed.seed = 1;   // ignored by SetOptions
  ASSERT_TRUE(b.SetOptions(changed).ok());
  EXPECT_EQ(b.seed(), 77u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(*a.Sample(logits), *b.Sample(logits));
  changed.top_p = 2.0f;
  EXPECT_FALSE(b.SetOptions(changed).ok());
  a.Reseed(5);
  SamplerOptions fresh;
  fresh.temperature = 1.0f;
  fresh.seed = 5;
  Sampler c = Make(fresh, 5);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(*a.Sample(logits), *c.Sample(logits));
}

}  // namespace
}  // namespace skein::model
