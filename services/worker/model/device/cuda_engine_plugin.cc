// The GPU engine as a plugin (libskein_cuda_engine.so), loaded by OpenCudaEngine
// (cuda_engine_loader.cc) the first time a stage asks for a CUDA device.
//
// Why a plugin and not a link-time dependency: cuBLASLt carries ~94 KB of thread-local storage.
// Linked into a binary, that storage is reserved in every thread's stack, and the metrics
// server's threads (civetweb, built with a 100 KB stack) then fail to start. Loaded with
// dlopen, the libraries' TLS is allocated on demand instead. It also keeps the worker binary
// runnable on machines without the CUDA runtime libraries.
//
// Builds with NCCL (SKEIN_WITH_NCCL) also carry the NCCL stage link's device side
// (SkeinNcclJoin); the worker finds out at run time whether it is there.
//
// The entry point is a C symbol over plain C++ types from headers both sides compile
// (rwkv7_engine.h); the engine it returns is deleted through its virtual destructor, whose
// code stays in the plugin (which is never unloaded).
#include "services/worker/model/device/cuda_engine_plugin.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/context.h"
#include "kernels/cuda/rwkv7_engine.h"
#ifdef SKEIN_WITH_NCCL
#include "kernels/cuda/nccl_link.h"
#endif

namespace skein::cuda {
namespace {

// The engine and the context it runs on, released in that order.
class OwningCudaEngine final : public Rwkv7Engine {
 public:
  OwningCudaEngine(std::unique_ptr<Context> ctx, std::unique_ptr<Rwkv7Engine> engine)
      : ctx_(std::move(ctx)), engine_(std::move(engine)) {}
  ~OwningCudaEngine() override {
    ctx_->MakeCurrent();  // frees go to the current device too
    engine_.reset();
  }

  const Rwkv7WeightLayout& layout() const override { return engine_->layout(); }
  int64_t slots() const override { return engine_->slots(); }
  // The calls come from the server's threads, whose current CUDA device is the first one
  // unless set: on a stage of another device the launches would go astray.
  Status Step(const Rwkv7StepIo& io) override {
    SKEIN_CUDA_RETURN_IF_ERROR(ctx_->MakeCurrent());
    return engine_->Step(io);
  }
  Status WriteSlot(int32_t slot, const float* state) override {
    SKEIN_CUDA_RETURN_IF_ERROR(ctx_->MakeCurrent());
    return engine_->WriteSlot(slot, state);
  }
  Status ReadSlot(int32_t slot, float* state) override {
    SKEIN_CUDA_RETURN_IF_ERROR(ctx_->MakeCurrent());
    return engine_->ReadSlot(slot, state);
  }

 private:
  std::unique_ptr<Context> ctx_;
  std::unique_ptr<Rwkv7Engine> engine_;
};

#ifdef SKEIN_WITH_NCCL
// An NCCL rank with its own context and staging buffers (SkeinNcclEndpoint's contract).
class NcclEndpoint final : public SkeinNcclEndpoint {
 public:
  NcclEndpoint(std::unique_ptr<Context> ctx, std::unique_ptr<NcclLink> link)
      : ctx_(std::move(ctx)), link_(std::move(link)) {}
  ~NcclEndpoint() override {
    (void)ctx_->MakeCurrent();  // buffers and the communicator belong to its device
    link_.reset();
    send_staging_ = DeviceBuffer();
    recv_staging_ = DeviceBuffer();
  }

  Status SendFromHost(const void* host, size_t count, DType type, int peer) override {
    const size_t bytes = count * base::DTypeSize(type);
    if (bytes == 0) return Status();
    SKEIN_CUDA_RETURN_IF_ERROR(ctx_->MakeCurrent());
    SKEIN_CUDA_RETURN_IF_ERROR(Reserve(bytes, &send_staging_));
    // Queued behind the previous send on the same stream, so the staging buffer is not
    // overwritten while that one still reads it (back-pressure from the peer, too).
    SKEIN_CUDA_RETURN_IF_ERROR(CopyToDevice(*ctx_, send_staging_.data(), host, bytes));
    return link_->Send(send_staging_.data(), count, type, peer);
  }

  Status ReceiveToHost(void* host, size_t count, DType type, int peer) override {
    const size_t bytes = count * base::DTypeSize(type);
    if (bytes == 0) return Status();
    SKEIN_CUDA_RETURN_IF_ERROR(ctx_->MakeCurrent());
    SKEIN_CUDA_RETURN_IF_ERROR(Reserve(bytes, &recv_staging_));
    SKEIN_CUDA_RETURN_IF_ERROR(link_->Recv(recv_staging_.data(), count, type, peer));
    return CopyToHost(*ctx_, host, recv_staging_.data(), bytes);  // waits for the receive
  }

  Status Synchronize() override {
    SKEIN_CUDA_RETURN_IF_ERROR(ctx_->MakeCurrent());
    return ctx_->Synchronize();
  }

  void Abort() override { link_->Abort(); }

 private:
  // Grows `buffer` to `bytes` (doubling, so growing prefills do not reallocate every step),
  // after the queued work that may still use the old one.
  Status Reserve(size_t bytes, DeviceBuffer* buffer) {
    if (buffer->data() != nullptr && buffer->bytes() >= bytes) return Status();
    SKEIN_CUDA_RETURN_IF_ERROR(ctx_->Synchronize());
    return DeviceBuffer::Allocate(std::max(bytes, 2 * buffer->bytes()), buffer);
  }

  std::unique_ptr<Context> ctx_;  // before link_, which uses it until destroyed
  std::unique_ptr<NcclLink> link_;
  DeviceBuffer send_staging_, recv_staging_;
};
#endif  // SKEIN_WITH_NCCL

// A context on `device`, or the kSkeinCudaEngine* code and *error saying why not (no driver,
// no such device, or the device failed). What every entry point starts with.
int OpenContext(int device, std::unique_ptr<Context>* ctx, std::string* error) {
  std::string why;
  if (!DeviceAvailable(&why)) {
    *error = "no CUDA device: " + why;
    return kSkeinCudaEngineUnavailable;
  }
  if (device < 0 || device >= DeviceCount()) {
    *error = "CUDA device " + std::to_string(device) + " does not exist (" +
             std::to_string(DeviceCount()) + " found)";
    return kSkeinCudaEngineUnavailable;
  }
  if (Status s = Context::Create(device, ctx); !s.ok()) {
    *error = "CUDA device " + std::to_string(device) + ": " + s.message();
    return kSkeinCudaEngineFailed;
  }
  return kSkeinCudaEngineOk;
}

}  // namespace
}  // namespace skein::cuda

extern "C" int SkeinCudaDeviceCount(std::string* why) {
  std::string reason;
  if (!skein::cuda::DeviceAvailable(&reason)) {
    *why = "no CUDA device: " + reason;
    return 0;
  }
  return skein::cuda::DeviceCount();
}

#ifdef SKEIN_WITH_NCCL
extern "C" int SkeinNcclNewUniqueId(std::string* id, std::string* error) {
  const skein::cuda::Status s = skein::cuda::NewNcclUniqueId(id);
  if (!s.ok()) *error = "ncclGetUniqueId: " + s.message();
  return s.ok() ? kSkeinCudaEngineOk : kSkeinCudaEngineFailed;
}

extern "C" int SkeinNcclJoin(int device, const std::string* id, int world, int rank,
                             SkeinNcclEndpoint** out, std::string* error) {
  using namespace skein::cuda;  // NOLINT: one function, many names
  std::unique_ptr<Context> ctx;
  if (int code = OpenContext(device, &ctx, error); code != kSkeinCudaEngineOk) return code;
  std::unique_ptr<NcclLink> link;
  if (Status s = NcclLink::Create(ctx.get(), *id, world, rank, &link); !s.ok()) {
    *error = "joining the NCCL communicator: " + s.message();
    return kSkeinCudaEngineFailed;
  }
  *out = new NcclEndpoint(std::move(ctx), std::move(link));
  return kSkeinCudaEngineOk;
}
#endif  // SKEIN_WITH_NCCL

extern "C" int SkeinOpenCudaRwkv7Engine(const SkeinCudaEngineRequest* request,
                                        SkeinCudaEngineResult* result) {
  using namespace skein::cuda;  // NOLINT: one function, many names
  std::unique_ptr<Context> ctx;
  if (int code = OpenContext(request->device, &ctx, &result->error); code != kSkeinCudaEngineOk) {
    return code;
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
