// skein.v1.SamplingParams (common.proto) to the sampler's options, with the proto's
// defaults: temperature 0 (greedy), top_p 1, penalty_decay 0.996 (the library's default).
#ifndef SKEIN_SERVICES_WORKER_ENGINE_SAMPLING_PARAMS_H_
#define SKEIN_SERVICES_WORKER_ENGINE_SAMPLING_PARAMS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "services/worker/model/sampler.h"
#include "skein/v1/common.pb.h"

namespace skein::engine {

// Most alternatives a step reports per sampled token (TokenLogprobs.top).
inline constexpr uint32_t kMaxTopLogprobs = 20;

// INVALID_ARGUMENT naming the bad field (see ValidateSamplerOptions), or when every token of
// the vocabulary is banned. The seed is copied when set (0 otherwise).
absl::StatusOr<model::SamplerOptions> ToSamplerOptions(const v1::SamplingParams& params,
                                                       int64_t vocab);

}  // namespace skein::engine

#endif  // SKEIN_SERVICES_WORKER_ENGINE_SAMPLING_PARAMS_H_
