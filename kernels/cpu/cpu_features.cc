#include "kernels/cpu/cpu_features.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define SKEIN_X86 1
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <asm/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace skein::kernels {
namespace {

#ifdef SKEIN_X86
uint64_t ReadXcr0() {
  uint32_t eax = 0, edx = 0;
  // xgetbv with ecx = 0; written as bytes so no -mxsave flag is needed.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

CpuFeatures Detect() {
  CpuFeatures f;
#ifdef SKEIN_X86
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  bool os_saves_tiles = false;
  const bool osxsave = ecx & (1u << 27);
  f.fma = ecx & (1u << 12);
  f.f16c = ecx & (1u << 29);
  const bool avx = ecx & (1u << 28);
  if (osxsave && avx) {
    const uint64_t xcr0 = ReadXcr0();
    f.os_saves_ymm = (xcr0 & 0x6) == 0x6;          // SSE + AVX state
    f.os_saves_zmm = (xcr0 & 0xe6) == 0xe6;        // + opmask, ZMM_Hi256, Hi16_ZMM
    os_saves_tiles = (xcr0 & 0x60000) == 0x60000;  // XTILECFG + XTILEDATA
  }
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    f.avx2 = ebx & (1u << 5);
    f.avx512f = ebx & (1u << 16);
    f.avx512bw = ebx & (1u << 30);
    f.avx512vl = ebx & (1u << 31);
    f.avx512_vnni = ecx & (1u << 11);
    f.amx_bf16 = edx & (1u << 22);
    f.amx_tile = edx & (1u << 24);
    unsigned eax1, ebx1, ecx1, edx1;
    __cpuid_count(7, 1, eax1, ebx1, ecx1, edx1);
    f.avx_vnni = eax1 & (1u << 4);
    f.avx512_bf16 = eax1 & (1u << 5);
  }
  if (!f.os_saves_ymm) f.avx2 = f.fma = f.f16c = f.avx_vnni = false;
  if (!f.os_saves_zmm) {
    f.avx512f = f.avx512bw = f.avx512vl = f.avx512_bf16 = f.avx512_vnni = false;
  }
  if (!os_saves_tiles) f.amx_tile = f.amx_bf16 = false;
#endif
  return f;
}

IsaLevel BestLevel(const CpuFeatures& f) {
  if (f.avx512f && f.avx512bw && f.avx512vl && f.fma && f.f16c && f.avx2) {
    return IsaLevel::kAvx512;
  }
  if (f.avx2 && f.fma && f.f16c) return IsaLevel::kAvx2;
  return IsaLevel::kScalar;
}

IsaLevel InitialLevel() {
  IsaLevel best = SupportedIsaLevel();
  const char* env = std::getenv("SKEIN_CPU_ISA");
  if (env == nullptr || *env == '\0') return best;
  absl::StatusOr<IsaLevel> wanted = ParseIsaLevel(env);
  if (!wanted.ok() || *wanted > best) return best;
  return *wanted;
}

std::atomic<int>& ActiveLevelStorage() {
  static std::atomic<int> level{static_cast<int>(InitialLevel())};
  return level;
}

}  // namespace

const CpuFeatures& DetectCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

bool RequestAmxTileData() {
  static const bool granted = [] {
    if (!DetectCpuFeatures().amx_tile) return false;
#if defined(__linux__) && defined(__x86_64__)
    // XFEATURE_XTILEDATA, the 8 KiB of tile registers that Linux hands out on request.
    constexpr unsigned long kXtileData = 18;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, kXtileData) != 0) return false;
    unsigned long permitted = 0;
    if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &permitted) != 0) return false;
    return (permitted & (1ul << kXtileData)) != 0;
#else
    return false;
#endif
  }();
  return granted;
}

IsaLevel SupportedIsaLevel() { return BestLevel(DetectCpuFeatures()); }

IsaLevel ActiveIsaLevel() {
  return static_cast<IsaLevel>(ActiveLevelStorage().load(std::memory_order_relaxed));
}

absl::Status ForceIsaLevel(IsaLevel level) {
  if (level > SupportedIsaLevel()) {
    return absl::FailedPreconditionError(
        absl::StrCat("this CPU cannot run ISA level ", std::string(IsaLevelName(level)),
                     " (best: ", std::string(IsaLevelName(SupportedIsaLevel())), ")"));
  }
  ActiveLevelStorage().store(static_cast<int>(level), std::memory_order_relaxed);
  return absl::OkStatus();
}

std::string_view IsaLevelName(IsaLevel level) {
  switch (level) {
    case IsaLevel::kScalar:
      return "scalar";
    case IsaLevel::kAvx2:
      return "avx2";
    case IsaLevel::kAvx512:
      return "avx512";
  }
  return "unknown";
}

absl::StatusOr<IsaLevel> ParseIsaLevel(std::string_view name) {
  for (IsaLevel l : {IsaLevel::kScalar, IsaLevel::kAvx2, IsaLevel::kAvx512}) {
    if (name == IsaLevelName(l)) return l;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown ISA level '", std::string(name),
                                                 "' (expected scalar, avx2 or avx512)"));
}

}  // namespace skein::kernels
