#include "kernels/cuda/device_info.h"

#include "gtest/gtest.h"

namespace skein::cuda {
namespace {

TEST(DeviceInfoTest, ListsUsableDevicesWithSaneProperties) {
  std::vector<DeviceInfo> devices;
  std::string error;
  if (!ListDevices(&devices, &error)) GTEST_SKIP() << "no GPU here: " << error;
  ASSERT_FALSE(devices.empty());
  for (const DeviceInfo& d : devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GE(d.compute_major, 5);
    EXPECT_GT(d.total_memory_bytes, 1ull << 30);
    EXPECT_GT(d.multiprocessors, 0);
    EXPECT_GT(d.peak_bandwidth_bytes_per_second, 1e11);
  }
}

}  // namespace
}  // namespace skein::cuda
