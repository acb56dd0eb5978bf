#include "services/worker/engine/stage_engine.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/worker/model/state_file.h"

namespace skein::engine {

absl::StatusOr<model::DType> ParseRunDType(const std::string& text) {
  for (model::DType d :
       {model::DType::kF32, model::DType::kBF16, model::DType::kF16, model::DType::kI8}) {
    if (text == model::DTypeName(d)) return d;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("dtype must be bf16, fp16, fp32 or int8, not '", text, "'"));
}

absl::Status ResolveLayerRange(const std::string& layers, int stage, int stages, int num_layers,
                               int* first, int* last) {
  if (!layers.empty()) {
    std::vector<std::string> parts = absl::StrSplit(layers, ':');
    int a = 0, b = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &a) || !absl::SimpleAtoi(parts[1], &b)) {
      return absl::InvalidArgumentError(
          absl::StrCat("layers '", layers, "' is not of the form A:B (e.g. 0:12)"));
    }
    if (a < 0 || b <= a || b > num_layers) {
      return absl::InvalidArgumentError(absl::StrCat("layers ", a, ":", b,
                                                     " is not a non-empty range within the "
                                                     "model's ",
                                                     num_layers, " layers"));
    }
    *first = a;
    *last = b;
    return absl::OkStatus();
  }
  if (stages < 1 || stage < 0 || stage >= stages) {
    return absl::InvalidArgumentError(
        absl::StrCat("stage ", stage, " of ", stages, " is not a stage of the pipeline"));
  }
  if (stages > num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(stages, " stages cannot split a model of ",
                                                   num_layers,
                                                   " layers (one layer at least each)"));
  }
  const int base = num_layers / stages, extra = num_layers % stages;
  *first = stage * base + std::min(stage, extra);
  *last = *first + base + (stage < extra ? 1 : 0);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<StageEngine>> StageEngine::Load(const std::string& path,
                                                               const StageEngineOptions& options) {
  absl::StatusOr<std::unique_ptr<model::TensorArchive>> archive = model::OpenCheckpoint(path);
  if (!archive.ok()) return archive.status();
  return FromArchive(std::shared_ptr<const model::TensorArchive>(*std::move(archive)), options);
}

absl::StatusOr<std::unique_ptr<StageEngine>> StageEngine::FromArchive(
    std::shared_ptr<const model::TensorArchive> archive, const StageEngineOptions& options) {
  if (options.threads < 0) return absl::InvalidArgumentError("threads must be >= 0");
  std::unique_ptr<StageEngine> e(new StageEngine());
  e->options_ = options;
  e->pool_ = std::make_unique<kernels::ThreadPool>(options.threads);
  model::RwkvLoadOptions load;
  load.run_dtype = options.run_dtype;
  load.first_layer = options.first_layer;
  load.last_layer = options.last_layer;
  load.pool = e->pool_.get();
  // A device stage keeps the CPU weights only for what the worker reports (config,
  // fingerprint, state shape), not for products: no packed panels.
  const bool on_device = options.device.kind != model::DeviceKind::kCpu;
  if (on_device) {
    load.bf16_panels = false;
    load.int8_panels = false;
  }
  absl::StatusOr<std::unique_ptr<model::RwkvWeights>> weights =
      model::RwkvWeights::Load(archive, load);
  if (!weights.ok()) return weights.status();
  e->archive_ = std::move(archive);
  e->weights_ = *std::move(weights);
  if (on_device) {
    model::DeviceModelOptions device;
    device.device = options.device;
    device.run_dtype = options.run_dtype;
    device.first_layer = e->weights_->first_layer();
    device.last_layer = e->weights_->last_layer();
    device.slots = options.device_slots;
    // --bf16-activations on a device: its product inputs rounded to the run dtype.
    device.round_activations = options.bf16_activations;
    absl::StatusOr<std::unique_ptr<model::DeviceRwkvModel>> m =
        model::CreateDeviceModel(*e->archive_, e->config(), device);
    if (!m.ok()) return m.status();
    e->model_ = *std::move(m);
  } else {
    e->model_ = std::make_unique<model::RwkvModel>(
        e->weights_, e->pool_.get(),
        model::RwkvModelOptions{.bf16_activations = options.bf16_activations,
                                .int8_activations = options.int8_activations});
  }
  for (const auto& [name, path] : options.initial_states) {
    const bool valid_name =
        !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char ch) {
          return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' ||
                 ch == '-';
        });
    if (!valid_name) {
      return absl::InvalidArgumentError(absl::StrCat(
          "initial state name '", name, "' is not 1..64 characters of [A-Za-z0-9._-]"));
    }
    if (e->FindInitialState(name) != nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("initial state '", name, "' is named twice"));
    }
    absl::StatusOr<std::unique_ptr<model::TensorArchive>> file = model::OpenCheckpoint(path);
    if (!file.ok()) return file.status();
    model::StateFileInfo info;
    absl::StatusOr<model::RwkvState> state =
        model::LoadStateFile(**file, e->config(), e->weights_->state_shape(), &info);
    if (!state.ok()) return state.status();
    e->initial_states_.push_back({name, info.digest, *std::move(state)});
  }
  return e;
}

const NamedState* StageEngine::FindInitialState(std::string_view name) const {
  for (const NamedState& s : initial_states_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

}  // namespace skein::engine
