// The register-only multiply-add loops behind MeasureComputePeak, one per instruction form,
// each compiled in its own translation unit with that form's -m flags. Internal.
//
// Every loop runs `iterations` rounds of kPeakChains independent multiply-adds (enough chains
// to cover the latency of every form on current cores) and returns a value computed from all
// of them, so that the compiler keeps them.
#ifndef SKEIN_KERNELS_CPU_COMPUTE_PEAK_LOOPS_H_
#define SKEIN_KERNELS_CPU_COMPUTE_PEAK_LOOPS_H_

#include <cstdint>

namespace skein::kernels::peak {

inline constexpr int kPeakChains = 12;

float ScalarFmaLoop(int64_t iterations);      // 2 FLOP per chain per round
float Avx2FmaLoop(int64_t iterations);        // 16 FLOP per chain per round (ymm)
float Avx512FmaLoop(int64_t iterations);      // 32 FLOP per chain per round (zmm)
float Avx512Bf16DotLoop(int64_t iterations);  // 64 FLOP per chain per round (zmm vdpbf16ps)
float Avx512VnniDotLoop(int64_t iterations);  // 128 OP per chain per round (zmm vpdpbusd)

}  // namespace skein::kernels::peak

#endif  // SKEIN_KERNELS_CPU_COMPUTE_PEAK_LOOPS_H_
