// OpenCudaEngine in builds without a CUDA toolkit.
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "services/worker/model/device/device_engine.h"

namespace skein::model {

absl::StatusOr<std::unique_ptr<cuda::Rwkv7Engine>> OpenCudaEngine(int device,
                                                                  const cuda::Rwkv7WeightLayout&,
                                                                  const std::vector<uint8_t>&,
                                                                  int64_t, std::string*) {
  return absl::UnavailableError(
      absl::StrCat("this build has no CUDA support (no toolkit at build time): cuda:", device));
}

}  // namespace skein::model
