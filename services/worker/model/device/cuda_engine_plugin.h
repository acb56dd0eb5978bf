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

#endif  // SKEIN_SERVICES_WORKER_MODEL_DEVICE_CUDA_ENGINE_PLUGIN_H_
