// The scalar reference of products with int8 activations (kernels.h, "int8 activations"):
// the formula as written, blocks added in order. Ground truth for the SIMD versions and the
// fallback on CPUs without AVX2.
#include <algorithm>
#include <cstdint>

#include "kernels/cpu/kernel_table.h"

namespace skein::kernels {
namespace {

void MatMulInt8ActivationsScalar(const MatMulJob& job, const Int8ActivationRows& xq,
                                 int64_t b_begin, int64_t b_end, int64_t o_begin, int64_t o_end) {
  const WeightMatrix& w = job.w;
  const auto* q = static_cast<const int8_t*>(w.data);
  const int64_t blocks = (w.cols + kInt8ActivationBlock - 1) / kInt8ActivationBlock;
  const int64_t lds = xq.ldq / kInt8ActivationBlock;
  for (int64_t b = b_begin; b < b_end; ++b) {
    const int8_t* x = xq.q + b * xq.ldq;
    const float* sx = xq.scales + b * lds;
    float* y = job.y + b * job.ldy;
    for (int64_t o = o_begin; o < o_end; ++o) {
      const int8_t* row = q + o * w.stride;
      if (w.cols == 0) {
        // An empty sum: nothing to scale or add.
        if (!job.accumulate) y[o] = 0.0f;
        continue;
      }
      float sum = 0.0f;
      for (int64_t j = 0; j < blocks; ++j) {
        const int64_t begin = j * kInt8ActivationBlock;
        const int64_t end = std::min(w.cols, begin + kInt8ActivationBlock);
        int32_t dot = 0;  // exact: |dot| <= 32·127²
        for (int64_t i = begin; i < end; ++i) dot += int32_t{x[i]} * int32_t{row[i]};
        sum += sx[j] * static_cast<float>(dot);
      }
      sum *= w.scales[o];
      y[o] = job.accumulate ? y[o] + sum : sum;
    }
  }
}

// The quantiser is QuantizeActivationsInt8 itself (null: the caller uses it).
constexpr Int8DotTable kScalarInt8Dot = {Int8DotIsa::kScalar, &MatMulInt8ActivationsScalar,
                                         nullptr};

}  // namespace

const Int8DotTable* ScalarInt8Dot() { return &kScalarInt8Dot; }

}  // namespace skein::kernels
