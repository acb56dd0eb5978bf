// The CUDA devices this process can use. Plain C++ interface, so callers need no CUDA headers.
#ifndef SKEIN_KERNELS_CUDA_DEVICE_INFO_H_
#define SKEIN_KERNELS_CUDA_DEVICE_INFO_H_

#include <cstdint>
#include <string>
#include <vector>

namespace skein::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  uint64_t total_memory_bytes = 0;
  int multiprocessors = 0;
  // Peak DRAM bandwidth from the memory clock and bus width (bytes/s): the roofline for
  // decode, which reads every weight once per step.
  double peak_bandwidth_bytes_per_second = 0;
};

// Lists the devices. Returns false and sets `*error` when the CUDA runtime has no usable
// driver or device (the usual case on a machine without a GPU); never aborts.
bool ListDevices(std::vector<DeviceInfo>* devices, std::string* error);

}  // namespace skein::cuda

#endif  // SKEIN_KERNELS_CUDA_DEVICE_INFO_H_
