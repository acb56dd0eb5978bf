#include "services/worker/engine/sampling_params.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"

namespace skein::engine {

absl::StatusOr<model::SamplerOptions> ToSamplerOptions(const v1::SamplingParams& params,
                                                       int64_t vocab) {
  model::SamplerOptions o;
  if (params.has_temperature()) o.temperature = params.temperature();
  if (params.has_top_p()) o.top_p = params.top_p();
  if (params.top_k() > static_cast<uint32_t>(INT32_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampler: top_k ", params.top_k(), " is too large"));
  }
  o.top_k = static_cast<int32_t>(params.top_k());
  o.presence_penalty = params.presence_penalty();
  o.frequency_penalty = params.frequency_penalty();
  if (params.has_penalty_decay()) {
    o.penalty_decay = params.penalty_decay();
    if (!(o.penalty_decay > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sampler: penalty_decay ", o.penalty_decay, " must be in (0, 1]"));
    }
  }
  for (const auto& [token, bias] : params.logit_bias()) {
    if (token >= static_cast<uint64_t>(vocab)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sampler: logit_bias token ", token, " is outside [0, ", vocab, ")"));
    }
    o.logit_bias.emplace_back(static_cast<int32_t>(token), bias);
  }
  // A fixed order, whatever the map's iteration order (bias is added, so order only matters
  // for reproducible error messages).
  std::sort(o.logit_bias.begin(), o.logit_bias.end());
  std::vector<bool> banned(vocab > 0 ? vocab : 0, false);
  int64_t distinct = 0;
  for (uint32_t token : params.banned_tokens()) {
    if (token >= static_cast<uint64_t>(vocab)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sampler: banned token ", token, " is outside [0, ", vocab, ")"));
    }
    o.banned_tokens.push_back(static_cast<int32_t>(token));
    if (!banned[token]) {
      banned[token] = true;
      ++distinct;
    }
  }
  if (vocab > 0 && distinct == vocab) {
    return absl::InvalidArgumentError("sampler: every token of the vocabulary is banned");
  }
  if (params.has_seed()) o.seed = params.seed();
  if (absl::Status s = model::ValidateSamplerOptions(o, vocab); !s.ok()) return s;
  return o;
}

}  // namespace skein::engine
