// The Rwkv7Engine on a GPU (rwkv7_engine.h): a thin wrapper of Rwkv7Gpu, which checks the
// arguments, stages the inputs, runs the step and copies the outputs back.
#include <memory>
#include <utility>
#include <vector>

#include "kernels/cuda/rwkv7_engine.h"
#include "kernels/cuda/rwkv7_forward.h"

namespace skein::cuda {
namespace {

class GpuRwkv7Engine : public Rwkv7Engine {
 public:
  explicit GpuRwkv7Engine(std::unique_ptr<Rwkv7Gpu> gpu) : gpu_(std::move(gpu)) {}

  const Rwkv7WeightLayout& layout() const override { return gpu_->layout(); }
  int64_t slots() const override { return gpu_->options().slots; }
  Status Step(const Rwkv7StepIo& io) override { return gpu_->RunStep(io); }
  Status WriteSlot(int32_t slot, const float* state) override {
    return gpu_->WriteSlot(slot, state);
  }
  Status ReadSlot(int32_t slot, float* state) override { return gpu_->ReadSlot(slot, state); }

 private:
  std::unique_ptr<Rwkv7Gpu> gpu_;
};

}  // namespace

Status CreateGpuRwkv7Engine(Context* ctx, const Rwkv7WeightLayout& layout,
                            const std::vector<uint8_t>& bytes, const Rwkv7GpuEngineOptions& options,
                            std::unique_ptr<Rwkv7Engine>* out) {
  Rwkv7GpuOptions gpu_options;
  gpu_options.dtype = layout.dtype();
  gpu_options.slots = options.slots;
  gpu_options.use_graphs = options.use_graphs;
  gpu_options.round_activations = options.round_activations;
  std::unique_ptr<Rwkv7Gpu> gpu;
  SKEIN_CUDA_RETURN_IF_ERROR(Rwkv7Gpu::CreateFromHost(ctx, layout, bytes, gpu_options, &gpu));
  *out = std::make_unique<GpuRwkv7Engine>(std::move(gpu));
  return Status();
}

}  // namespace skein::cuda
