#include "kernels/cpu/kernels.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <utility>
#include <vector>

#include "kernels/cpu/bf16_panels_internal.h"
#include "kernels/cpu/int8_panels_internal.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/kernels_bf16.h"
#include "kernels/cpu/tile_products.h"
#include "kernels/cpu/tile_products_internal.h"

namespace skein::kernels {
namespace {

// Pieces of a product handed to threads are multiples of this many output rows (a multiple
// of every register tile and panel width), except at the end of a matrix.
constexpr int64_t kRowAlign = 48;
// The panel kernels need pieces that start on a panel.
static_assert(kRowAlign % kBf16PanelRows == 0 && kRowAlign % kInt8PanelRows == 0);
// Pieces per thread: enough that threads finishing early (or starting late, on a busy
// machine) can pick up the slack.
constexpr int64_t kPiecesPerThread = 4;
// Below this many multiply-adds in total a call runs on the calling thread: waking the
// workers would cost more than it saves.
constexpr int64_t kMinParallelWork = 16 * 1024;

// Relative cost of one output row of `job`: its weight bytes (what decode is bound by) plus
// its multiply-adds (what large batches are bound by), scaled to comparable units.
int64_t RowCost(const MatMulJob& job) {
  return job.w.cols * (static_cast<int64_t>(DTypeSize(job.w.type)) + job.batch);
}

// Batches from which the bf16 dot-product kernel pays off (it packs both operands).
constexpr int64_t kMinBf16DotBatch = 4;

bool UseBf16Dot(const MatMulJob& job) {
  return job.bf16_activations && job.w.type == DType::kBF16 && job.batch >= kMinBf16DotBatch &&
         Bf16PanelsAccelerated();
}

// Which kernel runs a product with panels, and how its activations are prepared once per
// call before its pieces use them. Decided once per call (from one reading of the tile
// policy) and handed to every piece, so the buffer, its conversion and the kernel agree.
enum class PanelPath : uint8_t {
  kVector,       // the vector kernel (or the portable loop) on fp32 activations
  kVectorPairs,  // the AVX512_BF16 kernel on activations rounded to bf16 pairs
  kTiles,        // the tile unit on activations split into bf16 parts
};

struct ProductPlan {
  PanelPath path = PanelPath::kVector;
  bool emulate_tiles = false;  // kTiles on the software model (tests)
};

ProductPlan PlanFor(const MatMulJob& job, const TilePolicy& policy) {
  ProductPlan plan;
  if (job.w.panels == nullptr || job.w.type != DType::kBF16 || job.w.cols <= 0 || job.batch <= 0) {
    return plan;
  }
  const int64_t min_batch =
      job.bf16_activations ? policy.min_batch_rounded : policy.min_batch_exact;
  const bool wanted = job.tiles == MatMulJob::Tiles::kUse ||
                      (job.tiles == MatMulJob::Tiles::kPolicy && job.batch >= min_batch);
  if (wanted &&
      (policy.emulate || (AmxTilesAvailable() && ActiveIsaLevel() == IsaLevel::kAvx512))) {
    plan.path = PanelPath::kTiles;
    plan.emulate_tiles = policy.emulate;
  } else if (job.bf16_activations && Bf16PanelsAccelerated()) {
    plan.path = PanelPath::kVectorPairs;
  }
  return plan;
}

// bf16 parts per activation in a tile product (tile_products.h).
int TileParts(const MatMulJob& job) { return job.bf16_activations ? 1 : kExactBf16Parts; }

// Whether `job` runs on int8 activations (needs a quantised copy of its x).
bool UsesInt8Activations(const MatMulJob& job) {
  return job.int8_activations && job.w.type == DType::kI8 && job.batch > 0 && job.w.rows > 0;
}

// `converted`: the batch's activations as bf16 pairs (ConvertToBf16Pairs) or bf16 parts
// (SplitToBf16Parts) as `plan` says, or null (the kernel converts them itself). `xq`:
// the batch's activations quantised to int8 (UsesInt8Activations), or null; with int8
// panels, its corrections are set where the VNNI panel kernel runs.
void RunRows(const KernelTable& table, const MatMulJob& job, const ProductPlan& plan,
             const uint32_t* converted, const Int8ActivationRows* xq, int64_t begin, int64_t end) {
  if (job.w.type == DType::kI8 && job.w.panels != nullptr) {
    if (xq != nullptr && xq->corrections != nullptr) {
      MatMulInt8PanelsAvx512Vnni(job, *xq, begin, end);
    } else if (xq == nullptr && Int8PanelsAccelerated()) {
      MatMulInt8PanelsFp32Avx512(job, begin, end);
    } else {
      MatMulInt8PanelsPortable(job, xq, begin, end);
    }
    return;
  }
  if (xq != nullptr) {
    ActiveInt8Dot().matmul(job, *xq, 0, job.batch, begin, end);
    return;
  }
  if (job.w.panels != nullptr) {
    if (plan.path == PanelPath::kTiles) {
      const auto tile_kernel =
          plan.emulate_tiles ? &MatMulBf16PanelsTileModel : &MatMulBf16PanelsAmx;
      tile_kernel(job, converted, TileParts(job), begin, end);
    } else if (Bf16PanelsAccelerated()) {
      MatMulBf16PanelsAvx512(job, converted, begin, end);
    } else {
      MatMulBf16PanelsPortable(job, begin, end);
    }
    return;
  }
  if (UseBf16Dot(job)) {
    MatMulBf16Dot(job, 0, job.batch, begin, end);
  } else {
    table.matmul(job, 0, job.batch, begin, end);
  }
}

// int8 jobs without their scales are caller bugs that would otherwise read garbage: stop
// with a message instead.
void CheckInt8Job(const MatMulJob& job) {
  if (job.w.type != DType::kI8 || job.batch <= 0 || job.w.rows <= 0) return;
  if (job.w.scales == nullptr) {
    std::fprintf(stderr, "MatMul: an int8 weight matrix needs scales\n");
    std::abort();
  }
}

struct Piece {
  const MatMulJob* job;
  const ProductPlan* plan;
  const uint32_t* converted;
  const Int8ActivationRows* xq;
  int64_t begin, end;
};

// Rows of activations one thread converts to bf16 pairs (or parts) at a time: a multiple of
// kTileRows, as SplitToBf16Parts's pieces must be.
constexpr int64_t kConvertRows = 16;
static_assert(kConvertRows % kTileRows == 0);

// The int8 quantisations of one MatMulMany call's activations: one per distinct (x, ldx,
// batch, cols) among its int8-activation jobs, in buffers kept per calling thread.
class Int8ActivationSet {
 public:
  // Finds or adds the quantised copy of `job`'s x (the pointer stays valid until Reset);
  // QuantizeAll fills it, with the block corrections of int8 panels when `corrections`.
  const Int8ActivationRows* For(const MatMulJob& job, bool corrections) {
    for (size_t i = 0; i < used_; ++i) {
      Entry& e = entries_[i];
      if (e.x == job.x && e.ldx == job.ldx && e.batch == job.batch && e.cols == job.w.cols) {
        if (corrections) AddCorrections(e);
        return &e.rows;
      }
    }
    if (used_ == entries_.size()) entries_.emplace_back();
    Entry& e = entries_[used_++];
    e.x = job.x;
    e.ldx = job.ldx;
    e.batch = job.batch;
    e.cols = job.w.cols;
    const int64_t ldq = Int8ActivationRowBytes(e.cols);
    // Grown only: the buffers keep their capacity from call to call.
    if (e.q.size() < static_cast<size_t>(e.batch * ldq)) e.q.resize(e.batch * ldq);
    const size_t scales = static_cast<size_t>(e.batch * (ldq / kInt8ActivationBlock));
    if (e.scales.size() < scales) e.scales.resize(scales);
    e.rows = {e.q.data(), e.scales.data(), ldq, nullptr};
    if (corrections) AddCorrections(e);
    return &e.rows;
  }

  // Quantises every entry, in pieces of about kQuantizeValues values over `pool` when given.
  void QuantizeAll(ThreadPool* pool) {
    std::vector<std::pair<size_t, int64_t>> pieces;  // (entry, first row)
    int64_t values = 0;
    for (size_t i = 0; i < used_; ++i) {
      const Entry& e = entries_[i];
      const int64_t rows = RowsPerPiece(e);
      for (int64_t b = 0; b < e.batch; b += rows) pieces.emplace_back(i, b);
      values += e.batch * e.cols;
    }
    // The active variant's quantiser (bit for bit the portable one, faster) where it has one.
    const Int8DotTable& table = ActiveInt8Dot();
    const auto quantize = table.quantize ? table.quantize : &QuantizeActivationsInt8;
    const auto run = [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const auto [i, b] = pieces[p];
        Entry& e = entries_[i];
        const int64_t rows = std::min(RowsPerPiece(e), e.batch - b);
        const int64_t ldb = e.rows.ldq / kInt8ActivationBlock;
        quantize(e.x + b * e.ldx, e.ldx, rows, e.cols, e.q.data() + b * e.rows.ldq,
                 e.scales.data() + b * ldb);
        if (e.rows.corrections != nullptr) {
          Int8PanelCorrections(e.q.data() + b * e.rows.ldq, e.rows.ldq, rows,
                               e.corrections.data() + b * ldb);
        }
      }
    };
    // A few rows cost less to quantise than to wake the workers for.
    if (pool == nullptr || pool->num_threads() == 1 || values < kQuantizeValues) {
      run(0, static_cast<int64_t>(pieces.size()));
    } else {
      pool->ParallelFor(static_cast<int64_t>(pieces.size()), 1, run);
    }
  }

  void Reset() { used_ = 0; }

 private:
  static constexpr int64_t kQuantizeValues = 16 * 1024;
  struct Entry {
    const float* x = nullptr;
    int64_t ldx = 0, batch = 0, cols = 0;
    std::vector<int8_t> q;
    std::vector<float> scales;
    std::vector<int32_t> corrections;
    Int8ActivationRows rows;
  };
  static void AddCorrections(Entry& e) {
    const size_t n = static_cast<size_t>(e.batch * (e.rows.ldq / kInt8ActivationBlock));
    if (e.corrections.size() < n) e.corrections.resize(n);
    e.rows.corrections = e.corrections.data();
  }
  static int64_t RowsPerPiece(const Entry& e) {
    return std::max<int64_t>(1, kQuantizeValues / std::max<int64_t>(1, e.cols));
  }
  // A deque: For hands out pointers into entries that later additions must not move.
  std::deque<Entry> entries_;
  size_t used_ = 0;
};

}  // namespace

bool Int8PanelsAccelerated() {
  static const bool available = HaveInt8PanelKernels() && Int8DotRuns(Int8DotIsa::kAvx512Vnni);
  return available && ActiveIsaLevel() == IsaLevel::kAvx512;
}

bool Bf16PanelsAccelerated() {
  static const bool available =
      HaveBf16DotKernels() && DetectCpuFeatures().avx512_bf16 && KernelsFor(IsaLevel::kAvx512);
  return available && ActiveIsaLevel() == IsaLevel::kAvx512;
}

const KernelTable* KernelsFor(IsaLevel level) {
  switch (level) {
    case IsaLevel::kScalar:
      return ScalarKernels();
    case IsaLevel::kAvx2:
      return Avx2Kernels();
    case IsaLevel::kAvx512:
      return Avx512Kernels();
  }
  return nullptr;
}

const Int8DotTable* Int8DotFor(Int8DotIsa isa) {
  switch (isa) {
    case Int8DotIsa::kScalar:
      return ScalarInt8Dot();
    case Int8DotIsa::kAvx2:
      return Avx2Int8Dot();
    case Int8DotIsa::kAvxVnni:
      return AvxVnniInt8Dot();
    case Int8DotIsa::kAvx512Vnni:
      return Avx512VnniInt8Dot();
  }
  return nullptr;
}

bool Int8DotRuns(Int8DotIsa isa) {
  if (Int8DotFor(isa) == nullptr) return false;
  const CpuFeatures& f = DetectCpuFeatures();
  const IsaLevel best = SupportedIsaLevel();
  switch (isa) {
    case Int8DotIsa::kScalar:
      return true;
    case Int8DotIsa::kAvx2:
      return best >= IsaLevel::kAvx2;
    case Int8DotIsa::kAvxVnni:
      return best >= IsaLevel::kAvx2 && f.avx_vnni;
    case Int8DotIsa::kAvx512Vnni:
      return best >= IsaLevel::kAvx512 && f.avx512_vnni;
  }
  return false;
}

const Int8DotTable& ActiveInt8Dot() {
  // The VNNI forms count as extensions of the level they extend: forcing a lower level (as
  // tests and benchmarks do) turns them off with it. Resolved per call, like ActiveKernels.
  const IsaLevel level = ActiveIsaLevel();
  static const bool avx512_vnni = Int8DotRuns(Int8DotIsa::kAvx512Vnni);
  static const bool avx_vnni = Int8DotRuns(Int8DotIsa::kAvxVnni);
  static const bool avx2 = Int8DotRuns(Int8DotIsa::kAvx2);
  if (level >= IsaLevel::kAvx512 && avx512_vnni) return *Avx512VnniInt8Dot();
  if (level >= IsaLevel::kAvx2 && avx_vnni) return *AvxVnniInt8Dot();
  if (level >= IsaLevel::kAvx2 && avx2) return *Avx2Int8Dot();
  return *ScalarInt8Dot();
}

std::string_view Int8DotIsaName(Int8DotIsa isa) {
  switch (isa) {
    case Int8DotIsa::kScalar:
      return "scalar";
    case Int8DotIsa::kAvx2:
      return "avx2";
    case Int8DotIsa::kAvxVnni:
      return "avx_vnni";
    case Int8DotIsa::kAvx512Vnni:
      return "avx512_vnni";
  }
  return "unknown";
}

const KernelTable& ActiveKernels() {
  // Resolved per call (one relaxed load) so ForceIsaLevel takes effect immediately; a level
  // this build lacks falls back to the next lower one.
  for (int level = static_cast<int>(ActiveIsaLevel()); level > 0; --level) {
    if (const KernelTable* table = KernelsFor(static_cast<IsaLevel>(level))) return *table;
  }
  return *ScalarKernels();
}

void MatMul(const MatMulJob& job, ThreadPool* pool) { MatMulMany({&job, 1}, pool); }

void MatMulMany(absl::Span<const MatMulJob> jobs, ThreadPool* pool) {
  const KernelTable& table = ActiveKernels();
  int64_t total_cost = 0;
  int64_t total_macs = 0;
  // Activations of int8-activation jobs, quantised once per distinct x before any product
  // (so no piece of a job quantises its rows again). Kept per calling thread; pointers, not
  // the thread_local itself, go to the workers.
  static thread_local Int8ActivationSet int8_activations;
  int8_activations.Reset();
  std::vector<const Int8ActivationRows*> quantized(jobs.size(), nullptr);
  // One reading of the tile policy for the whole call (it may change between calls).
  const TilePolicy policy = GetTilePolicy();
  std::vector<ProductPlan> plans(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    const MatMulJob& job = jobs[i];
    CheckInt8Job(job);
    plans[i] = PlanFor(job, policy);
    total_cost += RowCost(job) * job.w.rows;
    total_macs += job.batch * job.w.rows * job.w.cols;
    if (UsesInt8Activations(job)) {
      // Decided once per call, like the plans: corrections set means the VNNI panel kernel.
      const bool panel_kernel = job.w.panels != nullptr && Int8PanelsAccelerated();
      quantized[i] = int8_activations.For(job, panel_kernel);
    }
  }
  const bool serial = pool == nullptr || pool->num_threads() == 1 || total_macs < kMinParallelWork;
  int8_activations.QuantizeAll(serial ? nullptr : pool);
  if (serial) {
    for (size_t i = 0; i < jobs.size(); ++i) {
      const MatMulJob& job = jobs[i];
      if (job.batch > 0 && job.w.rows > 0) {
        RunRows(table, job, plans[i], nullptr, quantized[i], 0, job.w.rows);
      }
    }
    return;
  }
  // Activations that several pieces would each round to bf16 (or split into bf16 parts) are
  // converted once, in parallel, before the products (a single row costs less to convert
  // than to share).
  static thread_local std::vector<std::vector<uint32_t>> converted_buffers;
  if (converted_buffers.size() < jobs.size()) converted_buffers.resize(jobs.size());
  // Pointers, not the thread_local itself, go to the workers (theirs is another object).
  std::vector<uint32_t*> converted(jobs.size(), nullptr);
  std::vector<std::pair<size_t, int64_t>> conversions;  // (job, first row)
  for (size_t i = 0; i < jobs.size(); ++i) {
    const MatMulJob& job = jobs[i];
    const PanelPath path = plans[i].path;
    if (job.batch < 2 || job.w.rows <= 0 || path == PanelPath::kVector) continue;
    std::vector<uint32_t>& buffer = converted_buffers[i];
    const size_t words = static_cast<size_t>(
        path == PanelPath::kTiles ? Bf16PartsWords(job.batch, job.w.cols, TileParts(job))
                                  : job.batch * Bf16PairStride(job.w.cols));
    if (buffer.size() < words) buffer.resize(words);
    converted[i] = buffer.data();
    for (int64_t b = 0; b < job.batch; b += kConvertRows) conversions.emplace_back(i, b);
  }
  if (!conversions.empty()) {
    pool->ParallelFor(static_cast<int64_t>(conversions.size()), 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const auto [i, b] = conversions[c];
        const MatMulJob& job = jobs[i];
        const int64_t end = std::min(job.batch, b + kConvertRows);
        if (plans[i].path == PanelPath::kTiles) {
          SplitToBf16Parts(job, TileParts(job), b, end, converted[i]);
        } else {
          ConvertToBf16Pairs(job, b, end, converted[i]);
        }
      }
    });
  }
  const int64_t piece_cost =
      std::max<int64_t>(1, total_cost / (kPiecesPerThread * pool->num_threads()));
  std::vector<Piece> pieces;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const MatMulJob& job = jobs[i];
    if (job.batch <= 0 || job.w.rows <= 0) continue;
    const int64_t rows = std::max<int64_t>(
        kRowAlign, (piece_cost / std::max<int64_t>(1, RowCost(job))) / kRowAlign * kRowAlign);
    for (int64_t begin = 0; begin < job.w.rows; begin += rows) {
      pieces.push_back(
          {&job, &plans[i], converted[i], quantized[i], begin, std::min(job.w.rows, begin + rows)});
    }
  }
  pool->ParallelFor(static_cast<int64_t>(pieces.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const Piece& p = pieces[i];
      RunRows(table, *p.job, *p.plan, p.converted, p.xq, p.begin, p.end);
    }
  });
}

void LayerNorm(const float* x, const float* gamma, const float* beta, int64_t n, float eps,
               float* y) {
  ActiveKernels().layer_norm(x, gamma, beta, n, eps, y);
}

void GroupNorm(const float* x, const float* gamma, const float* beta, int64_t groups,
               int64_t group_size, float eps, float* y) {
  const KernelTable& table = ActiveKernels();
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t off = g * group_size;
    table.layer_norm(x + off, gamma + off, beta + off, group_size, eps, y + off);
  }
}

void L2NormalizeGroups(const float* x, int64_t groups, int64_t group_size, float min_norm,
                       float* y) {
  const KernelTable& table = ActiveKernels();
  for (int64_t g = 0; g < groups; ++g) {
    table.l2_normalize(x + g * group_size, group_size, min_norm, y + g * group_size);
  }
}

void Wkv7Head(const Wkv7HeadArgs& args) { ActiveKernels().wkv7_head(args); }
void Wkv6Head(const Wkv6HeadArgs& args) { ActiveKernels().wkv6_head(args); }

void Exp(const float* x, float* y, int64_t n) { ActiveKernels().exp(x, y, n); }
void Sigmoid(const float* x, float* y, int64_t n) { ActiveKernels().sigmoid(x, y, n); }
void Tanh(const float* x, float* y, int64_t n) { ActiveKernels().tanh(x, y, n); }

}  // namespace skein::kernels
