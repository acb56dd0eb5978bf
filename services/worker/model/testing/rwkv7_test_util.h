// Shared helpers for the RWKV-7 engine tests: reading the official goldens (spec §11) and
// loading checkpoints.
#ifndef SKEIN_SERVICES_WORKER_MODEL_TESTING_RWKV7_TEST_UTIL_H_
#define SKEIN_SERVICES_WORKER_MODEL_TESTING_RWKV7_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "services/worker/model/rwkv_weights.h"
#include "services/worker/model/state.h"

namespace skein::model::testing {

// Reference outputs for one checkpoint and token sequence.
struct Golden {
  std::vector<int32_t> tokens;
  int split = -1;                          // golden/rwkv7 files only
  std::vector<std::vector<float>> logits;  // after each token, one at a time from zero state
  struct Layer {
    std::vector<float> att_x_prev, att_kv, ffn_x_prev;  // att_kv: RWKV-4's aa, bb, pp
  };
  std::vector<Layer> final_state;
};

// golden/rwkv7/NAME.golden.json.
absl::StatusOr<Golden> ReadRwkv7Golden(const std::string& json_path);
// One model of golden/multiversion/expected.json ("tiny-v7.pth", …).
absl::StatusOr<Golden> ReadMultiversionGolden(const std::string& json_path,
                                              const std::string& model);

// golden/rwkv7/NAME.greedy.json: the prompt and the reference's greedy continuation.
absl::Status ReadGreedyGolden(const std::string& json_path, std::vector<int32_t>* prompt,
                              std::vector<int32_t>* greedy);

// `int8_panels`, `bf16_panels`: the RwkvLoadOptions of those names (packed where
// accelerated).
absl::StatusOr<std::shared_ptr<const RwkvWeights>> LoadWeights(
    const std::string& path, DType dtype = DType::kF32, int first_layer = 0, int last_layer = -1,
    bool int8_panels = true, bool bf16_panels = true);

float StdDev(absl::Span<const float> v);
float MaxAbsDiff(absl::Span<const float> a, absl::Span<const float> b);

// The largest |state − golden| over all layers and slots (the golden covers all L layers;
// the state may cover a subrange).
float MaxStateDiff(const RwkvState& state, const Golden& golden);

}  // namespace skein::model::testing

#endif  // SKEIN_SERVICES_WORKER_MODEL_TESTING_RWKV7_TEST_UTIL_H_
