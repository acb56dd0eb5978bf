#include "kernels/cpu/cpu_description.h"

#include <cstdint>
#include <cstring>

#include "kernels/cpu/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define SKEIN_X86 1
#endif

namespace skein::kernels {

std::string CpuModelName() {
  std::string name;
#ifdef SKEIN_X86
  if (__get_cpuid_max(0x80000000u, nullptr) >= 0x80000004u) {
    for (unsigned leaf = 0x80000002u; leaf <= 0x80000004u; ++leaf) {
      unsigned regs[4];
      __get_cpuid(leaf, &regs[0], &regs[1], &regs[2], &regs[3]);
      char bytes[sizeof(regs)];
      std::memcpy(bytes, regs, sizeof(regs));
      name.append(bytes, sizeof(bytes));
    }
  }
#endif
  name = name.substr(0, name.find('\0'));
  const size_t first = name.find_first_not_of(' ');
  if (first == std::string::npos) return "unknown";
  name = name.substr(first, name.find_last_not_of(' ') - first + 1);
  // Some hypervisors pad the middle with runs of spaces: keep one.
  std::string out;
  for (char c : name) {
    if (c != ' ' || out.empty() || out.back() != ' ') out += c;
  }
  return out;
}

std::vector<std::string> CpuFeatureNames() {
  const CpuFeatures& f = DetectCpuFeatures();
  std::vector<std::string> names;
  const std::pair<bool, const char*> all[] = {
      {f.avx2, "avx2"},
      {f.fma, "fma"},
      {f.f16c, "f16c"},
      {f.avx512f, "avx512f"},
      {f.avx512bw, "avx512bw"},
      {f.avx512vl, "avx512vl"},
      {f.avx512_bf16, "avx512_bf16"},
      {f.avx_vnni, "avx_vnni"},
      {f.avx512_vnni, "avx512_vnni"},
      {f.amx_tile, "amx_tile"},
      {f.amx_bf16, "amx_bf16"},
  };
  for (const auto& [present, name] : all) {
    if (present) names.push_back(name);
  }
  return names;
}

}  // namespace skein::kernels
