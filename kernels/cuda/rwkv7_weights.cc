#include "kernels/cuda/rwkv7_weights.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace skein::cuda {
namespace {

// max(32, round(factor·x / 32)·32): the official LoRA rank rounding (spec §2.1).
int64_t Rank(double value) {
  return std::max<int64_t>(32, static_cast<int64_t>(std::llround(value / 32.0)) * 32);
}

}  // namespace

Rwkv7Shape Rwkv7Shape::Official(int64_t layers, int64_t embd, int64_t vocab) {
  Rwkv7Shape s;
  s.layers = layers;
  s.embd = embd;
  s.vocab = vocab;
  s.ffn = 4 * embd;
  const double root = std::sqrt(static_cast<double>(embd));
  s.d_decay = Rank(1.8 * root);
  s.d_iclr = Rank(1.8 * root);
  s.d_value = Rank(1.3 * root);
  s.d_gate = Rank(0.6 * std::pow(static_cast<double>(embd), 0.8));
  return s;
}

std::string Rwkv7Shape::ToString() const {
  // snprintf, not operator+: GCC 12 at -O3 reports a false -Wrestrict in string concatenation.
  char buf[96];
  std::snprintf(buf, sizeof(buf), "L%lld C%lld V%lld", static_cast<long long>(layers),
                static_cast<long long>(embd), static_cast<long long>(vocab));
  return buf;
}

Rwkv7WeightLayout::Rwkv7WeightLayout(const Rwkv7Shape& shape, DType dtype, int64_t first_layer,
                                     int64_t last_layer)
    : shape_(shape),
      dtype_(dtype),
      first_layer_(first_layer),
      last_layer_(last_layer < 0 ? shape.layers : last_layer) {
  if (first_layer_ < 0 || first_layer_ >= last_layer_ || last_layer_ > shape.layers) {
    std::fprintf(stderr, "Rwkv7WeightLayout: layers [%lld, %lld) not a stage of %s\n",
                 static_cast<long long>(first_layer_), static_cast<long long>(last_layer_),
                 shape.ToString().c_str());
    std::abort();
  }
  const int64_t C = shape.embd, V = shape.vocab, F = shape.ffn;
  // Scales keep activations O(1) through random layers: products get ±1/√fan_in, norms
  // γ ≈ 1, mixes in [0, 1), decay biases spread the decay over about (0.55, 0.97).
  const float in_c = 1.0f / std::sqrt(static_cast<float>(C));
  auto matrix = [](std::string name, int64_t rows, int64_t cols, float scale) {
    TensorSpec t;
    t.name = std::move(name);
    t.rows = rows;
    t.cols = cols;
    t.matrix = true;
    t.init_scale = scale;
    return t;
  };
  auto vector = [C](std::string name, float offset, float scale) {
    TensorSpec t;
    t.name = std::move(name);
    t.cols = C;
    t.init_offset = offset;
    t.init_scale = scale;
    return t;
  };
  tensors_.resize(kGlobalTensors + shape.layers * kLayerTensors);
  tensors_[kEmb] = matrix("emb.weight", V, C, 1.0f);
  tensors_[kLn0W] = vector("blocks.0.ln0.weight", 1.0f, 0.2f);
  tensors_[kLn0B] = vector("blocks.0.ln0.bias", 0.0f, 0.2f);
  tensors_[kLnOutW] = vector("ln_out.weight", 1.0f, 0.2f);
  tensors_[kLnOutB] = vector("ln_out.bias", 0.0f, 0.2f);
  tensors_[kHead] = matrix("head.weight", V, C, in_c);
  for (int64_t l = 0; l < shape.layers; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    auto set = [&](LayerTensor id, TensorSpec t) { tensors_[index(l, id)] = std::move(t); };
    // Stored [out][in] (see kW1 in the header).
    auto lora = [&](const char* name, int64_t in, int64_t out) {
      return matrix(p + "att." + name, out, in, 1.0f / std::sqrt(static_cast<float>(in)));
    };
    set(kLn1W, vector(p + "ln1.weight", 1.0f, 0.2f));
    set(kLn1B, vector(p + "ln1.bias", 0.0f, 0.2f));
    set(kLn2W, vector(p + "ln2.weight", 1.0f, 0.2f));
    set(kLn2B, vector(p + "ln2.bias", 0.0f, 0.2f));
    set(kXr, vector(p + "att.x_r", 0.5f, 0.5f));
    set(kXw, vector(p + "att.x_w", 0.5f, 0.5f));
    set(kXk, vector(p + "att.x_k", 0.5f, 0.5f));
    set(kXv, vector(p + "att.x_v", 0.5f, 0.5f));
    set(kXa, vector(p + "att.x_a", 0.5f, 0.5f));
    set(kXg, vector(p + "att.x_g", 0.5f, 0.5f));
    set(kW0, vector(p + "att.w0", -1.0f, 2.0f));
    set(kW1, lora("w1", C, shape.d_decay));
    set(kW2, lora("w2", shape.d_decay, C));
    set(kA0, vector(p + "att.a0", 0.0f, 1.0f));
    set(kA1, lora("a1", C, shape.d_iclr));
    set(kA2, lora("a2", shape.d_iclr, C));
    set(kV0, vector(p + "att.v0", 0.0f, 1.0f));
    set(kV1, lora("v1", C, shape.d_value));
    set(kV2, lora("v2", shape.d_value, C));
    set(kG1, lora("g1", C, shape.d_gate));
    set(kG2, lora("g2", shape.d_gate, C));
    set(kKk, vector(p + "att.k_k", 1.0f, 0.5f));
    set(kKa, vector(p + "att.k_a", 0.5f, 0.5f));
    set(kRk, vector(p + "att.r_k", 0.0f, 0.5f));
    set(kWr, matrix(p + "att.receptance.weight", C, C, in_c));
    set(kWk, matrix(p + "att.key.weight", C, C, in_c));
    set(kWv, matrix(p + "att.value.weight", C, C, in_c));
    set(kWo, matrix(p + "att.output.weight", C, C, in_c));
    set(kLnxW, vector(p + "att.ln_x.weight", 1.0f, 0.2f));
    set(kLnxB, vector(p + "att.ln_x.bias", 0.0f, 0.2f));
    set(kFfnXk, vector(p + "ffn.x_k", 0.5f, 0.5f));
    set(kFfnKey, matrix(p + "ffn.key.weight", F, C, in_c));
    set(kFfnValue, matrix(p + "ffn.value.weight", C, F, 1.0f / std::sqrt(static_cast<float>(F))));
  }
  // Outside the stage: no storage (rows = cols = 0), name and index kept.
  auto drop = [](TensorSpec& t) {
    t.rows = 0;
    t.cols = 0;
    t.present = false;
  };
  if (!has_embedding()) {
    for (GlobalTensor g : {kEmb, kLn0W, kLn0B}) drop(tensors_[g]);
  }
  if (!has_head()) {
    for (GlobalTensor g : {kLnOutW, kLnOutB, kHead}) drop(tensors_[g]);
  }
  for (int64_t l = 0; l < shape.layers; ++l) {
    if (l >= first_layer_ && l < last_layer_) continue;
    for (int t = 0; t < kLayerTensors; ++t) drop(tensors_[index(l, static_cast<LayerTensor>(t))]);
  }
  size_t offset = 0;
  for (TensorSpec& t : tensors_) {
    t.offset = offset;
    t.bytes = static_cast<size_t>(t.count()) * (t.matrix ? base::DTypeSize(dtype) : sizeof(float));
    offset += (t.bytes + 255) / 256 * 256;  // every tensor 256-byte aligned (cuBLASLt, vectors)
  }
  total_bytes_ = offset;
}

void Rwkv7WeightLayout::LayerOutOfStage(int64_t layer) const {
  std::fprintf(stderr, "Rwkv7WeightLayout: layer %lld outside the stage's layers [%lld, %lld)\n",
               static_cast<long long>(layer), static_cast<long long>(first_layer_),
               static_cast<long long>(last_layer_));
  std::abort();
}

bool CopyStageWeights(const Rwkv7WeightLayout& from, const uint8_t* from_bytes,
                      const Rwkv7WeightLayout& to, uint8_t* to_bytes) {
  const Rwkv7Shape &a = from.shape(), &b = to.shape();
  if (a.layers != b.layers || a.embd != b.embd || a.head_size != b.head_size ||
      a.vocab != b.vocab || a.ffn != b.ffn || a.d_decay != b.d_decay || a.d_iclr != b.d_iclr ||
      a.d_value != b.d_value || a.d_gate != b.d_gate || from.dtype() != to.dtype()) {
    return false;
  }
  const std::vector<TensorSpec>&src = from.tensors(), &dst = to.tensors();
  for (size_t i = 0; i < dst.size(); ++i) {
    if (dst[i].present && !src[i].present) return false;
  }
  for (size_t i = 0; i < dst.size(); ++i) {
    if (dst[i].present) {
      std::memcpy(to_bytes + dst[i].offset, from_bytes + src[i].offset, dst[i].bytes);
    }
  }
  return true;
}

}  // namespace skein::cuda
