// The CUDA side of Skein behind a plain C++ interface: a Context (one device, one stream, one
// cuBLASLt handle), device memory, copies and timing. Callers include no CUDA header; the
// stream and handles are opaque.
//
// Every call that takes a Context enqueues its work on the context's stream and returns
// without waiting, unless its comment says it waits. A returned error is about the call itself
// (a bad argument, a failed launch); an error while a kernel runs shows at the next call that
// waits (Synchronize, CopyToHost). A Context is not thread-safe: one host thread drives it at a
// time. Different Contexts may be used from different threads.
#ifndef SKEIN_KERNELS_CUDA_CONTEXT_H_
#define SKEIN_KERNELS_CUDA_CONTEXT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "base/dtype.h"

namespace skein::cuda {

using base::DType;

// Ok, or the first error with what failed ("cudaMalloc(…): out of memory"). Errors are values,
// never exceptions or aborts.
class Status {
 public:
  Status() = default;
  static Status Error(std::string message) {
    Status s;
    s.message_ = message.empty() ? std::string("unknown error") : std::move(message);
    return s;
  }
  bool ok() const { return message_.empty(); }
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

// Returns the status from `expr` if it is an error.
#define SKEIN_CUDA_RETURN_IF_ERROR(expr)         \
  do {                                           \
    ::skein::cuda::Status skein_status = (expr); \
    if (!skein_status.ok()) return skein_status; \
  } while (0)

// Whether a CUDA device can be used here. False with the reason in `*why` where the driver or a
// device is missing (the usual case on a build machine); never aborts.
bool DeviceAvailable(std::string* why);
// The number of usable CUDA devices (0 where there is no driver or device).
int DeviceCount();

class Context {
 public:
  // Makes a context on device `device` with its own non-blocking stream, a cuBLASLt handle and
  // a 32 MiB product workspace.
  static Status Create(int device, std::unique_ptr<Context>* out);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int device() const;
  // Makes the context's device the calling thread's current one. CUDA's current device is per
  // host thread, and allocations (DeviceBuffer::Allocate) and launches go to it, so a thread
  // other than the one that made the context calls this before using it on a machine with
  // several GPUs. Cheap when it already is.
  Status MakeCurrent() const;
  // The device's name ("NVIDIA H100 80GB HBM3").
  const std::string& device_name() const;
  // Waits for all work enqueued so far; returns the first error any of it hit.
  Status Synchronize();

  // Overlapped launches (programmatic dependent launch, sm_90 and newer): each kernel may
  // start while the one before it finishes, and do its independent work (prefetching
  // weights, launch latency) before waiting for the previous kernel's results. Off by default;
  // ignored on older GPUs. Affects launches made (and graphs captured) afterwards.
  void set_overlapped_launches(bool on);
  bool overlapped_launches() const;

  // Internal to the .cu files (context_internal.h): the stream, handles and caches.
  struct Impl;
  Impl* impl() const { return impl_.get(); }

 private:
  Context();
  std::unique_ptr<Impl> impl_;
};

// Device memory of one allocation, freed on destruction. Move-only. Allocations start on a
// 256-byte boundary, which every kernel here relies on for vector loads.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Replaces *out with a new uninitialised allocation of `bytes` (at least 1) on the current
  // device.
  static Status Allocate(size_t bytes, DeviceBuffer* out);

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Host → device copy of `bytes`; waits until the host memory may be reused.
Status CopyToDevice(Context& ctx, void* device_dst, const void* host_src, size_t bytes);
// Device → host copy of `bytes`; waits for all earlier work on the stream and for the copy.
Status CopyToHost(Context& ctx, void* host_dst, const void* device_src, size_t bytes);
// Sets `bytes` of device memory to zero (enqueued).
Status ZeroDevice(Context& ctx, void* device_dst, size_t bytes);

// Elapsed time between two points of a context's stream.
class StreamTimer {
 public:
  explicit StreamTimer(Context& ctx);
  ~StreamTimer();
  StreamTimer(const StreamTimer&) = delete;
  StreamTimer& operator=(const StreamTimer&) = delete;
  void Start();
  void Stop();
  // Waits for the stop point; milliseconds between Start and Stop.
  Status ElapsedMs(double* ms);

 private:
  Context& ctx_;
  void* start_ = nullptr;
  void* stop_ = nullptr;
};

// The device's copy bandwidth, the roofline of a decode step: the best of `repeats`
// device-to-device copies of `bytes`, counted as 2·bytes (each byte read once and written
// once) per copy time. Waits.
Status MeasureCopyBandwidth(Context& ctx, size_t bytes, int repeats, double* bytes_per_second);

}  // namespace skein::cuda

#endif  // SKEIN_KERNELS_CUDA_CONTEXT_H_
