// OpenCudaEngine and gpu_plugin.h: loads the GPU plugin (cuda_engine_plugin.cc) once and calls
// its entry points. Builds without CUDA have no plugin to find, and say so.
#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "services/worker/model/device/cuda_engine_plugin.h"
#include "services/worker/model/device/device_engine.h"
#include "services/worker/model/device/gpu_plugin.h"

namespace skein::model {
namespace {

std::string ExecutableDir() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

// The plugin's entry points (the NCCL ones null in a plugin built without NCCL).
struct Plugin {
  SkeinOpenCudaRwkv7EngineFn open_engine = nullptr;
  SkeinCudaDeviceCountFn device_count = nullptr;
  SkeinNcclNewUniqueIdFn nccl_new_id = nullptr;
  SkeinNcclJoinFn nccl_join = nullptr;
};

// The plugin, or an error saying where it was looked for. Loaded once; never unloaded (engines
// it made live in its code).
absl::StatusOr<Plugin> LoadPlugin() {
  static absl::Mutex mutex(absl::kConstInit);
  static Plugin* loaded ABSL_GUARDED_BY(mutex) = nullptr;
  absl::MutexLock lock(&mutex);
  if (loaded != nullptr) return *loaded;
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
  Plugin p;
  p.open_engine =
      reinterpret_cast<SkeinOpenCudaRwkv7EngineFn>(dlsym(handle, kSkeinCudaEngineSymbol));
  p.device_count = reinterpret_cast<SkeinCudaDeviceCountFn>(dlsym(handle, "SkeinCudaDeviceCount"));
  p.nccl_new_id = reinterpret_cast<SkeinNcclNewUniqueIdFn>(dlsym(handle, "SkeinNcclNewUniqueId"));
  p.nccl_join = reinterpret_cast<SkeinNcclJoinFn>(dlsym(handle, "SkeinNcclJoin"));
  if (p.open_engine == nullptr || p.device_count == nullptr) {
    return absl::UnavailableError(
        absl::StrCat(path, " is not the GPU engine plugin (no ", kSkeinCudaEngineSymbol, ")"));
  }
  loaded = new Plugin(p);
  return p;
}

absl::Status FromCode(int code, const std::string& error) {
  switch (code) {
    case kSkeinCudaEngineOk:
      return absl::OkStatus();
    case kSkeinCudaEngineUnavailable:
      return absl::UnavailableError(error);
    default:
      return absl::InternalError(error);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<cuda::Rwkv7Engine>> OpenCudaEngine(
    int device, const cuda::Rwkv7WeightLayout& layout, const std::vector<uint8_t>& bytes,
    int64_t slots, bool round_activations, std::string* device_name) {
  absl::StatusOr<Plugin> plugin = LoadPlugin();
  if (!plugin.ok()) return plugin.status();
  SkeinCudaEngineRequest request;
  request.device = device;
  request.layout = &layout;
  request.bytes = &bytes;
  request.slots = slots;
  request.round_activations = round_activations;
  SkeinCudaEngineResult result;
  if (absl::Status s = FromCode(plugin->open_engine(&request, &result), result.error); !s.ok()) {
    return s;
  }
  *device_name = result.device_name;
  return std::unique_ptr<cuda::Rwkv7Engine>(result.engine);
}

absl::StatusOr<int> GpuDeviceCount() {
  absl::StatusOr<Plugin> plugin = LoadPlugin();
  if (!plugin.ok()) return plugin.status();
  std::string why;
  const int n = plugin->device_count(&why);
  if (n <= 0) return absl::UnavailableError(why.empty() ? "no CUDA device" : why);
  return n;
}

absl::Status NcclAvailable() {
  absl::StatusOr<Plugin> plugin = LoadPlugin();
  if (!plugin.ok()) return plugin.status();
  if (plugin->nccl_new_id == nullptr || plugin->nccl_join == nullptr) {
    return absl::UnavailableError(
        "the GPU plugin was built without NCCL (no nccl.h with the CUDA toolkit at build time)");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> NewNcclUniqueId() {
  if (absl::Status s = NcclAvailable(); !s.ok()) return s;
  std::string id, error;
  if (absl::Status s = FromCode(LoadPlugin()->nccl_new_id(&id, &error), error); !s.ok()) return s;
  return id;
}

absl::StatusOr<std::unique_ptr<SkeinNcclEndpoint>> JoinNccl(int device, const std::string& id,
                                                            int world, int rank) {
  if (absl::Status s = NcclAvailable(); !s.ok()) return s;
  SkeinNcclEndpoint* endpoint = nullptr;
  std::string error;
  const int code = LoadPlugin()->nccl_join(device, &id, world, rank, &endpoint, &error);
  if (absl::Status s = FromCode(code, error); !s.ok()) return s;
  return std::unique_ptr<SkeinNcclEndpoint>(endpoint);
}

}  // namespace skein::model
