// CPU kernels for RWKV inference: matrix products over fp32/bf16/fp16/int8 weights, norms and
// the WKV-7 state update. Every kernel has a scalar reference and SIMD versions (AVX2+FMA,
// AVX-512); calls dispatch to ActiveIsaLevel() (see cpu_features.h).
//
// All functions are thread-safe as long as calls do not write to memory another call reads
// or writes. Functions taking a ThreadPool split their work over it (nullptr = this thread).
#ifndef SKEIN_KERNELS_CPU_KERNELS_H_
#define SKEIN_KERNELS_CPU_KERNELS_H_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"
#include "base/dtype.h"
#include "kernels/cpu/thread_pool.h"

namespace skein::kernels {

// Element types of weight matrices (activations are always fp32): the project's one enum.
using base::DType;
using base::DTypeSize;

// A row-major matrix in nn.Linear layout: `rows` outputs by `cols` inputs, row r starting
// `stride` elements after row r - 1 (stride >= cols). Not owned.
//
// int8 (type kI8) is symmetric per-output-row quantisation: `data` holds q[o][i] in
// [-127, 127] and `scales` holds one fp32 scale per row, and the matrix stands for
//   w[o][i] = scales[o] · q[o][i]
// (QuantizeRowsInt8 makes one). `scales` must be set for kI8 and is ignored otherwise.
struct WeightMatrix {
  const void* data = nullptr;
  DType type = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t stride = 0;
  // Optional: the same matrix pre-packed into row panels (bf16: PackBf16Panels; int8:
  // PackInt8Panels). When set, products read only this copy (one sequential stream per panel,
  // no packing per call) and `data` may be null.
  const uint32_t* panels = nullptr;
  // kI8 only: `rows` scales, one per output row (see above).
  const float* scales = nullptr;

  // The bytes a product reads: the elements (padding included) plus, for kI8, the scales.
  // Over panels that is rows rounded up to 16 (the kernels read only the 16-row vectors of a
  // last panel that hold rows) by cols rounded up to the pair (bf16) or group of 4 (int8).
  size_t bytes() const {
    const auto round_up = [](int64_t n, int64_t m) { return (n + m - 1) / m * m; };
    const int64_t k = panels == nullptr ? stride : round_up(cols, type == DType::kI8 ? 4 : 2);
    const int64_t r = panels == nullptr ? rows : round_up(rows, 16);
    const size_t elements = static_cast<size_t>(r * k) * DTypeSize(type);
    return type == DType::kI8 ? elements + static_cast<size_t>(rows) * sizeof(float) : elements;
  }
};

// Quantises fp32/bf16/fp16 matrix `src` (row-major, `data` set) to int8 rows, symmetric per
// output row: for each row o,
//   scales[o] = max_i |w[o][i]| / 127        (in fp32)
//   q[o][i]   = round_half_even(w[o][i] / scales[o]), clamped to [-127, 127]
// with q[o·cols + i] (stride = cols, no padding). A row whose scale is 0 (all zeros, or too
// small for the division to leave a normal result above 0) gets scale 0 and q all 0, so it
// still multiplies to 0. A row holding a NaN or an infinity gets scale NaN and q all 0: its
// products are NaN, as they would be with the original weights. -128 is never produced, so
// the range is symmetric.
//
// Deterministic: the result depends only on the values (not on the thread count, the ISA
// level or the floating-point rounding mode). Rows are split over `pool` when given.
// `q` must hold src.rows·src.cols values and `scales` src.rows; neither may overlap `src`.
void QuantizeRowsInt8(const WeightMatrix& src, int8_t* q, float* scales,
                      ThreadPool* pool = nullptr);

// The inverse: widens `rows` rows of `cols` int8 values q (row-major, no padding) to
// scales[r] · q[r][i], computed in fp32 and then converted to `to` (fp32, bf16 or fp16,
// rounding to nearest even), into `out` (rows·cols elements of `to`).
void DequantizeRowsInt8(const int8_t* q, const float* scales, int64_t rows, int64_t cols, DType to,
                        void* out);

// One matrix product: for b < batch and o < w.rows,
//   y[b·ldy + o] (+)= Σ_{i < w.cols} x[b·ldx + i] · w[o, i]
// accumulated in fp32 ("+=" when `accumulate`, else "="). `y` must not overlap `x`.
// For int8 weights the sum runs over the integers and the row's scale multiplies it once:
//   y[b·ldy + o] (+)= scales[o] · Σ_i x[b·ldx + i] · q[o, i]
// (each q widened to fp32 exactly; the activations stay fp32).
struct MatMulJob {
  const float* x = nullptr;
  int64_t ldx = 0;
  WeightMatrix w;
  float* y = nullptr;
  int64_t ldy = 0;
  int64_t batch = 0;
  bool accumulate = false;
  // Allows rounding x to bf16 when the weights are bf16, for twice the arithmetic rate
  // (vdpbf16ps, fp32 accumulation): done for packed weights at every batch size and for
  // row-major weights from 4 rows, on CPUs with AVX512_BF16; otherwise the product is exact as
  // usual (bf16 weights widened to fp32).
  bool bf16_activations = false;
  // int8 weights only (ignored for other types): the activations are quantised to int8 as
  // well, per block of 32 values (see "int8 activations" below), and the products run on
  // integers: about a third of the instructions per weight of widening each weight to fp32.
  // Approximate: the activations carry a relative rounding error of up to 1/254 of their
  // block's largest magnitude.
  bool int8_activations = false;
  // Packed bf16 panels only: whether the product runs on the tile unit (tile_products.h).
  // kPolicy: when its batch reaches the process's TilePolicy threshold; kUse / kAvoid: for
  // this product alone, whatever the policy says (timing, tests). The tiles run only where
  // they are available (AMX, or the policy's software model) whatever this says.
  enum class Tiles : uint8_t { kPolicy, kUse, kAvoid };
  Tiles tiles = Tiles::kPolicy;
};

// ---- int8 activations (MatMulJob::int8_activations) ----
// Each row b of x is cut into blocks of kInt8ActivationBlock consecutive values (the last
// block of a row holds the cols % 32 values left over, when there are some) and every block j
// is quantised symmetrically on its own:
//   sx[b][j] = max_{i in block j} |x[b][i]| / 127                 (fp32)
//   qx[b][i] = round_half_even(x[b][i] / sx[b][j]), in [-127, 127]
// A block whose scale is 0 (all zeros, or so small that the division underflows) gets qx = 0.
// A block holding a NaN or an infinity gets scale NaN and qx = 0: every output of its row is
// then NaN (a product with a non-finite activation is never a number that can be trusted).
// The product is
//   y[b][o] (+)= scales[o] · A[b][o],   A[b][o] = Σ_j sx[b][j] · S[b][j][o],
//   S[b][j][o] = Σ_{i in block j} qx[b][i] · q[o][i]    (exact in int32: |S| <= 32·127²)
// with A summed in fp32. The scalar reference adds the blocks' terms in order,
// A = (…(sx[b][0]·S[b][0][o] + sx[b][1]·S[b][1][o]) + …); the SIMD versions add the same
// terms split into exact partial sums of 4 products (one per vector lane), fused multiply-add
// into per-lane fp32 sums that are added together at the end. The kernel over packed int8
// panels takes each block's S whole (exact) and multiply-adds the blocks in order; for more
// than 4 rows of x it adds scales[o]·A to y in pieces of 8 blocks. Any of them is within
// (2·blocks + 20)·2⁻²⁴ · scales[o] · Σ_j sx[b][j]·Σ_{i in j} |qx[b][i]·q[o][i]| of the exact
// scales[o]·A (the rounding of an fp32 sum of that many steps), plus 2⁻²⁴·|y| when adding
// (⌈blocks / 8⌉·2⁻²⁴·|y| for the panel kernel's pieces).
// Results overflow to ±inf only where x is within 127·32·127 of the fp32 maximum.
constexpr int64_t kInt8ActivationBlock = 32;

// Bytes per row of quantised activations: cols rounded up to a multiple of 64 (a whole
// 512-bit vector; the padding holds qx = 0 and scale 0). A row has that many / 32 scales.
int64_t Int8ActivationRowBytes(int64_t cols);

// Quantises `batch` rows of `cols` activations (row b at x + b·ldx) as above into row b's
// qx at q + b·Int8ActivationRowBytes(cols) and its scales (one per block, padding included)
// at scales + b·Int8ActivationRowBytes(cols) / 32. Portable code: the result depends only on
// the values (not on the ISA level or the rounding mode). MatMul does this itself, with a SIMD
// copy that gives the same bits; this entry is the reference, for tests and for callers that
// want to see what a product multiplies.
void QuantizeActivationsInt8(const float* x, int64_t ldx, int64_t batch, int64_t cols, int8_t* q,
                             float* scales);

// ---- Pre-packed bf16 weights ----
// A bf16 matrix stored as panels of kBf16PanelRows output rows: panel p, pair j, lane i holds
// (w[48p + i][2j], w[48p + i][2j + 1]) as two bf16 in one 32-bit word (low half = even k),
// zero where the row or column is past the matrix. A panel is its pairs front to back, so a
// product streams it sequentially and feeds vdpbf16ps without repacking.
constexpr int64_t kBf16PanelRows = 48;

// 32-bit words that PackBf16Panels writes for a rows × cols matrix.
int64_t Bf16PanelWords(int64_t rows, int64_t cols);

// Packs bf16 matrix `w` (type kBF16, `data` set) into `out` (Bf16PanelWords words, 64-byte
// aligned for speed), on `pool`'s threads when given.
void PackBf16Panels(const WeightMatrix& w, uint32_t* out, ThreadPool* pool = nullptr);

// Whether products over packed panels have a fast kernel here and now: a CPU with AVX512_BF16,
// a build that has it, and the avx512 level active (SKEIN_CPU_ISA or ForceIsaLevel may lower
// it). Without one they still run, on a slow portable loop, so the engine packs bf16 weights
// only where this holds when it loads them.
bool Bf16PanelsAccelerated();

// ---- Pre-packed int8 weights ----
// An int8 matrix (per-row scales as above, which stay in `scales`) stored as panels of
// kInt8PanelRows output rows for vpdpbusd: panel p, group g, lane i holds the four bytes
// q[48p + i][4g .. 4g + 3] + 128 (as unsigned bytes, lowest k in the lowest byte) in one
// 32-bit word; a row or column past the matrix holds q = 0 (byte 128). A panel is its groups
// front to back. The offset makes the weights the unsigned operand of vpdpbusd, so the signed
// activations multiply them directly; the products subtract 128·Σ qx per block to undo it.
// Products over these panels run with int8 activations (MatMulJob::int8_activations) on
// vpdpbusd, and with fp32 activations on fp32 FMAs (each q widened exactly), both on
// AVX512-VNNI CPUs; where Int8PanelsAccelerated() is false, on a slow portable loop.
constexpr int64_t kInt8PanelRows = 48;

// 32-bit words that PackInt8Panels writes for a rows × cols matrix.
int64_t Int8PanelWords(int64_t rows, int64_t cols);

// Packs int8 matrix `w` (type kI8, `data` set) into `out` (Int8PanelWords words, 64-byte
// aligned for speed), on `pool`'s threads when given. `w.scales` is not read (the packed
// matrix keeps the same scales).
void PackInt8Panels(const WeightMatrix& w, uint32_t* out, ThreadPool* pool = nullptr);

// Whether products over packed int8 panels have fast kernels here and now: a CPU with
// AVX512-VNNI, a build that has it, and the avx512 level active. The engine packs int8
// weights only where this holds when it loads them.
bool Int8PanelsAccelerated();

// Runs one product, reading each weight once per call for the whole batch (weights are
// streamed by output-row tiles; the activations stay in cache).
void MatMul(const MatMulJob& job, ThreadPool* pool);

// Runs several independent products in one parallel pass (fewer synchronisations than one
// call each). The outputs must not overlap each other or any input. Jobs with
// int8_activations that read the same activations (equal x, ldx, batch and w.cols) share one
// quantisation of them per call, done before the products (over `pool` for large batches).
void MatMulMany(absl::Span<const MatMulJob> jobs, ThreadPool* pool);

// y = (x - mean) / sqrt(var + eps) ⊙ gamma + beta over n values, var biased (÷ n). `y` may
// equal `x`.
void LayerNorm(const float* x, const float* gamma, const float* beta, int64_t n, float eps,
               float* y);

// GroupNorm of one row of `groups · group_size` values: LayerNorm over each group of
// `group_size` contiguous values with the matching slices of gamma and beta. `y` may equal `x`.
void GroupNorm(const float* x, const float* gamma, const float* beta, int64_t groups,
               int64_t group_size, float eps, float* y);

// y = x / max(‖x‖₂, min_norm) over each group of `group_size` contiguous values (PyTorch
// F.normalize). `y` may equal `x`.
void L2NormalizeGroups(const float* x, int64_t groups, int64_t group_size, float min_norm,
                       float* y);

// Element-wise transcendental functions over n values; `y` may equal `x`. The SIMD versions
// are within a few units in the last place of the correctly rounded result (exp, sigmoid) and
// within 1e-7 absolute of it (tanh, computed as 1 − 2/(e^{2x} + 1)).
void Exp(const float* x, float* y, int64_t n);
void Sigmoid(const float* x, float* y, int64_t n);  // 1 / (1 + e^{−x})
void Tanh(const float* x, float* y, int64_t n);

// The inputs of the WKV-7 state update for one head over `tokens` tokens. Token t's vectors
// (n values each) start at ptr + t·stride; y is written at y + t·y_stride.
struct Wkv7HeadArgs {
  float* state = nullptr;  // n×n, row i = value channel, column j = key channel; in/out
  int64_t n = 0;
  int64_t tokens = 0;
  int64_t stride = 0;
  const float* r = nullptr;
  const float* w = nullptr;  // decay, in (0, 1)
  const float* k = nullptr;
  const float* v = nullptr;
  const float* a = nullptr;  // −κ̂
  const float* b = nullptr;  // κ̂ ⊙ α
  float* y = nullptr;
  int64_t y_stride = 0;
};

// For each token in order (RWKV-7, spec §2.5), for each row i:
//   sa = Σ_j a[j]·S[i][j];  S[i][j] = S[i][j]·w[j] + k[j]·v[i] + sa·b[j];  y[i] = Σ_j S[i][j]·r[j]
void Wkv7Head(const Wkv7HeadArgs& args);

// The inputs of the RWKV-5.2/6 state update for one head over `tokens` tokens (spec §§3-4),
// laid out as for Wkv7HeadArgs. The bonus u is per key channel and the same for every token.
struct Wkv6HeadArgs {
  float* state = nullptr;  // n×n, row i = value channel, column j = key channel; in/out
  int64_t n = 0;
  int64_t tokens = 0;
  int64_t stride = 0;
  const float* r = nullptr;
  const float* w = nullptr;  // decay, in (0, 1); per token (v6) or repeated (v5.2)
  int64_t w_stride = 0;      // 0: the same decay for every token (v5.2)
  const float* k = nullptr;
  const float* v = nullptr;
  const float* u = nullptr;  // n values: the bonus of the current token
  float* y = nullptr;
  int64_t y_stride = 0;
};

// For each token in order, for each row i: the output reads the OLD state plus the bonus,
//   y[i] = Σ_j r[j]·(S[i][j] + u[j]·k[j]·v[i]);   then  S[i][j] = S[i][j]·w[j] + k[j]·v[i].
void Wkv6Head(const Wkv6HeadArgs& args);

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_KERNELS_H_
