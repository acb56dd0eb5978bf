// Which engine runs a stage (`--device`), and building a DeviceRwkvModel on one:
//   cpu        the CPU kernels (RwkvModel, every version): not a device engine;
//   cuda[:N]   the GPU engine on CUDA device N (0 by default), x070 only;
//   reference  the device engine's launch sequence on the host with the scalar reference
//              kernels: slow, for checking the device path (slots, snapshots, stages) on a
//              machine without a GPU, and for tiny models.
#ifndef SKEIN_SERVICES_WORKER_MODEL_DEVICE_DEVICE_ENGINE_H_
#define SKEIN_SERVICES_WORKER_MODEL_DEVICE_DEVICE_ENGINE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "kernels/cuda/rwkv7_engine.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/device/device_rwkv_model.h"
#include "services/worker/model/rwkv_config.h"

namespace skein::model {

enum class DeviceKind { kCpu, kCuda, kReference };

struct DeviceSpec {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;  // kCuda: the CUDA device
  // "cpu", "cuda:N", "reference".
  std::string ToString() const;
};

// Parses "cpu", "cuda", "cuda:N" (N a device index) or "reference"; INVALID_ARGUMENT
// otherwise.
absl::StatusOr<DeviceSpec> ParseDevice(std::string_view text);

struct DeviceModelOptions {
  DeviceSpec device;  // kCuda or kReference
  DType run_dtype = DType::kBF16;
  int first_layer = 0;
  int last_layer = -1;  // exclusive; -1 = all layers
  int64_t slots = 64;   // sessions whose state stays in the device's memory
  // Product inputs rounded to run_dtype (cuda::Rwkv7GpuEngineOptions::round_activations): a
  // second cuBLASLt product saved in large steps, at the accuracy of rounded activations. The
  // default keeps them fp32: a bf16 model computes its weights' fp32 run, as the CPU engine.
  bool round_activations = false;
};

// Packs the stage's weights (PackRwkv7Weights) and opens the engine. Errors: those of
// PackRwkv7Weights; INVALID_ARGUMENT for slots < 1 or device kCpu; UNAVAILABLE for a CUDA
// device that this machine lacks or a build without CUDA; INTERNAL for a device failure.
absl::StatusOr<std::unique_ptr<DeviceRwkvModel>> CreateDeviceModel(
    const TensorArchive& archive, const RwkvConfig& config, const DeviceModelOptions& options);

// The GPU engine on CUDA device `device`, owning its context (cuda_engine_loader.cc; in
// builds without CUDA, UNAVAILABLE), with `slots` slots and product inputs rounded to the
// weights' type when `round_activations` (else fp32). `device_name` receives the GPU's name.
absl::StatusOr<std::unique_ptr<cuda::Rwkv7Engine>> OpenCudaEngine(
    int device, const cuda::Rwkv7WeightLayout& layout, const std::vector<uint8_t>& bytes,
    int64_t slots, bool round_activations, std::string* device_name);

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_DEVICE_DEVICE_ENGINE_H_
