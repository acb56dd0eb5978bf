// The GPU engine as a plugin (libskein_cuda_engine.so), loaded by OpenCudaEngine
// (cuda_engine_loader.cc) the first time a stage asks for a CUDA device.
//
// Why a plugin and not a link-time dependency: cuBLASLt carries ~94 KB of thread-local storage.
// Linked into a binary, that storage is reserved in every thread's stack, and the metrics
// server's threads (civetweb, built with a 100 KB stack) then fail to start. Loaded with
// dlopen, the libraries' TLS is allocated on demand instead. It also keeps the worker binary
// runnable on machines without the CUDA runtime libraries.
//
// The entry point is a C symbol over plain C++ types from headers both sides compile
// (rwkv7_engine.h); the engine it returns is deleted through its virtual destructor, whose
// code stays in the plugin (which is never unloaded).
#include "services/worker/model/device/cuda_engine_plugin.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/context.h"
#include "kernels/cuda/rwkv7_engine.h"

namespace skein::cuda {
namespace {

// The engine and the context it runs on, released in that order.
class OwningCudaEngine final : public Rwkv7Engine {
 public:
  OwningCudaEngine(std::unique_ptr<Context> ctx, std::unique_ptr<Rwkv7Engine> engine)
      : ctx_(std::move(ctx)), engine_(std::move(engine)) {}
  ~OwningCudaEngine() override { engine_.reset(); }

  const Rwkv7WeightLayout& layout() const override { return engine_->layout(); }
  int64_t slots() const override { return engine_->slots(); }
  Status Step(const Rwkv7StepIo& io) override { return engine_->Step(io); }
  Status WriteSlot(int32_t slot, const float* state) override {
    return engine_->WriteSlot(slot, state);
  }
  Status ReadSlot(int32_t slot, float* state) override { return engine_->ReadSlot(slot, state); }

 private:
  std::unique_ptr<Context> ctx_;
  std::unique_ptr<Rwkv7Engine> engine_;
};

}  // namespace
}  // namespace skein::cuda

extern "C" int SkeinOpenCudaRwkv7Engine(const SkeinCudaEngineRequest* request,
                                        SkeinCudaEngineResult* result) {
  using namespace skein::cuda;  // NOLINT: one function, many names
  std::string why;
  if (!DeviceAvailable(&why)) {
    result->error = "no CUDA device: " + why;
    return kSkeinCudaEngineUnavailable;
  }
  if (request->device < 0 || request->device >= DeviceCount()) {
    result->error = "CUDA device " + std::to_string(request->device) + " does not exist (" +
                    std::to_string(DeviceCount()) + " found)";
    return kSkeinCudaEngineUnavailable;
  }
  std::unique_ptr<Context> ctx;
  if (Status s = Context::Create(request->device, &ctx); !s.ok()) {
    result->error = "CUDA device " + std::to_string(request->device) + ": " + s.message();
    return kSkeinCudaEngineFailed;
  }
  result->device_name = ctx->device_name();
  Rwkv7GpuEngineOptions options;
  options.slots = request->slots;
  options.round_activations = request->round_activations;
  std::unique_ptr<Rwkv7Engine> engine;
  if (Status s =
          CreateGpuRwkv7Engine(ctx.get(), *request->layout, *request->bytes, options, &engine);
      !s.ok()) {
    result->error = "GPU engine: " + s.message();
    return kSkeinCudaEngineFailed;
  }
  result->engine = new OwningCudaEngine(std::move(ctx), std::move(engine));
  return kSkeinCudaEngineOk;
}
