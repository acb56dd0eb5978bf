#include "services/worker/model/random_rwkv7.h"

#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu/float_convert.h"
#include "services/worker/model/archive_impl.h"

namespace skein::model {
namespace {

// splitmix64: a tiny generator that gives the same stream on every platform.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [lo, hi).
  float Uniform(float lo, float hi) {
    const float unit = static_cast<float>(Next() >> 40) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * unit;
  }

 private:
  uint64_t state_;
};

class Builder {
 public:
  Builder(uint64_t seed, DType dtype)
      : archive_(std::make_unique<ArchiveImpl>("<random RWKV-7>", nullptr)),
        random_(seed),
        dtype_(dtype) {}

  absl::Status Add(const std::string& name, std::vector<int64_t> shape, float lo, float hi) {
    TensorView view;
    view.name = name;
    view.dtype = dtype_;
    view.shape = std::move(shape);
    const int64_t n = view.numel();
    view.nbytes = static_cast<size_t>(n) * DTypeSize(dtype_);
    auto buffer = std::make_unique<AlignedBuffer>(view.nbytes);
    for (int64_t i = 0; i < n; ++i) {
      const float f = random_.Uniform(lo, hi);
      switch (dtype_) {
        case DType::kF32:
          static_cast<float*>(buffer->data())[i] = f;
          break;
        case DType::kBF16:
          static_cast<uint16_t*>(buffer->data())[i] = kernels::F32ToBf16(f);
          break;
        case DType::kF16:
          static_cast<uint16_t*>(buffer->data())[i] = kernels::F32ToF16(f);
          break;
      }
    }
    return archive_->AddOwned(std::move(view), std::move(buffer));
  }

  // A matrix whose product with a unit-variance input has unit variance.
  absl::Status AddScaled(const std::string& name, int64_t rows, int64_t cols, int64_t fan_in,
                         float gain = 1.0f) {
    const float bound = gain * std::sqrt(3.0f / static_cast<float>(fan_in));
    return Add(name, {rows, cols}, -bound, bound);
  }

  std::unique_ptr<TensorArchive> Finish() { return std::move(archive_); }

 private:
  std::unique_ptr<ArchiveImpl> archive_;
  Random random_;
  DType dtype_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TensorArchive>> MakeRandomRwkv7(const Rwkv7Dims& d,
                                                                uint64_t seed, DType dtype,
                                                                bool layer0_value_lora) {
  if (d.layers < 1 || d.embd <= 0 || d.heads <= 0 || d.head_size <= 0 ||
      d.heads * d.head_size != d.embd || d.vocab <= 0 || d.ffn <= 0 || d.lora_w <= 0 ||
      d.lora_a <= 0 || d.lora_g <= 0 || (d.layers > 1 && d.lora_v <= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "random RWKV-7: invalid dimensions L=", d.layers, " C=", d.embd, " H=", d.heads,
        " N=", d.head_size, " V=", d.vocab, " F=", d.ffn));
  }
  const int64_t C = d.embd;
  Builder b(seed, dtype);
  std::vector<absl::Status> results;
  results.push_back(b.Add("emb.weight", {d.vocab, C}, -1.0f, 1.0f));
  for (int l = 0; l < d.layers; ++l) {
    const std::string p = absl::StrCat("blocks.", l, ".");
    if (l == 0) {
      results.push_back(b.Add(p + "ln0.weight", {C}, 0.8f, 1.2f));
      results.push_back(b.Add(p + "ln0.bias", {C}, -0.1f, 0.1f));
    }
    for (const char* ln : {"ln1", "ln2"}) {
      results.push_back(b.Add(p + ln + ".weight", {C}, 0.8f, 1.2f));
      results.push_back(b.Add(p + ln + ".bias", {C}, -0.1f, 0.1f));
    }
    for (const char* mix : {"att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a", "att.x_g"}) {
      results.push_back(b.Add(p + mix, {1, 1, C}, 0.0f, 1.0f));
    }
    results.push_back(b.Add(p + "att.w0", {1, 1, C}, -3.0f, 1.0f));
    results.push_back(b.AddScaled(p + "att.w1", C, d.lora_w, C, 0.5f));
    results.push_back(b.AddScaled(p + "att.w2", d.lora_w, C, d.lora_w, 0.5f));
    results.push_back(b.Add(p + "att.a0", {1, 1, C}, -1.0f, 1.0f));
    results.push_back(b.AddScaled(p + "att.a1", C, d.lora_a, C, 0.5f));
    results.push_back(b.AddScaled(p + "att.a2", d.lora_a, C, d.lora_a, 0.5f));
    if (l > 0 || layer0_value_lora) {
      const int64_t dv = d.lora_v > 0 ? d.lora_v : d.lora_a;
      results.push_back(b.Add(p + "att.v0", {1, 1, C}, -1.0f, 1.0f));
      results.push_back(b.AddScaled(p + "att.v1", C, dv, C, 0.5f));
      results.push_back(b.AddScaled(p + "att.v2", dv, C, dv, 0.5f));
    }
    results.push_back(b.AddScaled(p + "att.g1", C, d.lora_g, C, 0.5f));
    results.push_back(b.AddScaled(p + "att.g2", d.lora_g, C, d.lora_g, 0.5f));
    results.push_back(b.Add(p + "att.k_k", {1, 1, C}, 0.5f, 1.0f));
    results.push_back(b.Add(p + "att.k_a", {1, 1, C}, 0.0f, 1.0f));
    results.push_back(b.Add(p + "att.r_k", {d.heads, d.head_size}, -0.5f, 0.5f));
    for (const char* m : {"att.receptance.weight", "att.key.weight", "att.value.weight"}) {
      results.push_back(b.AddScaled(p + m, C, C, C));
    }
    results.push_back(b.AddScaled(p + "att.output.weight", C, C, C, 0.5f));
    results.push_back(b.Add(p + "att.ln_x.weight", {C}, 0.8f, 1.2f));
    results.push_back(b.Add(p + "att.ln_x.bias", {C}, -0.1f, 0.1f));
    results.push_back(b.Add(p + "ffn.x_k", {1, 1, C}, 0.0f, 1.0f));
    results.push_back(b.AddScaled(p + "ffn.key.weight", d.ffn, C, C));
    results.push_back(b.AddScaled(p + "ffn.value.weight", C, d.ffn, d.ffn, 0.5f));
  }
  results.push_back(b.Add("ln_out.weight", {C}, 0.8f, 1.2f));
  results.push_back(b.Add("ln_out.bias", {C}, -0.1f, 0.1f));
  results.push_back(b.AddScaled("head.weight", d.vocab, C, C));
  for (const absl::Status& s : results) {
    if (!s.ok()) return s;
  }
  return b.Finish();
}

Rwkv7Dims Rwkv7Dims01B() {
  Rwkv7Dims d;
  d.layers = 12;
  d.embd = 768;
  d.heads = 12;
  d.head_size = 64;
  d.vocab = 65536;
  d.ffn = 3072;
  d.lora_w = 64;
  d.lora_a = 64;
  d.lora_v = 32;
  d.lora_g = 128;
  return d;
}

Rwkv7Dims Rwkv7Dims04B() {
  Rwkv7Dims d = Rwkv7Dims01B();
  d.layers = 24;
  d.embd = 1024;
  d.heads = 16;
  d.ffn = 4096;
  return d;
}

}  // namespace skein::model
