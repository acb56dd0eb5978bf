// An x070 checkpoint's tensors for one stage, laid out as the device engine stores them
// (kernels/cuda/rwkv7_weights.h): one buffer, large matrices and LoRA factors in the run dtype,
// vectors in fp32, the LoRAs transposed to [out][in] once here. The bytes are what
// cuda::CreateGpuRwkv7Engine copies to the GPU, or what the host engine reads.
#ifndef SKEIN_SERVICES_WORKER_MODEL_DEVICE_RWKV7_DEVICE_WEIGHTS_H_
#define SKEIN_SERVICES_WORKER_MODEL_DEVICE_RWKV7_DEVICE_WEIGHTS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cuda/rwkv7_weights.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/rwkv_config.h"

namespace skein::model {

struct PackedRwkv7Weights {
  cuda::Rwkv7WeightLayout layout;
  std::vector<uint8_t> bytes;  // layout.total_bytes()
};

// The engine's shape for a checkpoint's hyper-parameters.
cuda::Rwkv7Shape DeviceShape(const RwkvConfig& config);

// Packs layers [first_layer, last_layer) of `archive` (whose LoadRwkvConfig is `config`), with
// the embedding and ln0 when first_layer == 0 and ln_out and the head when last_layer == L.
// Every stored dtype is read (int8 matrices are widened as scale·q), then rounded once to
// `run_dtype`. Layer 0 has no value-residual LoRA in a checkpoint; its slots are zeros (the
// engine never reads them there). Errors: UNIMPLEMENTED for what the device engine does not
// run (a version other than x070, a head size other than 64, run dtype int8);
// INVALID_ARGUMENT for a bad layer range or a tensor of an unexpected size.
absl::StatusOr<PackedRwkv7Weights> PackRwkv7Weights(const TensorArchive& archive,
                                                    const RwkvConfig& config, DType run_dtype,
                                                    int first_layer, int last_layer);

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_DEVICE_RWKV7_DEVICE_WEIGHTS_H_
