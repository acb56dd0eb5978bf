#include "services/worker/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace skein::model {
namespace {

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

absl::Status Invalid(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("sampler: ", what));
}

}  // namespace

SamplerRandom::SamplerRandom(uint64_t seed) {
  for (uint64_t& s : s_) s = SplitMix64(seed);
}

uint64_t SamplerRandom::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

double SamplerRandom::NextUnit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

absl::Status ValidateSamplerOptions(const SamplerOptions& o, int64_t vocab) {
  if (vocab <= 0) return Invalid(absl::StrCat("vocabulary size ", vocab, " is not positive"));
  if (!std::isfinite(o.temperature) || o.temperature < 0) {
    return Invalid(absl::StrCat("temperature ", o.temperature, " must be finite and >= 0"));
  }
  if (!std::isfinite(o.top_p) || o.top_p <= 0 || o.top_p > 1) {
    return Invalid(absl::StrCat("top_p ", o.top_p, " must be in (0, 1]"));
  }
  if (o.top_k < 0) return Invalid(absl::StrCat("top_k ", o.top_k, " must be >= 0"));
  if (!std::isfinite(o.presence_penalty)) {
    return Invalid(absl::StrCat("presence_penalty ", o.presence_penalty, " must be finite"));
  }
  if (!std::isfinite(o.frequency_penalty)) {
    return Invalid(absl::StrCat("frequency_penalty ", o.frequency_penalty, " must be finite"));
  }
  if (!std::isfinite(o.penalty_decay) || o.penalty_decay < 0 || o.penalty_decay > 1) {
    return Invalid(absl::StrCat("penalty_decay ", o.penalty_decay, " must be in [0, 1]"));
  }
  for (const auto& [token, bias] : o.logit_bias) {
    if (token < 0 || token >= vocab) {
      return Invalid(absl::StrCat("logit_bias token ", token, " is outside [0, ", vocab, ")"));
    }
    if (!std::isfinite(bias)) {
      return Invalid(absl::StrCat("logit_bias for token ", token, " is ", bias,
                                  "; it must be finite (use banned_tokens to ban)"));
    }
  }
  for (int32_t token : o.banned_tokens) {
    if (token < 0 || token >= vocab) {
      return Invalid(absl::StrCat("banned token ", token, " is outside [0, ", vocab, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Sampler> Sampler::Create(const SamplerOptions& options, int64_t vocab) {
  if (absl::Status s = ValidateSamplerOptions(options, vocab); !s.ok()) return s;
  return Sampler(options, vocab);
}

Sampler::Sampler(const SamplerOptions& options, int64_t vocab)
    : options_(options), vocab_(vocab), random_(options.seed) {}

absl::Status Sampler::SetOptions(const SamplerOptions& options) {
  if (absl::Status s = ValidateSamplerOptions(options, vocab_); !s.ok()) return s;
  const uint64_t seed = options_.seed;
  options_ = options;
  options_.seed = seed;
  return absl::OkStatus();
}

void Sampler::Reseed(uint64_t seed) {
  options_.seed = seed;
  random_ = SamplerRandom(seed);
}

namespace {
// Serialized sampler state: "SKSM", version 1, seed, the 4 generator words, the occurrence
// count n, then n (token int32, count float) pairs; little-endian.
constexpr char kSamplerMagic[4] = {'S', 'K', 'S', 'M'};
constexpr uint32_t kSamplerStateVersion = 1;

template <typename T>
void PutRaw(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}
template <typename T>
bool GetRaw(std::string_view& in, T* value) {
  if (in.size() < sizeof(T)) return false;
  std::memcpy(value, in.data(), sizeof(T));
  in.remove_prefix(sizeof(T));
  return true;
}
}  // namespace

std::string Sampler::SerializeState() const {
  std::string out(kSamplerMagic, 4);
  PutRaw(out, kSamplerStateVersion);
  PutRaw(out, options_.seed);
  for (int i = 0; i < 4; ++i) PutRaw(out, random_.words()[i]);
  PutRaw(out, static_cast<uint64_t>(occurrences_.size()));
  for (const auto& [token, count] : occurrences_) {
    PutRaw(out, token);
    PutRaw(out, count);
  }
  return out;
}

absl::Status Sampler::RestoreState(std::string_view in) {
  if (in.size() < 4 || std::memcmp(in.data(), kSamplerMagic, 4) != 0) {
    return Invalid("saved state does not start with the sampler magic");
  }
  in.remove_prefix(4);
  uint32_t version = 0;
  uint64_t seed = 0, words[4], n = 0;
  if (!GetRaw(in, &version) || version != kSamplerStateVersion) {
    return Invalid("saved state has an unknown version");
  }
  bool ok = GetRaw(in, &seed);
  for (uint64_t& w : words) ok = ok && GetRaw(in, &w);
  ok = ok && GetRaw(in, &n);
  if (!ok || n != in.size() / 8 || in.size() % 8 != 0) {
    return Invalid("saved state is truncated or has trailing bytes");
  }
  absl::flat_hash_map<int32_t, float> occurrences;
  for (uint64_t i = 0; i < n; ++i) {
    int32_t token = 0;
    float count = 0;
    GetRaw(in, &token);
    GetRaw(in, &count);
    if (token < 0 || token >= vocab_ || !std::isfinite(count)) {
      return Invalid(absl::StrCat("saved state has a bad occurrence (token ", token, ")"));
    }
    occurrences[token] = count;
  }
  options_.seed = seed;
  random_.set_words(words);
  occurrences_ = std::move(occurrences);
  return absl::OkStatus();
}

void Sampler::Record(int32_t token, float weight) {
  if (options_.penalty_decay != 1.0f) {
    for (auto& [t, count] : occurrences_) count *= options_.penalty_decay;
  }
  occurrences_[token] += weight;
}

absl::StatusOr<int32_t> Sampler::Sample(absl::Span<const float> logits) {
  if (static_cast<int64_t>(logits.size()) != vocab_) {
    return Invalid(absl::StrCat("got ", logits.size(), " logits for a vocabulary of ", vocab_));
  }
  constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
  const bool plain = options_.logit_bias.empty() && options_.banned_tokens.empty() &&
                     (occurrences_.empty() ||
                      (options_.presence_penalty == 0 && options_.frequency_penalty == 0));
  if (options_.temperature <= 0 && plain) {
    // Greedy on the logits as they are: one pass, no copy (the same pick as below).
    int32_t best = -1;
    for (int64_t i = 0; i < vocab_; ++i) {
      const float v = logits[i];
      if (std::isnan(v) || v == std::numeric_limits<float>::infinity()) {
        return Invalid(absl::StrCat("logit ", i, " is ", v));
      }
      if (v != kMinusInf && (best < 0 || v > logits[best])) best = static_cast<int32_t>(i);
    }
    if (best < 0) return absl::FailedPreconditionError("sampler: every token is banned");
    Record(best);
    return best;
  }
  std::vector<float>& z = adjusted_;
  z.assign(logits.begin(), logits.end());
  for (int64_t i = 0; i < vocab_; ++i) {
    if (std::isnan(z[i]) || z[i] == std::numeric_limits<float>::infinity()) {
      return Invalid(absl::StrCat("logit ", i, " is ", z[i]));
    }
  }
  for (const auto& [token, bias] : options_.logit_bias) z[token] += bias;
  for (int32_t token : options_.banned_tokens) z[token] = kMinusInf;
  for (const auto& [token, count] : occurrences_) {
    z[token] -= options_.presence_penalty + count * options_.frequency_penalty;
  }
  int32_t best = -1;
  for (int64_t i = 0; i < vocab_; ++i) {
    if (z[i] != kMinusInf && (best < 0 || z[i] > z[best])) best = static_cast<int32_t>(i);
  }
  if (best < 0) return absl::FailedPreconditionError("sampler: every token is banned");

  int32_t chosen = best;
  if (options_.temperature > 0) {
    const double zmax = z[best];
    const bool nucleus = options_.top_p < 1.0f;
    const bool top_k = options_.top_k > 0 && options_.top_k < vocab_;
    // p ∝ exp(z − zmax) (softmax before temperature, as the nucleus is defined on it).
    std::vector<double>& p = weights_;
    p.resize(vocab_);
    double total = 0;
    for (int64_t i = 0; i < vocab_; ++i) {
      p[i] = std::exp(static_cast<double>(z[i]) - zmax);
      total += p[i];
    }
    std::vector<int32_t>& order = order_;
    int64_t kept = vocab_;
    if (nucleus || top_k) {
      order.resize(vocab_);
      for (int64_t i = 0; i < vocab_; ++i) order[i] = static_cast<int32_t>(i);
      auto before = [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); };
      // Sort only as long a prefix as the cuts need, growing it until it is enough.
      const int64_t need_k = top_k ? options_.top_k : vocab_;
      int64_t sorted = std::min<int64_t>(vocab_, top_k ? need_k + 1 : 64);
      for (;;) {
        std::partial_sort(order.begin() + 0, order.begin() + sorted, order.end(), before);
        int64_t cut = sorted;  // tokens kept by the nucleus, if known within the prefix
        bool known = true;
        if (nucleus) {
          const double target = static_cast<double>(options_.top_p) * total;
          double sum = 0;
          int64_t i = 0;
          for (; i < sorted; ++i) {
            sum += p[order[i]];
            if (sum >= target) break;
          }
          if (i == sorted) {
            known = sorted == vocab_;
            cut = vocab_;  // never reached (rounding): keep everything
          } else {
            const double cutoff = p[order[i]];
            int64_t j = i + 1;
            while (j < sorted && p[order[j]] == cutoff) ++j;
            cut = j;
            known = j < sorted || sorted == vocab_;  // ties may continue past the prefix
          }
        }
        if (known) {
          kept = std::min(cut, need_k);
          break;
        }
        sorted = std::min<int64_t>(vocab_, sorted * 4);
      }
    }
    // Temperature on the kept tokens: p^(1/T) = exp((z − zmax)/T) up to a constant.
    const double inv_t = 1.0 / options_.temperature;
    auto token_at = [&](int64_t i) -> int32_t {
      return kept < vocab_ || nucleus || top_k ? order[i] : static_cast<int32_t>(i);
    };
    double mass = 0;
    for (int64_t i = 0; i < kept; ++i) {
      const int32_t t = token_at(i);
      p[t] = std::exp((static_cast<double>(z[t]) - zmax) * inv_t);
      mass += p[t];
    }
    const double u = random_.NextUnit() * mass;
    double cumulative = 0;
    chosen = token_at(0);
    for (int64_t i = 0; i < kept; ++i) {
      const int32_t t = token_at(i);
      if (p[t] == 0) continue;
      chosen = t;
      cumulative += p[t];
      if (u < cumulative) break;
    }
  }
  Record(chosen);
  return chosen;
}

}  // namespace skein::model
