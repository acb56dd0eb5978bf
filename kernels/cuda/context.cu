#include <cuda_runtime.h>

#include <algorithm>
#include <utility>

#include "kernels/cuda/context.h"
#include "kernels/cuda/context_internal.h"

namespace skein::cuda {

bool DeviceAvailable(std::string* why) {
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    *why = std::string("CUDA unavailable: ") + cudaGetErrorString(rc);
    return false;
  }
  if (count == 0) {
    *why = "CUDA reports no devices";
    return false;
  }
  return true;
}

int DeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

Context::Context() : impl_(new Impl) {}

Context::~Context() {
  if (impl_ == nullptr) return;
  cudaSetDevice(impl_->device);
  if (impl_->stream != nullptr) cudaStreamSynchronize(impl_->stream);
  for (auto& [key, plan] : impl_->gemm_plans) {
    cublasLtMatrixLayoutDestroy(plan.a);
    cublasLtMatrixLayoutDestroy(plan.b);
    cublasLtMatrixLayoutDestroy(plan.c);
    cublasLtMatmulDescDestroy(plan.desc);
  }
  if (impl_->workspace != nullptr) cudaFree(impl_->workspace);
  if (impl_->split != nullptr) cudaFree(impl_->split);
  for (void* p : impl_->retired_splits) cudaFree(p);
  if (impl_->lt != nullptr) cublasLtDestroy(impl_->lt);
  if (impl_->stream != nullptr) cudaStreamDestroy(impl_->stream);
}

Status Context::Create(int device, std::unique_ptr<Context>* out) {
  std::string why;
  if (!DeviceAvailable(&why)) return Status::Error(why);
  std::unique_ptr<Context> ctx(new Context());
  Impl& impl = *ctx->impl_;
  impl.device = device;
  SKEIN_CUDA_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device), "cudaSetDevice"));
  cudaDeviceProp prop;
  SKEIN_CUDA_RETURN_IF_ERROR(
      CudaStatus(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties"));
  impl.name = prop.name;
  impl.compute_major = prop.major;
  SKEIN_CUDA_RETURN_IF_ERROR(CudaStatus(
      cudaStreamCreateWithFlags(&impl.stream, cudaStreamNonBlocking), "cudaStreamCreate"));
  SKEIN_CUDA_RETURN_IF_ERROR(BlasStatus(cublasLtCreate(&impl.lt), "cublasLtCreate"));
  // cuBLASLt's larger split-K and stream-K algorithms want a workspace; 32 MiB covers the
  // ones its heuristics pick for these shapes.
  impl.workspace_bytes = size_t{32} << 20;
  SKEIN_CUDA_RETURN_IF_ERROR(
      CudaStatus(cudaMalloc(&impl.workspace, impl.workspace_bytes), "cudaMalloc(workspace)"));
  *out = std::move(ctx);
  return Status();
}

int Context::device() const { return impl_->device; }

Status Context::MakeCurrent() const {
  return CudaStatus(cudaSetDevice(impl_->device), "cudaSetDevice");
}

const std::string& Context::device_name() const { return impl_->name; }

void Context::set_overlapped_launches(bool on) {
  impl_->overlapped = on && impl_->compute_major >= 9;
}

bool Context::overlapped_launches() const { return impl_->overlapped; }

Status Context::Synchronize() {
  SKEIN_CUDA_RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(impl_->stream), "kernel execution"));
  return CudaStatus(cudaGetLastError(), "kernel execution");
}

DeviceBuffer::~DeviceBuffer() {
  if (data_ != nullptr) cudaFree(data_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) cudaFree(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

Status DeviceBuffer::Allocate(size_t bytes, DeviceBuffer* out) {
  *out = DeviceBuffer();
  void* p = nullptr;
  const size_t size = std::max<size_t>(bytes, 1);
  const cudaError_t rc = cudaMalloc(&p, size);
  if (rc != cudaSuccess) {
    return Status::Error("cudaMalloc(" + std::to_string(size) +
                         " bytes): " + cudaGetErrorString(rc));
  }
  out->data_ = p;
  out->bytes_ = size;
  return Status();
}

Status CopyToDevice(Context& ctx, void* device_dst, const void* host_src, size_t bytes) {
  SKEIN_CUDA_RETURN_IF_ERROR(CudaStatus(
      cudaMemcpyAsync(device_dst, host_src, bytes, cudaMemcpyHostToDevice, StreamOf(ctx)),
      "cudaMemcpyAsync(host to device)"));
  // Pageable host memory: the copy may still read it after the call; wait so the caller may
  // reuse it at once.
  return CudaStatus(cudaStreamSynchronize(StreamOf(ctx)), "copy to device");
}

Status CopyToHost(Context& ctx, void* host_dst, const void* device_src, size_t bytes) {
  SKEIN_CUDA_RETURN_IF_ERROR(CudaStatus(
      cudaMemcpyAsync(host_dst, device_src, bytes, cudaMemcpyDeviceToHost, StreamOf(ctx)),
      "cudaMemcpyAsync(device to host)"));
  return CudaStatus(cudaStreamSynchronize(StreamOf(ctx)), "copy to host");
}

Status ZeroDevice(Context& ctx, void* device_dst, size_t bytes) {
  return CudaStatus(cudaMemsetAsync(device_dst, 0, bytes, StreamOf(ctx)), "cudaMemsetAsync");
}

StreamTimer::StreamTimer(Context& ctx) : ctx_(ctx) {
  cudaEvent_t start = nullptr, stop = nullptr;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  start_ = start;
  stop_ = stop;
}

StreamTimer::~StreamTimer() {
  if (start_ != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(start_));
  if (stop_ != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(stop_));
}

void StreamTimer::Start() { cudaEventRecord(static_cast<cudaEvent_t>(start_), StreamOf(ctx_)); }

void StreamTimer::Stop() { cudaEventRecord(static_cast<cudaEvent_t>(stop_), StreamOf(ctx_)); }

Status StreamTimer::ElapsedMs(double* ms) {
  SKEIN_CUDA_RETURN_IF_ERROR(
      CudaStatus(cudaEventSynchronize(static_cast<cudaEvent_t>(stop_)), "cudaEventSynchronize"));
  float elapsed = 0;
  SKEIN_CUDA_RETURN_IF_ERROR(
      CudaStatus(cudaEventElapsedTime(&elapsed, static_cast<cudaEvent_t>(start_),
                                      static_cast<cudaEvent_t>(stop_)),
                 "cudaEventElapsedTime"));
  *ms = elapsed;
  return Status();
}

Status MeasureCopyBandwidth(Context& ctx, size_t bytes, int repeats, double* bytes_per_second) {
  DeviceBuffer src, dst;
  SKEIN_CUDA_RETURN_IF_ERROR(DeviceBuffer::Allocate(bytes, &src));
  SKEIN_CUDA_RETURN_IF_ERROR(DeviceBuffer::Allocate(bytes, &dst));
  SKEIN_CUDA_RETURN_IF_ERROR(ZeroDevice(ctx, src.data(), bytes));
  // One untimed copy first: the first touch of fresh pages costs more than a steady copy.
  SKEIN_CUDA_RETURN_IF_ERROR(CudaStatus(
      cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, StreamOf(ctx)),
      "cudaMemcpyAsync(device to device)"));
  double best_ms = 0;
  StreamTimer timer(ctx);
  for (int i = 0; i < std::max(repeats, 1); ++i) {
    timer.Start();
    SKEIN_CUDA_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, StreamOf(ctx)),
        "cudaMemcpyAsync(device to device)"));
    timer.Stop();
    double ms = 0;
    SKEIN_CUDA_RETURN_IF_ERROR(timer.ElapsedMs(&ms));
    if (i == 0 || ms < best_ms) best_ms = ms;
  }
  *bytes_per_second = best_ms > 0 ? 2.0 * static_cast<double>(bytes) / (best_ms * 1e-3) : 0.0;
  return Status();
}

}  // namespace skein::cuda
