// OpenCudaEngine in builds with CUDA: a Context on the device and the GPU engine over it.
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/context.h"
#include "services/worker/model/device/device_engine.h"

namespace skein::model {
namespace {

// The engine and the context it runs on, released in that order.
class OwningCudaEngine final : public cuda::Rwkv7Engine {
 public:
  OwningCudaEngine(std::unique_ptr<cuda::Context> ctx, std::unique_ptr<cuda::Rwkv7Engine> engine)
      : ctx_(std::move(ctx)), engine_(std::move(engine)) {}
  ~OwningCudaEngine() override {
    ctx_->MakeCurrent();  // frees go to the current device too
    engine_.reset();
  }

  const cuda::Rwkv7WeightLayout& layout() const override { return engine_->layout(); }
  int64_t slots() const override { return engine_->slots(); }
  // The calls come from the server's threads, whose current CUDA device is the first one
  // unless set: on a stage of another device the launches would go astray.
  cuda::Status Step(const cuda::Rwkv7StepIo& io) override {
    SKEIN_CUDA_RETURN_IF_ERROR(ctx_->MakeCurrent());
    return engine_->Step(io);
  }
  cuda::Status WriteSlot(int32_t slot, const float* state) override {
    SKEIN_CUDA_RETURN_IF_ERROR(ctx_->MakeCurrent());
    return engine_->WriteSlot(slot, state);
  }
  cuda::Status ReadSlot(int32_t slot, float* state) override {
    SKEIN_CUDA_RETURN_IF_ERROR(ctx_->MakeCurrent());
    return engine_->ReadSlot(slot, state);
  }

 private:
  std::unique_ptr<cuda::Context> ctx_;
  std::unique_ptr<cuda::Rwkv7Engine> engine_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<cuda::Rwkv7Engine>> OpenCudaEngine(
    int device, const cuda::Rwkv7WeightLayout& layout, const std::vector<uint8_t>& bytes,
    int64_t slots, std::string* device_name) {
  std::string why;
  if (!cuda::DeviceAvailable(&why)) {
    return absl::UnavailableError(absl::StrCat("no CUDA device: ", why));
  }
  if (device >= cuda::DeviceCount()) {
    return absl::UnavailableError(
        absl::StrCat("CUDA device ", device, " does not exist (", cuda::DeviceCount(), " found)"));
  }
  std::unique_ptr<cuda::Context> ctx;
  if (cuda::Status s = cuda::Context::Create(device, &ctx); !s.ok()) {
    return absl::InternalError(absl::StrCat("CUDA device ", device, ": ", s.message()));
  }
  *device_name = ctx->device_name();
  cuda::Rwkv7GpuEngineOptions options;
  options.slots = slots;
  std::unique_ptr<cuda::Rwkv7Engine> engine;
  if (cuda::Status s = cuda::CreateGpuRwkv7Engine(ctx.get(), layout, bytes, options, &engine);
      !s.ok()) {
    return absl::InternalError(absl::StrCat("GPU engine on device ", device, ": ", s.message()));
  }
  return std::unique_ptr<cuda::Rwkv7Engine>(
      new OwningCudaEngine(std::move(ctx), std::move(engine)));
}

}  // namespace skein::model
