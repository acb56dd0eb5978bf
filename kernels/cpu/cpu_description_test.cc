#include "kernels/cpu/cpu_description.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_features.h"

namespace skein::kernels {
namespace {

// The first "flags" line of /proc/cpuinfo, padded with spaces; empty where there is none.
std::string LinuxFlags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) return " " + line.substr(line.find(':') + 1) + " ";
  }
  return "";
}

TEST(CpuDescription, ModelNameIsTrimmedText) {
  const std::string name = CpuModelName();
  ASSERT_FALSE(name.empty());
  EXPECT_NE(name.front(), ' ');
  EXPECT_NE(name.back(), ' ');
  EXPECT_EQ(name.find("  "), std::string::npos) << name;
  EXPECT_EQ(name.find('\0'), std::string::npos);
}

TEST(CpuDescription, FeaturesAgreeWithTheKernelsAndTheKernel) {
  const std::vector<std::string> names = CpuFeatureNames();
  auto has = [&](const char* n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  const CpuFeatures& f = DetectCpuFeatures();
  EXPECT_EQ(has("avx2"), f.avx2);
  EXPECT_EQ(has("avx512f"), f.avx512f);
  EXPECT_EQ(has("avx512_bf16"), f.avx512_bf16);
  EXPECT_EQ(has("amx_tile"), f.amx_tile);
  EXPECT_EQ(has("amx_bf16"), f.amx_bf16);
  // Linux reports what cpuid says too (it may also hide what the OS does not save, which
  // DetectCpuFeatures hides as well): every name here is one of its flags.
  const std::string flags = LinuxFlags();
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags line on this system";
  for (const std::string& n : names) {
    EXPECT_NE(flags.find(" " + n + " "), std::string::npos) << n << " is not in " << flags;
  }
}

}  // namespace
}  // namespace skein::kernels
