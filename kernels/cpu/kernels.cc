#include "kernels/cpu/kernels.h"

#include <algorithm>

#include "kernels/cpu/kernel_table.h"

namespace skein::kernels {
namespace {

// Thread boundaries inside a product fall on multiples of this many output rows, so that
// register tiles are rarely cut.
constexpr int64_t kRowAlign = 16;
// Below this many multiply-adds in total a call runs on the calling thread: waking the
// workers would cost more than it saves.
constexpr int64_t kMinParallelWork = 16 * 1024;

// Relative cost of one output row of `job`: its weight bytes (what decode is bound by) plus
// its multiply-adds (what large batches are bound by), scaled to comparable units.
int64_t RowCost(const MatMulJob& job) {
  return job.w.cols * (static_cast<int64_t>(ElementSize(job.w.type)) + job.batch);
}

// A position in the concatenated rows of all jobs.
struct RowPosition {
  size_t job;
  int64_t row;
};

// The row where cumulative cost reaches `cost`, rounded to kRowAlign.
RowPosition Locate(absl::Span<const MatMulJob> jobs, int64_t cost) {
  for (size_t j = 0; j < jobs.size(); ++j) {
    const int64_t row_cost = RowCost(jobs[j]);
    const int64_t job_cost = row_cost * jobs[j].w.rows;
    if (cost < job_cost) {
      int64_t row = (cost / row_cost + kRowAlign / 2) / kRowAlign * kRowAlign;
      return {j, std::min(row, jobs[j].w.rows)};
    }
    cost -= job_cost;
  }
  return {jobs.size(), 0};
}

void RunRows(const KernelTable& table, absl::Span<const MatMulJob> jobs, RowPosition from,
             RowPosition to) {
  for (size_t j = from.job; j < jobs.size() && j <= to.job; ++j) {
    const MatMulJob& job = jobs[j];
    const int64_t begin = j == from.job ? from.row : 0;
    const int64_t end = j == to.job ? to.row : job.w.rows;
    if (begin < end && job.batch > 0) table.matmul(job, 0, job.batch, begin, end);
  }
}

}  // namespace

size_t ElementSize(ElementType type) { return type == ElementType::kF32 ? 4 : 2; }

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
  for (const MatMulJob& job : jobs) {
    total_cost += RowCost(job) * job.w.rows;
    total_macs += job.batch * job.w.rows * job.w.cols;
  }
  const RowPosition end = {jobs.size(), 0};
  if (pool == nullptr || pool->num_threads() == 1 || total_macs < kMinParallelWork) {
    RunRows(table, jobs, {0, 0}, end);
    return;
  }
  const int threads = pool->num_threads();
  pool->Run([&](int t) {
    const RowPosition from = t == 0 ? RowPosition{0, 0} : Locate(jobs, total_cost * t / threads);
    const RowPosition to =
        t == threads - 1 ? end : Locate(jobs, total_cost * (t + 1) / threads);
    RunRows(table, jobs, from, to);
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

void Exp(const float* x, float* y, int64_t n) { ActiveKernels().exp(x, y, n); }
void Sigmoid(const float* x, float* y, int64_t n) { ActiveKernels().sigmoid(x, y, n); }
void Tanh(const float* x, float* y, int64_t n) { ActiveKernels().tanh(x, y, n); }

}  // namespace skein::kernels
