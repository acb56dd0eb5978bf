// Run-time CPU feature detection and the instruction-set level the kernels dispatch on.
//
// The level is chosen once per process: the best level the CPU supports, unless the
// environment variable SKEIN_CPU_ISA (scalar | avx2 | avx512) or ForceIsaLevel() asks for a
// lower one. Thread-safe.
#ifndef SKEIN_KERNELS_CPU_CPU_FEATURES_H_
#define SKEIN_KERNELS_CPU_CPU_FEATURES_H_

#include <string_view>

#include "absl/status/statusor.h"

namespace skein::kernels {

// Ordered: each level implies the ones before it.
enum class IsaLevel {
  kScalar = 0,  // portable C++
  kAvx2 = 1,    // AVX2 + FMA + F16C
  kAvx512 = 2,  // AVX-512 F/BW/VL (+ BF16 dot products where `has_avx512_bf16`)
};

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512_bf16 = false;
  // Integer dot products (vpdpbusd): the VEX-encoded 256-bit form (AVX-VNNI, an extension of
  // the avx2 level) and the EVEX form (AVX512-VNNI, an extension of the avx512 level). Neither
  // implies the other (Ice Lake has only the second, Alder Lake only the first).
  bool avx_vnni = false;
  bool avx512_vnni = false;
  bool os_saves_ymm = false;  // XCR0 enables AVX state
  bool os_saves_zmm = false;  // XCR0 enables AVX-512 state
  // AMX: the tile registers and the bf16 tile product (TDPBF16PS). Set only where the OS
  // also enables the tile state in XCR0; Linux still wants a per-process request before the
  // first use (RequestAmxTileData).
  bool amx_tile = false;
  bool amx_bf16 = false;
};

// What this CPU and OS support (cpuid + xgetbv), computed once.
const CpuFeatures& DetectCpuFeatures();

// Asks Linux for permission to use the AMX tile data registers (arch_prctl
// ARCH_REQ_XCOMP_PERM), once per process; later calls return the first answer. True when
// granted (or already granted); false on CPUs without AMX, on other systems, or when the
// kernel refuses (for example because a thread's alternate signal stack is too small for the
// larger signal frame). Thread-safe.
bool RequestAmxTileData();

// The best level this machine can run.
IsaLevel SupportedIsaLevel();

// The level kernels dispatch to now: SupportedIsaLevel(), lowered by SKEIN_CPU_ISA or by
// ForceIsaLevel.
IsaLevel ActiveIsaLevel();

// Makes kernels dispatch to `level` from now on. Fails with FAILED_PRECONDITION if the CPU
// cannot run it. Meant for tests and benchmarks; not to be called while kernels run.
absl::Status ForceIsaLevel(IsaLevel level);

// "scalar", "avx2", "avx512".
std::string_view IsaLevelName(IsaLevel level);
absl::StatusOr<IsaLevel> ParseIsaLevel(std::string_view name);

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_CPU_FEATURES_H_
