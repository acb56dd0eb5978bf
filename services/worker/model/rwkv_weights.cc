#include "services/worker/model/rwkv_weights.h"

#include <sys/mman.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/absl_bridge.h"
#include "base/dtype.h"
#include "base/hash.h"

namespace skein::model {
namespace {

using kernels::WeightMatrix;

constexpr float kLayerNormEps = 1e-5f;

uint64_t Fingerprint(const TensorArchive& archive, kernels::ThreadPool* pool) {
  std::vector<const TensorView*> sorted;
  for (const TensorView& t : archive.tensors()) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorView* a, const TensorView* b) { return a->name < b->name; });
  // Every byte of every tensor, each tensor hashed on its own (in parallel: the whole model
  // is read once at load), then the per-tensor digests combined in name order with the
  // names, dtypes and shapes.
  std::vector<uint64_t> digests(sorted.size());
  auto hash = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      digests[i] = base::Xxh3_64(sorted[i]->data, sorted[i]->nbytes);
    }
  };
  if (pool != nullptr) {
    pool->ParallelFor(static_cast<int64_t>(sorted.size()), 1, hash);
  } else {
    hash(0, static_cast<int64_t>(sorted.size()));
  }
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  for (size_t i = 0; i < sorted.size(); ++i) {
    const TensorView* t = sorted[i];
    XXH3_64bits_update(state, t->name.data(), t->name.size() + 1);
    const int32_t dtype = static_cast<int32_t>(t->dtype);
    XXH3_64bits_update(state, &dtype, sizeof(dtype));
    const uint64_t rank = t->shape.size();
    XXH3_64bits_update(state, &rank, sizeof(rank));
    XXH3_64bits_update(state, t->shape.data(), t->shape.size() * sizeof(int64_t));
    XXH3_64bits_update(state, &digests[i], sizeof(digests[i]));
  }
  const uint64_t digest = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return digest;
}

}  // namespace

// Builds the weights; owns the conversions.
class RwkvWeightsBuilder {
 public:
  // `pack_panels`: store bf16 matrices as packed panels; `pack_int8_panels`: the same for
  // int8 matrices; `lora_panels`: store the LoRAs as bf16 panels (on `pool`'s threads when
  // given).
  RwkvWeightsBuilder(RwkvWeights* w, bool pack_panels, bool pack_int8_panels, bool lora_panels,
                     kernels::ThreadPool* pool)
      : w_(w),
        archive_(*w->archive_),
        pack_panels_(pack_panels),
        pack_int8_panels_(pack_int8_panels),
        lora_panels_(lora_panels),
        pool_(pool) {}

  // C-value (or n-value) fp32 vector; in place when stored as aligned fp32.
  const float* Vector(const std::string& name) {
    const TensorView* t = archive_.Find(name);
    if (t->dtype == DType::kF32 && reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0) {
      return static_cast<const float*>(t->data);
    }
    float* out = static_cast<float*>(Allocate(t->numel() * sizeof(float)));
    base::ConvertElements(t->dtype, t->data, DType::kF32, out, t->numel());
    return out;
  }

  // [rows, cols] matrix in the run dtype.
  WeightMatrix Matrix(const std::string& name) {
    const TensorView* t = archive_.Find(name);
    if (t->dtype == DType::kI8) return StoredInt8Matrix(*t);
    const int64_t rows = t->shape[0], cols = t->shape[1];
    const DType run = w_->run_dtype_;
    if (run == DType::kI8) {
      // Per-output-row symmetric int8, quantised from the stored values as they are.
      WeightMatrix stored{t->data, t->dtype, rows, cols, cols};
      std::vector<int8_t> unpacked;  // the row-major copy, when only panels will keep it
      auto* q = pack_int8_panels_
                    ? (unpacked.resize(rows * cols), unpacked.data())
                    : static_cast<int8_t*>(Allocate(static_cast<size_t>(rows * cols)));
      auto* scales = static_cast<float*>(Allocate(static_cast<size_t>(rows) * sizeof(float)));
      kernels::QuantizeRowsInt8(stored, q, scales, pool_);
      WeightMatrix m{q, DType::kI8, rows, cols, cols};
      m.scales = scales;
      if (pack_int8_panels_) {
        m.panels = Pack(m);
        m.data = nullptr;
      }
      return m;
    }
    WeightMatrix m{nullptr, run, rows, cols, cols};
    if (t->dtype == run && reinterpret_cast<uintptr_t>(t->data) % DTypeSize(run) == 0) {
      m.data = t->data;
      if (pack_panels_) m.panels = Pack(m);
      return m;
    }
    if (pack_panels_) {
      // Converted only to be packed: the row-major copy is not kept.
      std::vector<uint16_t> converted(rows * cols);
      base::ConvertElements(t->dtype, t->data, run, converted.data(), rows * cols);
      m.data = converted.data();
      m.panels = Pack(m);
      m.data = nullptr;
      return m;
    }
    void* out = Allocate(rows * cols * DTypeSize(run));
    base::ConvertElements(t->dtype, t->data, run, out, rows * cols);
    m.data = out;
    return m;
  }

  // A C-value fp32 vector computed from a stored one, element by element, in fp32.
  template <typename F>
  const float* Derived(const std::string& name, F f) {
    const TensorView* t = archive_.Find(name);
    float* out = static_cast<float*>(Allocate(t->numel() * sizeof(float)));
    base::ConvertElements(t->dtype, t->data, DType::kF32, out, t->numel());
    for (int64_t i = 0; i < t->numel(); ++i) out[i] = f(out[i]);
    return out;
  }

  // A LoRA stored [in, out] (or the `slice`-th [in, out] matrix of a stack of them, as
  // x060's time_maa_w2 [5, in, out]), as an [out, in] matrix: bf16 panels with `lora_panels`,
  // fp32 rows otherwise.
  WeightMatrix Transposed(const std::string& name, int64_t slice = 0) {
    const TensorView* t = archive_.Find(name);
    const size_t rank = t->shape.size();
    const int64_t in = t->shape[rank - 2], out_dim = t->shape[rank - 1];
    std::vector<float> stored(in * out_dim);
    base::ConvertElements(
        t->dtype, static_cast<const uint8_t*>(t->data) + slice * in * out_dim * DTypeSize(t->dtype),
        DType::kF32, stored.data(), stored.size());
    std::vector<float> unpacked;  // the fp32 rows, when only panels will keep them
    float* out = lora_panels_ ? (unpacked.resize(in * out_dim), unpacked.data())
                              : static_cast<float*>(Allocate(in * out_dim * sizeof(float)));
    for (int64_t i = 0; i < in; ++i) {
      for (int64_t o = 0; o < out_dim; ++o) out[o * in + i] = stored[i * out_dim + o];
    }
    if (lora_panels_) {
      // Packed runs take the LoRAs in bf16 too, as the reference's bf16 runs do: a bf16
      // checkpoint loses nothing by it, and int8 runs round far more in their big matrices.
      // Only the panels are kept.
      std::vector<uint16_t> narrowed(in * out_dim);
      base::ConvertElements(DType::kF32, out, DType::kBF16, narrowed.data(), narrowed.size());
      WeightMatrix m{narrowed.data(), DType::kBF16, out_dim, in, in};
      m.panels = Pack(m);
      m.data = nullptr;
      return m;
    }
    return WeightMatrix{out, DType::kF32, out_dim, in, in};
  }

 private:
  // A matrix stored as int8 with its row scales (LoadRwkvConfig checked both): used in place
  // when running int8, otherwise widened to the run dtype as scale · q, rounded once.
  WeightMatrix StoredInt8Matrix(const TensorView& t) {
    const int64_t rows = t.shape[0], cols = t.shape[1];
    const float* scales = Vector(Int8ScaleName(t.name));
    const DType run = w_->run_dtype_;
    if (run == DType::kI8) {
      WeightMatrix m{t.data, DType::kI8, rows, cols, cols};
      m.scales = scales;
      if (pack_int8_panels_) m.panels = Pack(m);
      return m;
    }
    std::vector<uint16_t> narrow;  // bf16 copy that only panels will keep
    void* out = pack_panels_ ? (narrow.resize(rows * cols), narrow.data())
                             : Allocate(rows * cols * DTypeSize(run));
    kernels::DequantizeRowsInt8(static_cast<const int8_t*>(t.data), scales, rows, cols, run, out);
    WeightMatrix m{out, run, rows, cols, cols};
    if (pack_panels_) {
      m.panels = Pack(m);
      m.data = nullptr;
    }
    return m;
  }

  // The panels of bf16 or int8 matrix `m` (by its type).
  const uint32_t* Pack(const WeightMatrix& m) {
    const bool int8 = m.type == DType::kI8;
    const int64_t words =
        int8 ? kernels::Int8PanelWords(m.rows, m.cols) : kernels::Bf16PanelWords(m.rows, m.cols);
    auto* panels = static_cast<uint32_t*>(Allocate(words * sizeof(uint32_t)));
    if (int8) {
      kernels::PackInt8Panels(m, panels, pool_);
    } else {
      kernels::PackBf16Panels(m, panels, pool_);
    }
    return panels;
  }

  void* Allocate(size_t bytes) {
    // Large buffers on huge pages where the kernel allows them: filling hundreds of MB of
    // fresh 4 KiB pages costs a page fault each, which dominated load time on VMs.
    constexpr size_t kHugePage = size_t{2} << 20;
    const size_t align = bytes >= kHugePage ? kHugePage : 64;
    const size_t rounded = (std::max<size_t>(bytes, 1) + align - 1) / align * align;
    void* p = std::aligned_alloc(align, rounded);
    if (p == nullptr) throw std::bad_alloc();
    if (align == kHugePage) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: may be ignored
    w_->owned_.emplace_back(static_cast<uint8_t*>(p), &std::free);
    return p;
  }

  RwkvWeights* w_;
  const TensorArchive& archive_;
  const bool pack_panels_;
  const bool pack_int8_panels_;
  const bool lora_panels_;
  kernels::ThreadPool* const pool_;
};

namespace {

// What every version's layer has: the two LayerNorms and the projections every version names
// alike (att receptance/key/value/output, ffn key/value).
RwkvLayerWeights LoadSharedLayerParts(RwkvWeightsBuilder& b, const std::string& p) {
  RwkvLayerWeights lw{};
  lw.ln1_w = b.Vector(p + "ln1.weight");
  lw.ln1_b = b.Vector(p + "ln1.bias");
  lw.ln2_w = b.Vector(p + "ln2.weight");
  lw.ln2_b = b.Vector(p + "ln2.bias");
  lw.receptance = b.Matrix(p + "att.receptance.weight");
  lw.key = b.Matrix(p + "att.key.weight");
  lw.value = b.Matrix(p + "att.value.weight");
  lw.output = b.Matrix(p + "att.output.weight");
  lw.ffn_key = b.Matrix(p + "ffn.key.weight");
  lw.ffn_value = b.Matrix(p + "ffn.value.weight");
  return lw;
}

// An x070 layer (spec §2.2).
RwkvLayerWeights LoadX070Layer(RwkvWeightsBuilder& b, const std::string& p, int l) {
  RwkvLayerWeights lw = LoadSharedLayerParts(b, p);
  lw.x_r = b.Vector(p + "att.x_r");
  lw.x_w = b.Vector(p + "att.x_w");
  lw.x_k = b.Vector(p + "att.x_k");
  lw.x_v = b.Vector(p + "att.x_v");
  lw.x_a = b.Vector(p + "att.x_a");
  lw.x_g = b.Vector(p + "att.x_g");
  lw.w0 = b.Vector(p + "att.w0");
  lw.a0 = b.Vector(p + "att.a0");
  lw.k_k = b.Vector(p + "att.k_k");
  lw.k_a = b.Vector(p + "att.k_a");
  lw.r_k = b.Vector(p + "att.r_k");
  lw.ln_x_w = b.Vector(p + "att.ln_x.weight");
  lw.ln_x_b = b.Vector(p + "att.ln_x.bias");
  lw.ffn_x_k = b.Vector(p + "ffn.x_k");
  lw.w1 = b.Transposed(p + "att.w1");
  lw.w2 = b.Transposed(p + "att.w2");
  lw.a1 = b.Transposed(p + "att.a1");
  lw.a2 = b.Transposed(p + "att.a2");
  lw.g1 = b.Transposed(p + "att.g1");
  lw.g2 = b.Transposed(p + "att.g2");
  if (l > 0) {
    lw.v0 = b.Vector(p + "att.v0");
    lw.v1 = b.Transposed(p + "att.v1");
    lw.v2 = b.Transposed(p + "att.v2");
  }
  return lw;
}

// An RWKV-4, x052 or x060 layer (spec §§3-5).
RwkvLayerWeights LoadClassicLayer(RwkvWeightsBuilder& b, const std::string& p,
                                  RwkvVersion version) {
  RwkvLayerWeights lw = LoadSharedLayerParts(b, p);
  const auto one_minus = [](float mu) { return 1.0f - mu; };
  lw.ffn_receptance = b.Matrix(p + "ffn.receptance.weight");
  switch (version) {
    case RwkvVersion::kV4:
      lw.x_k = b.Derived(p + "att.time_mix_k", one_minus);
      lw.x_v = b.Derived(p + "att.time_mix_v", one_minus);
      lw.x_r = b.Derived(p + "att.time_mix_r", one_minus);
      lw.ffn_x_k = b.Derived(p + "ffn.time_mix_k", one_minus);
      lw.ffn_x_r = b.Derived(p + "ffn.time_mix_r", one_minus);
      lw.time_decay = b.Derived(p + "att.time_decay", [](float d) { return -std::exp(d); });
      lw.bonus = b.Vector(p + "att.time_first");
      break;
    case RwkvVersion::kV5_2:
      lw.x_k = b.Derived(p + "att.time_mix_k", one_minus);
      lw.x_v = b.Derived(p + "att.time_mix_v", one_minus);
      lw.x_r = b.Derived(p + "att.time_mix_r", one_minus);
      lw.x_g = b.Derived(p + "att.time_mix_g", one_minus);
      lw.ffn_x_k = b.Derived(p + "ffn.time_mix_k", one_minus);
      lw.ffn_x_r = b.Derived(p + "ffn.time_mix_r", one_minus);
      lw.time_decay =
          b.Derived(p + "att.time_decay", [](float d) { return std::exp(-std::exp(d)); });
      break;
    case RwkvVersion::kV6:
      lw.maa_x = b.Vector(p + "att.time_maa_x");
      lw.x_w = b.Vector(p + "att.time_maa_w");
      lw.x_k = b.Vector(p + "att.time_maa_k");
      lw.x_v = b.Vector(p + "att.time_maa_v");
      lw.x_r = b.Vector(p + "att.time_maa_r");
      lw.x_g = b.Vector(p + "att.time_maa_g");
      lw.ffn_x_k = b.Vector(p + "ffn.time_maa_k");
      lw.ffn_x_r = b.Vector(p + "ffn.time_maa_r");
      lw.time_decay = b.Vector(p + "att.time_decay");
      lw.maa_w1 = b.Transposed(p + "att.time_maa_w1");
      for (int64_t i = 0; i < 5; ++i) lw.maa_w2[i] = b.Transposed(p + "att.time_maa_w2", i);
      lw.decay_w1 = b.Transposed(p + "att.time_decay_w1");
      lw.decay_w2 = b.Transposed(p + "att.time_decay_w2");
      break;
    default:
      break;
  }
  if (version != RwkvVersion::kV4) {
    lw.bonus = b.Vector(p + "att.time_faaaa");
    lw.gate = b.Matrix(p + "att.gate.weight");
    lw.ln_x_w = b.Vector(p + "att.ln_x.weight");
    lw.ln_x_b = b.Vector(p + "att.ln_x.bias");
  }
  return lw;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RwkvWeights>> RwkvWeights::Load(
    std::shared_ptr<const TensorArchive> archive, const RwkvLoadOptions& options) {
  if (archive == nullptr) return absl::InvalidArgumentError("no checkpoint given");
  absl::StatusOr<RwkvConfig> config = LoadRwkvConfig(*archive);
  if (!config.ok()) return config.status();
  const int layers = static_cast<int>(config->n_layer);
  const int last = options.last_layer < 0 ? layers : options.last_layer;
  if (options.first_layer < 0 || options.first_layer >= last || last > layers) {
    return absl::InvalidArgumentError(
        absl::StrCat(archive->path(), ": layer range [", options.first_layer, ", ", last,
                     ") is not a non-empty part of the model's ", layers, " layers"));
  }
  std::unique_ptr<RwkvWeights> w(new RwkvWeights());
  w->archive_ = std::move(archive);
  w->config_ = *config;
  w->first_layer_ = options.first_layer;
  w->last_layer_ = last;
  w->run_dtype_ = options.run_dtype;
  w->fingerprint_ = Fingerprint(*w->archive_, options.pool);

  const bool bf16_panels = options.bf16_panels && kernels::Bf16PanelsAccelerated();
  const bool int8_panels =
      options.int8_panels && options.run_dtype == DType::kI8 && kernels::Int8PanelsAccelerated();
  // int8 runs keep fp32 activations in the LoRAs (for the decay), so their products are
  // exact-activation bf16 ones: half the bytes of fp32 weights at the same arithmetic.
  RwkvWeightsBuilder b(w.get(), bf16_panels && options.run_dtype == DType::kBF16, int8_panels,
                       bf16_panels && (options.run_dtype == DType::kBF16 || int8_panels),
                       options.pool);
  if (w->has_embedding()) {
    w->emb_ = w->archive_->Find("emb.weight");
    w->ln0_w_ = b.Vector("blocks.0.ln0.weight");
    w->ln0_b_ = b.Vector("blocks.0.ln0.bias");
  }
  if (w->has_head()) {
    w->ln_out_w_ = b.Vector("ln_out.weight");
    w->ln_out_b_ = b.Vector("ln_out.bias");
    w->head_ = b.Matrix("head.weight");
  }
  for (int l = w->first_layer_; l < w->last_layer_; ++l) {
    const std::string p = absl::StrCat("blocks.", l, ".");
    w->layers_.push_back(w->version() == RwkvVersion::kV7 ? LoadX070Layer(b, p, l)
                                                          : LoadClassicLayer(b, p, w->version()));
  }
  return w;
}

StateShape RwkvWeights::state_shape() const {
  // RWKV-4 has no heads: heads = head size = 0 selects its per-channel state layout.
  return StateShape{first_layer_, last_layer_, config_.n_embd, config_.n_head, config_.head_size};
}

void RwkvWeights::Embed(int64_t token, float* out) const {
  const int64_t C = config_.n_embd;
  base::ConvertElements(
      emb_->dtype, static_cast<const uint8_t*>(emb_->data) + token * C * DTypeSize(emb_->dtype),
      DType::kF32, out, C);
  kernels::LayerNorm(out, ln0_w_, ln0_b_, C, kLayerNormEps, out);
}

namespace {

// Every matrix a layer multiplies by (those a version lacks are empty).
std::array<const WeightMatrix*, 24> LayerMatrices(const RwkvLayerWeights& l) {
  return {&l.receptance, &l.key,       &l.value,     &l.output,    &l.ffn_key,
          &l.ffn_value,  &l.w1,        &l.w2,        &l.a1,        &l.a2,
          &l.g1,         &l.g2,        &l.v1,        &l.v2,        &l.ffn_receptance,
          &l.gate,       &l.maa_w1,    &l.maa_w2[0], &l.maa_w2[1], &l.maa_w2[2],
          &l.maa_w2[3],  &l.maa_w2[4], &l.decay_w1,  &l.decay_w2};
}

}  // namespace

int64_t RwkvWeights::layer_multiply_adds_per_token() const {
  int64_t macs = 0;
  for (const RwkvLayerWeights& l : layers_) {
    for (const WeightMatrix* m : LayerMatrices(l)) macs += m->rows * m->cols;
  }
  return macs;
}

int64_t RwkvWeights::head_multiply_adds_per_row() const {
  return has_head() ? head_.rows * head_.cols : 0;
}

int64_t RwkvWeights::bytes_read_per_token() const {
  const int64_t C = config_.n_embd;
  int64_t bytes = 0;
  for (const RwkvLayerWeights& l : layers_) {
    for (const WeightMatrix* m : LayerMatrices(l)) bytes += static_cast<int64_t>(m->bytes());
    bytes += 20 * C * static_cast<int64_t>(sizeof(float));  // vectors and norms
  }
  if (has_embedding()) bytes += C * static_cast<int64_t>(DTypeSize(emb_->dtype) + 8);
  if (has_head()) {
    bytes += static_cast<int64_t>(head_.bytes());
    bytes += 2 * C * static_cast<int64_t>(sizeof(float));
  }
  return bytes;
}

}  // namespace skein::model
