// The CPU in words, for `skein inspect --cpu`, `skein bench` and the benchmark records: its
// model name and the features the kernels choose their paths by.
#ifndef SKEIN_KERNELS_CPU_CPU_DESCRIPTION_H_
#define SKEIN_KERNELS_CPU_CPU_DESCRIPTION_H_

#include <string>
#include <vector>

namespace skein::kernels {

// The processor's brand string (cpuid leaves 0x80000002-4, spaces trimmed), e.g. "AMD EPYC
// 9B45"; "unknown" where the CPU has none (or is not x86).
std::string CpuModelName();

// The detected features (DetectCpuFeatures) that some kernel path uses, by their Linux
// /proc/cpuinfo names ("avx2", "fma", "f16c", "avx512f", ...), in a fixed order.
std::vector<std::string> CpuFeatureNames();

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_CPU_DESCRIPTION_H_
