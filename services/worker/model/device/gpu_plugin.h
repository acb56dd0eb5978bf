// What the worker uses of CUDA and NCCL outside the engine, through the GPU plugin
// (cuda_engine_plugin.h: loaded on first use, never linked in): the device count and the NCCL
// stage link's device side. Every call fails with UNAVAILABLE, saying why, where the plugin is
// missing (a build without CUDA) or was built without NCCL.
#ifndef SKEIN_SERVICES_WORKER_MODEL_DEVICE_GPU_PLUGIN_H_
#define SKEIN_SERVICES_WORKER_MODEL_DEVICE_GPU_PLUGIN_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/worker/model/device/cuda_engine_plugin.h"

namespace skein::model {

// Usable CUDA devices: UNAVAILABLE with the reason where there are none.
absl::StatusOr<int> GpuDeviceCount();

// Whether the plugin carries the NCCL link (UNAVAILABLE with the reason if not).
absl::Status NcclAvailable();

// A fresh NCCL communicator id (kNcclUniqueIdBytes bytes). UNAVAILABLE (no plugin or NCCL),
// INTERNAL (NCCL failed).
absl::StatusOr<std::string> NewNcclUniqueId();

// Makes a context on CUDA `device` and joins communicator `id` as `rank` of `world`; blocks
// until every rank has joined (NCCL's initialisation has no time-out). UNAVAILABLE (no plugin,
// NCCL or device), INTERNAL (the device or NCCL failed).
absl::StatusOr<std::unique_ptr<SkeinNcclEndpoint>> JoinNccl(int device, const std::string& id,
                                                            int world, int rank);

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_DEVICE_GPU_PLUGIN_H_
