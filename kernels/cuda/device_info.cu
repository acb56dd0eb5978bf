#include <cuda_runtime.h>

#include "kernels/cuda/device_info.h"

namespace skein::cuda {

bool ListDevices(std::vector<DeviceInfo>* devices, std::string* error) {
  devices->clear();
  int count = 0;
  cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    *error = std::string("CUDA unavailable: ") + cudaGetErrorString(rc);
    return false;
  }
  if (count == 0) {
    *error = "CUDA reports no devices";
    return false;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    rc = cudaGetDeviceProperties(&prop, i);
    if (rc != cudaSuccess) {
      *error = std::string("cudaGetDeviceProperties: ") + cudaGetErrorString(rc);
      return false;
    }
    DeviceInfo info;
    info.index = i;
    info.name = prop.name;
    info.compute_major = prop.major;
    info.compute_minor = prop.minor;
    info.total_memory_bytes = prop.totalGlobalMem;
    info.multiprocessors = prop.multiProcessorCount;
    int memory_clock_khz = 0, bus_width_bits = 0;
    cudaDeviceGetAttribute(&memory_clock_khz, cudaDevAttrMemoryClockRate, i);
    cudaDeviceGetAttribute(&bus_width_bits, cudaDevAttrGlobalMemoryBusWidth, i);
    // Double data rate: two transfers per clock.
    info.peak_bandwidth_bytes_per_second = 2.0 * memory_clock_khz * 1e3 * bus_width_bits / 8.0;
    devices->push_back(info);
  }
  return true;
}

}  // namespace skein::cuda
