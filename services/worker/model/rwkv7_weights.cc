#include "services/worker/model/rwkv7_weights.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/cpu/float_convert.h"
#include "services/worker/model/string_compat.h"

namespace skein::model {
namespace {

using kernels::ElementType;
using kernels::WeightMatrix;

constexpr float kLayerNormEps = 1e-5f;

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Layer index of "blocks.<l>.<rest>", with `rest`; -1 for other names.
int LayerOf(const std::string& name, std::string* rest) {
  constexpr std::string_view kPrefix = "blocks.";
  if (name.compare(0, kPrefix.size(), kPrefix) != 0) return -1;
  const size_t dot = name.find('.', kPrefix.size());
  if (dot == std::string::npos) return -1;
  int layer = 0;
  const std::string digits = name.substr(kPrefix.size(), dot - kPrefix.size());
  if (digits.empty() || digits.size() > 6 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      !absl::SimpleAtoi(digits, &layer)) {
    return -1;
  }
  *rest = name.substr(dot + 1);
  return layer;
}

// Per-layer tensors that are vectors of C values (stored [C], [1,1,C], …).
const std::vector<std::string>& LayerVectorNames() {
  static const auto* names = new std::vector<std::string>{
      "ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias", "att.x_r",      "att.x_w",
      "att.x_k",    "att.x_v",  "att.x_a",    "att.x_g",  "att.w0",       "att.a0",
      "att.k_k",    "att.k_a",  "att.ln_x.weight",        "att.ln_x.bias", "ffn.x_k"};
  return *names;
}

ElementType ToElementType(DType t) {
  switch (t) {
    case DType::kF32:
      return ElementType::kF32;
    case DType::kBF16:
      return ElementType::kBF16;
    case DType::kF16:
      return ElementType::kF16;
  }
  return ElementType::kF32;
}

float ElementToF32(const void* data, DType type, int64_t i) {
  switch (type) {
    case DType::kF32: {
      float f;
      std::memcpy(&f, static_cast<const uint8_t*>(data) + i * 4, 4);
      return f;
    }
    case DType::kBF16: {
      uint16_t h;
      std::memcpy(&h, static_cast<const uint8_t*>(data) + i * 2, 2);
      return kernels::Bf16ToF32(h);
    }
    case DType::kF16: {
      uint16_t h;
      std::memcpy(&h, static_cast<const uint8_t*>(data) + i * 2, 2);
      return kernels::F16ToF32(h);
    }
  }
  return 0.0f;
}

class Checker {
 public:
  explicit Checker(const TensorArchive& archive) : archive_(archive) {}

  absl::StatusOr<const TensorView*> Get(const std::string& name) const {
    const TensorView* t = archive_.Find(name);
    if (t == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(archive_.path(), ": RWKV-7 tensor '", name, "' is missing"));
    }
    return t;
  }

  absl::Status Expect(const std::string& name, const std::vector<int64_t>& shape) const {
    absl::StatusOr<const TensorView*> t = Get(name);
    if (!t.ok()) return t.status();
    if ((*t)->shape != shape) return BadShape(**t, ShapeString(shape));
    return absl::OkStatus();
  }

  // A vector of n values, stored with any number of leading 1-sized dimensions.
  absl::Status ExpectVector(const std::string& name, int64_t n) const {
    absl::StatusOr<const TensorView*> t = Get(name);
    if (!t.ok()) return t.status();
    const std::vector<int64_t>& s = (*t)->shape;
    bool ok = !s.empty() && s.back() == n;
    for (size_t i = 0; ok && i + 1 < s.size(); ++i) ok = s[i] == 1;
    if (!ok) return BadShape(**t, absl::StrCat("[", n, "] (or [1, 1, ", n, "])"));
    return absl::OkStatus();
  }

  absl::Status BadShape(const TensorView& t, const std::string& want) const {
    return absl::InvalidArgumentError(absl::StrCat(archive_.path(), ": tensor '", t.name,
                                                   "' has shape ", ShapeString(t.shape),
                                                   ", expected ", want));
  }

  absl::StatusOr<std::vector<int64_t>> Shape2(const std::string& name) const {
    absl::StatusOr<const TensorView*> t = Get(name);
    if (!t.ok()) return t.status();
    if ((*t)->shape.size() != 2) return BadShape(**t, "a matrix");
    return (*t)->shape;
  }

 private:
  const TensorArchive& archive_;
};

uint64_t Fingerprint(const TensorArchive& archive) {
  constexpr size_t kFullHashLimit = size_t{1} << 20;
  constexpr size_t kSample = 4096;
  constexpr size_t kSamples = 64;
  std::vector<const TensorView*> sorted;
  for (const TensorView& t : archive.tensors()) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorView* a, const TensorView* b) { return a->name < b->name; });
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  for (const TensorView* t : sorted) {
    XXH3_64bits_update(state, t->name.data(), t->name.size() + 1);
    const int32_t dtype = static_cast<int32_t>(t->dtype);
    XXH3_64bits_update(state, &dtype, sizeof(dtype));
    const uint64_t rank = t->shape.size();
    XXH3_64bits_update(state, &rank, sizeof(rank));
    XXH3_64bits_update(state, t->shape.data(), t->shape.size() * sizeof(int64_t));
    const auto* bytes = static_cast<const uint8_t*>(t->data);
    if (t->nbytes <= kFullHashLimit) {
      XXH3_64bits_update(state, bytes, t->nbytes);
    } else {
      for (size_t s = 0; s < kSamples; ++s) {
        const size_t offset = (t->nbytes - kSample) / (kSamples - 1) * s;
        XXH3_64bits_update(state, bytes + offset, kSample);
      }
    }
  }
  const uint64_t digest = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return digest;
}

}  // namespace

absl::StatusOr<Rwkv7Dims> ReadRwkv7Dims(const TensorArchive& archive) {
  Checker check(archive);
  Rwkv7Dims d;
  absl::StatusOr<std::vector<int64_t>> emb = check.Shape2("emb.weight");
  if (!emb.ok()) return emb.status();
  d.vocab = (*emb)[0];
  d.embd = (*emb)[1];
  absl::StatusOr<std::vector<int64_t>> rk = check.Shape2("blocks.0.att.r_k");
  if (!rk.ok()) return rk.status();
  d.heads = (*rk)[0];
  d.head_size = (*rk)[1];
  if (d.vocab <= 0 || d.embd <= 0 || d.heads <= 0 || d.head_size <= 0 ||
      d.heads * d.head_size != d.embd) {
    return absl::InvalidArgumentError(absl::StrCat(
        archive.path(), ": inconsistent dimensions: emb.weight ", ShapeString(*emb),
        ", blocks.0.att.r_k ", ShapeString(*rk), " (need C = H·N)"));
  }
  int max_layer = -1;
  for (const TensorView& t : archive.tensors()) {
    std::string rest;
    max_layer = std::max(max_layer, LayerOf(t.name, &rest));
  }
  d.layers = max_layer + 1;
  auto dim1 = [&](const std::string& name, int64_t* out) -> absl::Status {
    absl::StatusOr<std::vector<int64_t>> s = check.Shape2(name);
    if (!s.ok()) return s.status();
    *out = (*s)[1];
    return absl::OkStatus();
  };
  absl::StatusOr<std::vector<int64_t>> fk = check.Shape2("blocks.0.ffn.key.weight");
  if (!fk.ok()) return fk.status();
  d.ffn = (*fk)[0];
  for (auto [name, out] : {std::pair{"blocks.0.att.w1", &d.lora_w},
                           std::pair{"blocks.0.att.a1", &d.lora_a},
                           std::pair{"blocks.0.att.g1", &d.lora_g}}) {
    if (absl::Status s = dim1(name, out); !s.ok()) return s;
  }
  if (d.layers > 1) {
    if (absl::Status s = dim1("blocks.1.att.v1", &d.lora_v); !s.ok()) return s;
  }

  // Every tensor x070 has, with its shape; then nothing else.
  const int64_t C = d.embd;
  std::set<std::string> expected = {"emb.weight", "blocks.0.ln0.weight", "blocks.0.ln0.bias",
                                    "ln_out.weight", "ln_out.bias", "head.weight"};
  for (const char* name : {"blocks.0.ln0.weight", "blocks.0.ln0.bias", "ln_out.weight",
                           "ln_out.bias"}) {
    if (absl::Status s = check.ExpectVector(name, C); !s.ok()) return s;
  }
  if (absl::Status s = check.Expect("head.weight", {d.vocab, C}); !s.ok()) return s;
  for (int l = 0; l < d.layers; ++l) {
    const std::string p = absl::StrCat("blocks.", l, ".");
    auto expect = [&](const std::string& rest, std::vector<int64_t> shape) {
      expected.insert(p + rest);
      return check.Expect(p + rest, shape);
    };
    for (const std::string& rest : LayerVectorNames()) {
      expected.insert(p + rest);
      if (absl::Status s = check.ExpectVector(p + rest, C); !s.ok()) return s;
    }
    std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
        {"att.r_k", {d.heads, d.head_size}},
        {"att.receptance.weight", {C, C}},
        {"att.key.weight", {C, C}},
        {"att.value.weight", {C, C}},
        {"att.output.weight", {C, C}},
        {"ffn.key.weight", {d.ffn, C}},
        {"ffn.value.weight", {C, d.ffn}},
        {"att.w1", {C, d.lora_w}},
        {"att.w2", {d.lora_w, C}},
        {"att.a1", {C, d.lora_a}},
        {"att.a2", {d.lora_a, C}},
        {"att.g1", {C, d.lora_g}},
        {"att.g2", {d.lora_g, C}},
    };
    if (l > 0) {
      shapes.push_back({"att.v1", {C, d.lora_v}});
      shapes.push_back({"att.v2", {d.lora_v, C}});
      expected.insert(p + "att.v0");
      if (absl::Status s = check.ExpectVector(p + "att.v0", C); !s.ok()) return s;
    } else {
      // Layer 0's value-residual tensors are never used; accept them if present (spec §2.2).
      for (const char* rest : {"att.v0", "att.v1", "att.v2"}) expected.insert(p + rest);
    }
    for (const auto& [rest, shape] : shapes) {
      if (absl::Status s = expect(rest, shape); !s.ok()) return s;
    }
  }
  for (const TensorView& t : archive.tensors()) {
    if (expected.count(t.name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          archive.path(), ": unexpected tensor '", t.name, "' ", ShapeString(t.shape),
          " for an RWKV-7 x070 model (a different RWKV version or variant?)"));
    }
  }
  return d;
}

// Builds the weights; owns the conversions.
class Rwkv7WeightsBuilder {
 public:
  explicit Rwkv7WeightsBuilder(Rwkv7Weights* w) : w_(w), archive_(*w->archive_) {}

  // C-value (or n-value) fp32 vector; in place when stored as aligned fp32.
  const float* Vector(const std::string& name) {
    const TensorView* t = archive_.Find(name);
    if (t->dtype == DType::kF32 && reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0) {
      return static_cast<const float*>(t->data);
    }
    float* out = static_cast<float*>(Allocate(t->numel() * sizeof(float)));
    for (int64_t i = 0; i < t->numel(); ++i) out[i] = ElementToF32(t->data, t->dtype, i);
    return out;
  }

  // [rows, cols] matrix in the run dtype.
  WeightMatrix Matrix(const std::string& name) {
    const TensorView* t = archive_.Find(name);
    const int64_t rows = t->shape[0], cols = t->shape[1];
    const DType run = w_->run_dtype_;
    WeightMatrix m{nullptr, ToElementType(run), rows, cols, cols};
    if (t->dtype == run && reinterpret_cast<uintptr_t>(t->data) % DTypeSize(run) == 0) {
      m.data = t->data;
      return m;
    }
    const int64_t n = rows * cols;
    void* out = Allocate(n * DTypeSize(run));
    if (run == DType::kF32) {
      float* f = static_cast<float*>(out);
      for (int64_t i = 0; i < n; ++i) f[i] = ElementToF32(t->data, t->dtype, i);
    } else {
      uint16_t* h = static_cast<uint16_t*>(out);
      if (t->dtype == run) {
        std::memcpy(h, t->data, n * 2);
      } else {
        for (int64_t i = 0; i < n; ++i) {
          const float f = ElementToF32(t->data, t->dtype, i);
          h[i] = run == DType::kBF16 ? kernels::F32ToBf16(f) : kernels::F32ToF16(f);
        }
      }
    }
    m.data = out;
    return m;
  }

  // A LoRA stored [in, out], as an fp32 [out, in] matrix.
  WeightMatrix Transposed(const std::string& name) {
    const TensorView* t = archive_.Find(name);
    const int64_t in = t->shape[0], out_dim = t->shape[1];
    float* out = static_cast<float*>(Allocate(in * out_dim * sizeof(float)));
    for (int64_t i = 0; i < in; ++i) {
      for (int64_t o = 0; o < out_dim; ++o) {
        out[o * in + i] = ElementToF32(t->data, t->dtype, i * out_dim + o);
      }
    }
    return WeightMatrix{out, ElementType::kF32, out_dim, in, in};
  }

 private:
  void* Allocate(size_t bytes) {
    const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    w_->owned_.emplace_back(static_cast<uint8_t*>(p), &std::free);
    return p;
  }

  Rwkv7Weights* w_;
  const TensorArchive& archive_;
};

absl::StatusOr<std::unique_ptr<Rwkv7Weights>> Rwkv7Weights::Load(
    std::shared_ptr<const TensorArchive> archive, const Rwkv7LoadOptions& options) {
  if (archive == nullptr) return absl::InvalidArgumentError("no checkpoint given");
  absl::StatusOr<Rwkv7Dims> dims = ReadRwkv7Dims(*archive);
  if (!dims.ok()) return dims.status();
  const int last = options.last_layer < 0 ? dims->layers : options.last_layer;
  if (options.first_layer < 0 || options.first_layer >= last || last > dims->layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        archive->path(), ": layer range [", options.first_layer, ", ", last,
        ") is not a non-empty part of the model's ", dims->layers, " layers"));
  }
  std::unique_ptr<Rwkv7Weights> w(new Rwkv7Weights());
  w->archive_ = std::move(archive);
  w->dims_ = *dims;
  w->first_layer_ = options.first_layer;
  w->last_layer_ = last;
  w->run_dtype_ = options.run_dtype;
  w->fingerprint_ = Fingerprint(*w->archive_);

  Rwkv7WeightsBuilder b(w.get());
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
    Rwkv7LayerWeights lw{};
    lw.ln1_w = b.Vector(p + "ln1.weight");
    lw.ln1_b = b.Vector(p + "ln1.bias");
    lw.ln2_w = b.Vector(p + "ln2.weight");
    lw.ln2_b = b.Vector(p + "ln2.bias");
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
    lw.receptance = b.Matrix(p + "att.receptance.weight");
    lw.key = b.Matrix(p + "att.key.weight");
    lw.value = b.Matrix(p + "att.value.weight");
    lw.output = b.Matrix(p + "att.output.weight");
    lw.ffn_key = b.Matrix(p + "ffn.key.weight");
    lw.ffn_value = b.Matrix(p + "ffn.value.weight");
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
    w->layers_.push_back(lw);
  }
  return w;
}

StateShape Rwkv7Weights::state_shape() const {
  return StateShape{first_layer_, last_layer_, dims_.embd, dims_.heads, dims_.head_size};
}

void Rwkv7Weights::Embed(int64_t token, float* out) const {
  const int64_t C = dims_.embd;
  for (int64_t i = 0; i < C; ++i) out[i] = ElementToF32(emb_->data, emb_->dtype, token * C + i);
  kernels::LayerNorm(out, ln0_w_, ln0_b_, C, kLayerNormEps, out);
}

int64_t Rwkv7Weights::bytes_read_per_token() const {
  const int64_t C = dims_.embd;
  int64_t bytes = 0;
  for (const Rwkv7LayerWeights& l : layers_) {
    for (const WeightMatrix* m : {&l.receptance, &l.key, &l.value, &l.output, &l.ffn_key,
                                  &l.ffn_value, &l.w1, &l.w2, &l.a1, &l.a2, &l.g1, &l.g2,
                                  &l.v1, &l.v2}) {
      bytes += static_cast<int64_t>(m->rows * m->cols * kernels::ElementSize(m->type));
    }
    bytes += 20 * C * static_cast<int64_t>(sizeof(float));  // vectors and norms
  }
  if (has_embedding()) bytes += C * static_cast<int64_t>(DTypeSize(emb_->dtype) + 8);
  if (has_head()) {
    bytes += static_cast<int64_t>(head_.rows * head_.cols * kernels::ElementSize(head_.type));
    bytes += 2 * C * static_cast<int64_t>(sizeof(float));
  }
  return bytes;
}

}  // namespace skein::model
