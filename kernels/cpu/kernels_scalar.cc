// Scalar reference kernels: the plain formulas, used as the ground truth for the SIMD
// versions and as the fallback on CPUs without AVX2.
#include <cmath>
#include <cstdint>

#include "base/float16.h"
#include "kernels/cpu/kernel_table.h"

namespace skein::kernels {
namespace {

float LoadWeight(const void* data, DType type, int64_t index) {
  switch (type) {
    case DType::kF32:
      return static_cast<const float*>(data)[index];
    case DType::kBF16:
      return base::Bf16ToF32(static_cast<const uint16_t*>(data)[index]);
    case DType::kF16:
      return base::F16ToF32(static_cast<const uint16_t*>(data)[index]);
    case DType::kI8:
      return static_cast<float>(static_cast<const int8_t*>(data)[index]);
  }
  return 0.0f;
}

void MatMulScalar(const MatMulJob& job, int64_t b_begin, int64_t b_end, int64_t o_begin,
                  int64_t o_end) {
  const WeightMatrix& w = job.w;
  for (int64_t b = b_begin; b < b_end; ++b) {
    const float* x = job.x + b * job.ldx;
    float* y = job.y + b * job.ldy;
    for (int64_t o = o_begin; o < o_end; ++o) {
      float sum = 0.0f;
      const int64_t row = o * w.stride;
      for (int64_t i = 0; i < w.cols; ++i) sum += x[i] * LoadWeight(w.data, w.type, row + i);
      // int8: the sum ran over the integers; the row's scale multiplies it once.
      if (w.type == DType::kI8) sum *= w.scales[o];
      y[o] = job.accumulate ? y[o] + sum : sum;
    }
  }
}

void LayerNormScalar(const float* x, const float* gamma, const float* beta, int64_t n, float eps,
                     float* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / static_cast<double>(n);
  double squares = 0.0;
  for (int64_t i = 0; i < n; ++i) squares += (x[i] - mean) * (x[i] - mean);
  const double variance = squares / static_cast<double>(n);
  const float rstd = static_cast<float>(1.0 / std::sqrt(variance + eps));
  const float mean_f = static_cast<float>(mean);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean_f) * rstd * gamma[i] + beta[i];
}

void L2NormalizeScalar(const float* x, int64_t n, float min_norm, float* y) {
  double squares = 0.0;
  for (int64_t i = 0; i < n; ++i) squares += static_cast<double>(x[i]) * x[i];
  float norm = static_cast<float>(std::sqrt(squares));
  if (norm < min_norm) norm = min_norm;
  const float inv = 1.0f / norm;
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * inv;
}

void Wkv7HeadScalar(const Wkv7HeadArgs& p) {
  const int64_t n = p.n;
  for (int64_t t = 0; t < p.tokens; ++t) {
    const int64_t off = t * p.stride;
    const float* r = p.r + off;
    const float* w = p.w + off;
    const float* k = p.k + off;
    const float* v = p.v + off;
    const float* a = p.a + off;
    const float* b = p.b + off;
    float* y = p.y + t * p.y_stride;
    for (int64_t i = 0; i < n; ++i) {
      float* row = p.state + i * n;
      float sa = 0.0f;
      for (int64_t j = 0; j < n; ++j) sa += a[j] * row[j];
      float out = 0.0f;
      for (int64_t j = 0; j < n; ++j) {
        row[j] = row[j] * w[j] + k[j] * v[i] + sa * b[j];
        out += row[j] * r[j];
      }
      y[i] = out;
    }
  }
}

void Wkv6HeadScalar(const Wkv6HeadArgs& p) {
  const int64_t n = p.n;
  for (int64_t t = 0; t < p.tokens; ++t) {
    const int64_t off = t * p.stride;
    const float* r = p.r + off;
    const float* w = p.w + t * p.w_stride;
    const float* k = p.k + off;
    const float* v = p.v + off;
    float* y = p.y + t * p.y_stride;
    for (int64_t i = 0; i < n; ++i) {
      float* row = p.state + i * n;
      float out = 0.0f;
      for (int64_t j = 0; j < n; ++j) {
        const float kv = k[j] * v[i];
        out += r[j] * (row[j] + p.u[j] * kv);
        row[j] = row[j] * w[j] + kv;
      }
      y[i] = out;
    }
  }
}

void ExpScalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

void SigmoidScalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 1.0f / (1.0f + std::exp(-x[i]));
}

void TanhScalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

constexpr KernelTable kScalarTable = {
    IsaLevel::kScalar, &MatMulScalar, &LayerNormScalar, &L2NormalizeScalar, &Wkv7HeadScalar,
    &Wkv6HeadScalar,   &ExpScalar,    &SigmoidScalar,   &TanhScalar,
};

}  // namespace

const KernelTable* ScalarKernels() { return &kScalarTable; }

}  // namespace skein::kernels
