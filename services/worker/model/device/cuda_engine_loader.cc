// OpenCudaEngine: loads the GPU engine plugin (cuda_engine_plugin.cc) once and asks it for an
// engine. Builds without CUDA have no plugin to find, and say so.
#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "services/worker/model/device/cuda_engine_plugin.h"
#include "services/worker/model/device/device_engine.h"

namespace skein::model {
namespace {

std::string ExecutableDir() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return ".";
  std::string exe(path, static_cast<size_t>(n));
  const size_t slash = exe.rfind('/');
  return slash == std::string::npos ? "." : exe.substr(0, slash);
}

// The plugin's entry point, or an error saying where it was looked for. Loaded once; never
// unloaded (engines it made live in its code).
absl::StatusOr<SkeinOpenCudaRwkv7EngineFn> LoadPlugin() {
  static absl::Mutex mutex(absl::kConstInit);
  static SkeinOpenCudaRwkv7EngineFn entry ABSL_GUARDED_BY(mutex) = nullptr;
  absl::MutexLock lock(&mutex);
  if (entry != nullptr) return entry;
  const char* configured = std::getenv("SKEIN_CUDA_ENGINE");
  const std::string path = configured != nullptr && *configured != '\0'
                               ? std::string(configured)
                               : ExecutableDir() + "/" + kSkeinCudaEnginePlugin;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    return absl::UnavailableError(absl::StrCat(
        "the GPU engine plugin cannot be loaded (", why != nullptr ? why : path,
        "); it is built only where a CUDA toolkit is, and must sit beside the executable or "
        "at $SKEIN_CUDA_ENGINE"));
  }
  void* symbol = dlsym(handle, kSkeinCudaEngineSymbol);
  if (symbol == nullptr) {
    return absl::UnavailableError(
        absl::StrCat(path, " is not the GPU engine plugin (no ", kSkeinCudaEngineSymbol, ")"));
  }
  entry = reinterpret_cast<SkeinOpenCudaRwkv7EngineFn>(symbol);
  return entry;
}

}  // namespace

absl::StatusOr<std::unique_ptr<cuda::Rwkv7Engine>> OpenCudaEngine(
    int device, const cuda::Rwkv7WeightLayout& layout, const std::vector<uint8_t>& bytes,
    int64_t slots, bool round_activations, std::string* device_name) {
  absl::StatusOr<SkeinOpenCudaRwkv7EngineFn> open = LoadPlugin();
  if (!open.ok()) return open.status();
  SkeinCudaEngineRequest request;
  request.device = device;
  request.layout = &layout;
  request.bytes = &bytes;
  request.slots = slots;
  request.round_activations = round_activations;
  SkeinCudaEngineResult result;
  switch ((*open)(&request, &result)) {
    case kSkeinCudaEngineOk:
      *device_name = result.device_name;
      return std::unique_ptr<cuda::Rwkv7Engine>(result.engine);
    case kSkeinCudaEngineUnavailable:
      return absl::UnavailableError(result.error);
    default:
      return absl::InternalError(result.error);
  }
}

}  // namespace skein::model
