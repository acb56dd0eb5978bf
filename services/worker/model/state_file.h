// Initial-state files: a recurrent state tuned for a task (RWKV-PEFT's state tuning), loaded
// as the starting state of a request or session instead of zeros.
//
// A state file is a checkpoint (.pth or .safetensors) holding, for every layer l of the
// model, `blocks.<l>.att.time_state` of shape [H, N, N] (any stored float dtype) and nothing
// else. Its orientation is [head][value i][key j] (spec §3: RWKV-LM's state kernels index
// s[h·N·N + i·N + j] with i the value channel, and ChatRWKV transposes on load only because
// its own torch path keeps [key][value]); that is the layout of RwkvState::att_kv, so the
// values are copied without a transpose. The token-shift parts of the state start at zero,
// as they do for a fresh state.
//
// Pure functions over an archive; thread-safe.
#ifndef SKEIN_SERVICES_WORKER_MODEL_STATE_FILE_H_
#define SKEIN_SERVICES_WORKER_MODEL_STATE_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/rwkv_config.h"
#include "services/worker/model/state.h"

namespace skein::model {

// What a state file holds, read from its tensor names and shapes alone.
struct StateFileInfo {
  int64_t layers = 0;     // 1 + the largest block index
  int64_t heads = 0;      // H
  int64_t head_size = 0;  // N
  std::string dtype;      // "fp32", "bf16", "fp16" or "mixed"
  // XXH3-64 of every tensor's name, shape and value (as fp32): identifies the state, whatever
  // container or dtype it was saved in.
  uint64_t digest = 0;
};

// Reads and checks a state file on its own. INVALID_ARGUMENT (naming the file and tensor) for
// a file that is not a state file: a tensor other than blocks.<l>.att.time_state, a rank or
// shape that is not [H, N, N] or differs between layers, missing layers, no tensors.
absl::StatusOr<StateFileInfo> InspectStateFile(const TensorArchive& archive);

// The starting state for layers [shape.first_layer, shape.last_layer) of a model described by
// `config`, at position 0. FAILED_PRECONDITION when the file belongs to another model: its
// layer count, heads or head size differ from the model's, or the model is RWKV-4 (whose
// state has no matrix to tune); otherwise the errors of InspectStateFile. `info`, when given,
// receives what InspectStateFile says (the file is read once either way).
absl::StatusOr<RwkvState> LoadStateFile(const TensorArchive& archive, const RwkvConfig& config,
                                        const StateShape& shape, StateFileInfo* info = nullptr);

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_STATE_FILE_H_
