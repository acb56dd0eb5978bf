// Next-token sampling from logits (spec §9): greedy, temperature, top-k, top-p (nucleus),
// presence/frequency penalties with decay, logit bias and banned tokens, with a seeded
// generator that gives the same tokens on every run and platform.
//
// Per call, in this order: logit bias is added; banned tokens get −∞; every token seen so far
// loses presence_penalty + occurrences·frequency_penalty (spec §9.2). Then, at temperature 0,
// the highest logit wins (the lowest id among ties). Otherwise (spec §9.1) p = softmax(logits);
// with top_p < 1, the tokens whose p is at least the p at which the descending cumulative sum
// first reaches top_p are kept; with 0 < top_k < V, only the top_k most likely of those; the
// kept p are raised to 1/temperature and one token is drawn. Ties in p are ordered by id.
// Finally every occurrence count is multiplied by penalty_decay and the chosen token's count
// grows by 1 (every token counts the same: the sampler does not know the vocabulary's text,
// so the reference's exemption of whitespace and digit tokens is the caller's to apply via
// Record).
//
// Not thread-safe: one sampler per sequence.
#ifndef SKEIN_SERVICES_WORKER_MODEL_SAMPLER_H_
#define SKEIN_SERVICES_WORKER_MODEL_SAMPLER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace skein::model {

struct SamplerOptions {
  float temperature = 0.0f;  // >= 0; 0 = greedy
  float top_p = 1.0f;        // in (0, 1]; 1 = no nucleus truncation
  int32_t top_k = 0;         // >= 0; 0 = no top-k truncation
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float penalty_decay = 0.996f;                       // in [0, 1]
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token, finite bias)
  std::vector<int32_t> banned_tokens;
  uint64_t seed = 0;
};

// INVALID_ARGUMENT naming the first bad field: NaN or infinite values, temperature < 0,
// top_p outside (0, 1], top_k < 0, penalty_decay outside [0, 1], token ids outside [0, vocab).
absl::Status ValidateSamplerOptions(const SamplerOptions& options, int64_t vocab);

// xoshiro256** seeded through splitmix64: a small, fully specified generator.
class SamplerRandom {
 public:
  explicit SamplerRandom(uint64_t seed);
  uint64_t Next();
  // Uniform in [0, 1) with 53 random bits.
  double NextUnit();

  // The generator's whole state, so a session's sampler can be saved and restored exactly.
  const uint64_t* words() const { return s_; }
  void set_words(const uint64_t words[4]) {
    for (int i = 0; i < 4; ++i) s_[i] = words[i];
  }

 private:
  uint64_t s_[4];
};

class Sampler {
 public:
  static absl::StatusOr<Sampler> Create(const SamplerOptions& options, int64_t vocab);

  // Picks the next token and records it. INVALID_ARGUMENT if `logits` does not hold vocab
  // values or holds NaN or +∞; FAILED_PRECONDITION if every token is banned (−∞).
  absl::StatusOr<int32_t> Sample(absl::Span<const float> logits);

  // Counts `token` as generated (decay, then +weight), as Sample does for its own picks.
  void Record(int32_t token, float weight = 1.0f);

  const absl::flat_hash_map<int32_t, float>& occurrences() const { return occurrences_; }
  const SamplerOptions& options() const { return options_; }

  // Replaces the options for the next picks, keeping the generator's position and the
  // occurrence counts (a session's parameters may change between turns). `options.seed` is
  // ignored: only Reseed restarts the generator. Errors as Create; unchanged on error.
  absl::Status SetOptions(const SamplerOptions& options);
  // Restarts the generator from `seed` (occurrences are kept).
  void Reseed(uint64_t seed);
  uint64_t seed() const { return options_.seed; }

  // The generator position and occurrence counts as bytes (options are not included: the
  // caller sends them with every step), and back. Restore: INVALID_ARGUMENT for bytes that
  // Serialize did not write for this vocabulary; the sampler is unchanged then.
  std::string SerializeState() const;
  absl::Status RestoreState(std::string_view bytes);

 private:
  Sampler(const SamplerOptions& options, int64_t vocab);

  SamplerOptions options_;
  int64_t vocab_;
  SamplerRandom random_;
  absl::flat_hash_map<int32_t, float> occurrences_;
  std::vector<float> adjusted_;
  std::vector<int32_t> order_;
  std::vector<double> weights_;
};

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_SAMPLER_H_
