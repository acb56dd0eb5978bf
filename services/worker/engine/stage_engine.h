// One pipeline stage's compute: a checkpoint's layer range loaded into an RwkvModel with its
// own thread pool, or into a device engine (--device cuda:N). The worker service, the `skein` CLI
// (logits, generate, bench) and the benchmarks all load models through this class, so they run the
// same engine.
//
// Stage 0 (first_layer == 0) also holds the embedding; the last stage (last_layer == L) also
// ln_out and the head. Immutable after Load apart from the model's own serialized Step.
#ifndef SKEIN_SERVICES_WORKER_ENGINE_STAGE_ENGINE_H_
#define SKEIN_SERVICES_WORKER_ENGINE_STAGE_ENGINE_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cpu/thread_pool.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/device/device_engine.h"
#include "services/worker/model/rwkv_model.h"
#include "services/worker/model/rwkv_weights.h"

namespace skein::engine {

struct StageEngineOptions {
  model::DType run_dtype = model::DType::kF32;
  int first_layer = 0;
  int last_layer = -1;  // exclusive; -1 = to the end
  int threads = 0;      // 0 = every core
  // The CPU engine: activations rounded to bf16 in large products (model::RwkvModelOptions).
  // A device stage: product inputs rounded to the run dtype
  // (model::DeviceModelOptions::round_activations). Off: exact (fp32 activations) on both.
  bool bf16_activations = false;
  bool int8_activations = false;  // model::RwkvModelOptions
  // Where the stage computes (model/device/device_engine.h): the CPU engine, or a device
  // engine (cuda:N, reference) for x070 models, which keeps up to `device_slots` sessions'
  // states in the device's memory.
  model::DeviceSpec device;
  int64_t device_slots = 64;
  // Initial-state files to load beside the model, as (name, path) pairs (see
  // model/state_file.h): a request naming one starts from it instead of the zero state.
  std::vector<std::pair<std::string, std::string>> initial_states;
};

// A tuned starting state, sliced to this stage's layers.
struct NamedState {
  std::string name;
  uint64_t digest = 0;  // StateFileInfo::digest: the same on every stage
  model::RwkvState state;
};

// "fp32", "bf16", "fp16" or "int8" (the names model::DTypeName gives); INVALID_ARGUMENT
// otherwise. int8 quantises the large matrices per output row at load (kernels.h).
absl::StatusOr<model::DType> ParseRunDType(const std::string& text);

// Resolves a stage's layer range from "A:B" (`layers`, may be empty) or from a stage index
// and count that split `num_layers` as evenly as possible (earlier stages take the extra
// layers). INVALID_ARGUMENT for a malformed or out-of-range request.
absl::Status ResolveLayerRange(const std::string& layers, int stage, int stages, int num_layers,
                               int* first, int* last);

class StageEngine {
 public:
  // Opens the checkpoint (.pth or .safetensors) and loads the layer range, then the initial
  // states. Errors: NOT_FOUND or INVALID_ARGUMENT for a file that is missing or not a
  // checkpoint of a supported version, those of model::CreateDeviceModel for a device stage,
  // INVALID_ARGUMENT for a bad layer range or thread count, an initial state's name that is empty,
  // repeated or not of [A-Za-z0-9._-] (64 at most), or a file that is not a state file;
  // FAILED_PRECONDITION for a state of another model.
  static absl::StatusOr<std::unique_ptr<StageEngine>> Load(const std::string& path,
                                                           const StageEngineOptions& options);
  // The same over an archive already open.
  static absl::StatusOr<std::unique_ptr<StageEngine>> FromArchive(
      std::shared_ptr<const model::TensorArchive> archive, const StageEngineOptions& options);

  const model::RwkvWeights& weights() const { return *weights_; }
  const std::shared_ptr<const model::RwkvWeights>& shared_weights() const { return weights_; }
  const model::RwkvConfig& config() const { return weights_->config(); }
  model::StageModel& model() { return *model_; }
  // The device model when the stage runs on a device engine, else null.
  model::DeviceRwkvModel* device_model() {
    return dynamic_cast<model::DeviceRwkvModel*>(model_.get());
  }
  kernels::ThreadPool* pool() { return pool_.get(); }
  const StageEngineOptions& options() const { return options_; }
  int first_layer() const { return weights_->first_layer(); }
  int last_layer() const { return weights_->last_layer(); }
  bool is_first() const { return weights_->has_embedding(); }
  bool is_last() const { return weights_->has_head(); }
  const std::vector<NamedState>& initial_states() const { return initial_states_; }
  // Null if no initial state has that name.
  const NamedState* FindInitialState(std::string_view name) const;

 private:
  StageEngine() = default;

  StageEngineOptions options_;
  std::shared_ptr<const model::TensorArchive> archive_;
  std::unique_ptr<kernels::ThreadPool> pool_;
  std::shared_ptr<const model::RwkvWeights> weights_;
  std::unique_ptr<model::StageModel> model_;
  std::vector<NamedState> initial_states_;
};

}  // namespace skein::engine

#endif  // SKEIN_SERVICES_WORKER_ENGINE_STAGE_ENGINE_H_
