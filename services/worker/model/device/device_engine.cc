#include "services/worker/model/device/device_engine.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/worker/model/device/rwkv7_device_weights.h"

namespace skein::model {

std::string DeviceSpec::ToString() const {
  switch (kind) {
    case DeviceKind::kCpu:
      return "cpu";
    case DeviceKind::kCuda:
      return absl::StrCat("cuda:", index);
    case DeviceKind::kReference:
      return "reference";
  }
  return "?";
}

absl::StatusOr<DeviceSpec> ParseDevice(std::string_view text) {
  DeviceSpec spec;
  if (text == "cpu") return spec;
  if (text == "reference") {
    spec.kind = DeviceKind::kReference;
    return spec;
  }
  if (text == "cuda") {
    spec.kind = DeviceKind::kCuda;
    return spec;
  }
  if (text.substr(0, 5) == "cuda:") {
    int index = -1;
    if (absl::SimpleAtoi(std::string(text.substr(5)), &index) && index >= 0) {
      spec.kind = DeviceKind::kCuda;
      spec.index = index;
      return spec;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("device '", std::string(text), "' is not cpu, cuda, cuda:N or reference"));
}

absl::StatusOr<std::unique_ptr<DeviceRwkvModel>> CreateDeviceModel(
    const TensorArchive& archive, const RwkvConfig& config, const DeviceModelOptions& options) {
  if (options.device.kind == DeviceKind::kCpu) {
    return absl::InvalidArgumentError("the cpu device runs the CPU engine, not a device model");
  }
  if (options.slots < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("device state slots must be at least 1, not ", options.slots));
  }
  const int last = options.last_layer < 0 ? static_cast<int>(config.n_layer) : options.last_layer;
  absl::StatusOr<PackedRwkv7Weights> packed =
      PackRwkv7Weights(archive, config, options.run_dtype, options.first_layer, last);
  if (!packed.ok()) return packed.status();
  std::unique_ptr<cuda::Rwkv7Engine> engine;
  if (options.device.kind == DeviceKind::kReference) {
    cuda::Rwkv7HostEngineOptions host;
    host.slots = options.slots;
    host.round_activations = options.round_activations;
    const cuda::Status s =
        cuda::CreateHostRwkv7Engine(packed->layout, std::move(packed->bytes), host, &engine);
    if (!s.ok()) return absl::InternalError(absl::StrCat("reference engine: ", s.message()));
  } else {
    std::string name;
    absl::StatusOr<std::unique_ptr<cuda::Rwkv7Engine>> gpu =
        OpenCudaEngine(options.device.index, packed->layout, packed->bytes, options.slots,
                       options.round_activations, &name);
    if (!gpu.ok()) return gpu.status();
    engine = *std::move(gpu);
  }
  StateShape shape;
  shape.first_layer = options.first_layer;
  shape.last_layer = last;
  shape.embd = config.n_embd;
  shape.heads = config.n_head;
  shape.head_size = config.head_size;
  return std::make_unique<DeviceRwkvModel>(config, shape, std::move(engine));
}

}  // namespace skein::model
