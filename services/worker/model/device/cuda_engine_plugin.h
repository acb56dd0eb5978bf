// The entry point of the GPU engine plugin (cuda_engine_plugin.cc), shared by the plugin and
// its loader (cuda_engine_loader.cc). Both sides must be built from the same sources.
#ifndef SKEIN_SERVICES_WORKER_MODEL_DEVICE_CUDA_ENGINE_PLUGIN_H_
#define SKEIN_SERVICES_WORKER_MODEL_DEVICE_CUDA_ENGINE_PLUGIN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/rwkv7_engine.h"

// The plugin's file name; the loader looks for it beside the executable (or at
// $SKEIN_CUDA_ENGINE).
inline constexpr char kSkeinCudaEnginePlugin[] = "libskein_cuda_engine.so";
inline constexpr char kSkeinCudaEngineSymbol[] = "SkeinOpenCudaRwkv7Engine";

struct SkeinCudaEngineRequest {
  int device = 0;
  const skein::cuda::Rwkv7WeightLayout* layout = nullptr;
  const std::vector<uint8_t>* bytes = nullptr;  // layout->total_bytes()
  int64_t slots = 1;
  bool round_activations = false;  // Rwkv7GpuEngineOptions::round_activations
};

struct SkeinCudaEngineResult {
  skein::cuda::Rwkv7Engine* engine = nullptr;  // owned by the caller on success
  std::string device_name;
  std::string error;
};

enum SkeinCudaEngineCode : int {
  kSkeinCudaEngineOk = 0,
  kSkeinCudaEngineUnavailable = 1,  // no driver, no device, no such device
  kSkeinCudaEngineFailed = 2,       // the device failed to set up the engine
};

// Opens the GPU engine on request->device with the stage's weights.
extern "C" int SkeinOpenCudaRwkv7Engine(const SkeinCudaEngineRequest* request,
                                        SkeinCudaEngineResult* result);
using SkeinOpenCudaRwkv7EngineFn = int (*)(const SkeinCudaEngineRequest*, SkeinCudaEngineResult*);

// The usable CUDA devices (0 with the reason in *why where there are none).
extern "C" int SkeinCudaDeviceCount(std::string* why);
using SkeinCudaDeviceCountFn = int (*)(std::string*);

// One rank of an NCCL communicator, with a CUDA context of its own on its device and device
// staging buffers, moving rows between host memory and the peer (the stage link's needs;
// services/worker/link/nccl_stage_link.cc). Sends are queued in order on the context's
// stream; a receive waits for its rows. Abort may be called from any thread, also while a
// receive waits (which then ends, with or without an error).
class SkeinNcclEndpoint {
 public:
  virtual ~SkeinNcclEndpoint() = default;
  // Copies `count` elements of `type` from host memory to the device (waiting for the queued
  // transfers that still read the staging buffer) and queues sending them to rank `peer`.
  virtual skein::cuda::Status SendFromHost(const void* host, size_t count, skein::cuda::DType type,
                                           int peer) = 0;
  // Receives `count` elements of `type` from rank `peer` and copies them to host memory;
  // waits for both.
  virtual skein::cuda::Status ReceiveToHost(void* host, size_t count, skein::cuda::DType type,
                                            int peer) = 0;
  // Waits for every queued send.
  virtual skein::cuda::Status Synchronize() = 0;
  // Tears the communicator down at once (ncclCommAbort): transfers in flight end, later ones
  // fail. Idempotent.
  virtual void Abort() = 0;
};

// A fresh communicator id (kNcclUniqueIdBytes bytes), or the error; kSkeinCudaEngine* codes.
extern "C" int SkeinNcclNewUniqueId(std::string* id, std::string* error);
using SkeinNcclNewUniqueIdFn = int (*)(std::string*, std::string*);
// Makes a context on `device` and joins communicator `id` as `rank` of `world`: blocks until
// every rank has joined. *out is owned by the caller on success.
extern "C" int SkeinNcclJoin(int device, const std::string* id, int world, int rank,
                             SkeinNcclEndpoint** out, std::string* error);
using SkeinNcclJoinFn = int (*)(int, const std::string*, int, int, SkeinNcclEndpoint**,
                                std::string*);

#endif  // SKEIN_SERVICES_WORKER_MODEL_DEVICE_CUDA_ENGINE_PLUGIN_H_
