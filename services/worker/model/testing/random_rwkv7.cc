#include "services/worker/model/testing/random_rwkv7.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/dtype.h"
#include "services/worker/model/checkpoint/checkpoint_writer.h"

namespace skein::model {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ull;
  }
  return h;
}

// The uniform range [lo, hi) a tensor's values are drawn from.
struct Range {
  double lo, hi;
};

Range RangeFor(const TensorSpec& spec) {
  std::string_view name = spec.name;
  // The per-block part of the name ("att.w1"), or the whole name for globals.
  if (name.substr(0, 7) == "blocks.") {
    size_t dot = name.find('.', 7);
    if (dot != std::string_view::npos) name = name.substr(dot + 1);
  }
  auto ends = [&](std::string_view s) {
    return name.size() >= s.size() && name.substr(name.size() - s.size()) == s;
  };
  auto inv_sqrt = [](int64_t n) {
    return 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(n, 1)));
  };
  const auto& shape = spec.shape;
  if (name == "emb.weight") return {-0.5, 0.5};
  if (ends("ln_x.weight")) return {0.9, 1.1};
  if (ends(".weight") && (name.substr(0, 2) == "ln" || name == "ln_out.weight")) return {0.9, 1.1};
  if (ends(".bias")) return {-0.05, 0.05};
  if (name.substr(0, 6) == "att.x_" || name == "ffn.x_k") return {0.0, 1.0};
  // x060's time-shift LoRA is [C, 5·D] then [5, D, C]: scaled by its input width.
  if (name == "att.time_maa_w1" || name == "att.time_decay_w1") {
    double s = inv_sqrt(shape[0]);
    return {-s, s};
  }
  if (name == "att.time_maa_w2") {
    double s = inv_sqrt(shape[1]);
    return {-s, s};
  }
  if (name == "att.time_decay_w2") {
    double s = inv_sqrt(shape[0]);
    return {-s, s};
  }
  if (name.find(".time_mix_") != std::string_view::npos ||
      name.find(".time_maa_") != std::string_view::npos) {
    return {0.0, 1.0};
  }
  if (name == "att.time_decay") return {-5.0, -0.5};
  if (name == "att.time_first" || name == "att.time_faaaa") return {-0.5, 0.5};
  if (name == "att.w0") return {-5.0, -0.5};
  if (name == "att.a0" || name == "att.v0") return {-1.0, 1.0};
  if (name == "att.k_k") return {0.5, 1.0};
  if (name == "att.k_a") return {0.5, 1.5};
  if (name == "att.r_k") return {-0.5, 0.5};
  // LoRA matrices are [in, out]; Linear weights are [out, in].
  if (name == "att.w1" || name == "att.w2" || name == "att.a1" || name == "att.a2" ||
      name == "att.v1" || name == "att.v2" || name == "att.g1" || name == "att.g2") {
    double s = inv_sqrt(shape.empty() ? 1 : shape[0]);
    return {-s, s};
  }
  double s = inv_sqrt(shape.size() == 2 ? shape[1] : 1);
  return {-s, s};
}

}  // namespace

absl::StatusOr<RandomModelShape> ResolveRandomModelShape(RandomModelShape s) {
  if (!IsSupportedRwkvVersion(s.version)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot make a model of version ", std::string(RwkvVersionName(s.version))));
  }
  if (s.n_layer <= 0 || s.n_embd <= 0 || s.vocab <= 0 || s.head_size <= 0 || s.ffn < 0 ||
      s.d_mix <= 0 || s.d_decay <= 0) {
    return absl::InvalidArgumentError(
        "layers, embedding width, vocabulary, head size and LoRA ranks must be positive");
  }
  if (s.version != RwkvVersion::kV4 && s.n_embd % s.head_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "embedding width ", s.n_embd, " is not a multiple of the head size ", s.head_size));
  }
  const bool four_c = s.version == RwkvVersion::kV7 || s.version == RwkvVersion::kV4;
  if (s.ffn == 0) s.ffn = four_c ? 4 * s.n_embd : std::max<int64_t>(32, 7 * s.n_embd / 64 * 32);
  Rwkv7LoraRanks d = DefaultRwkv7LoraRanks(s.n_embd);
  if (s.lora.decay == 0) s.lora.decay = d.decay;
  if (s.lora.iclr == 0) s.lora.iclr = d.iclr;
  if (s.lora.value == 0) s.lora.value = d.value;
  if (s.lora.gate == 0) s.lora.gate = d.gate;
  if (s.lora.decay < 0 || s.lora.iclr < 0 || s.lora.value < 0 || s.lora.gate < 0) {
    return absl::InvalidArgumentError("LoRA ranks must be positive");
  }
  return s;
}

namespace {

// RWKV-4, x052 and x060 tensors in RWKV-LM's state-dict order (spec §§3-5).
std::vector<TensorSpec> ClassicTensorSpecs(const RandomModelShape& s, DType dtype) {
  const int64_t C = s.n_embd, H = C / s.head_size, N = s.head_size;
  const std::vector<int64_t> vec = {1, 1, C};
  const bool v4 = s.version == RwkvVersion::kV4, v6 = s.version == RwkvVersion::kV6;
  std::vector<TensorSpec> specs;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    specs.push_back({std::move(name), dtype, std::move(shape)});
  };
  add("emb.weight", {s.vocab, C});
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string b = absl::StrCat("blocks.", l, ".");
    add(b + "ln1.weight", {C});
    add(b + "ln1.bias", {C});
    add(b + "ln2.weight", {C});
    add(b + "ln2.bias", {C});
    if (l == 0) {
      add(b + "ln0.weight", {C});
      add(b + "ln0.bias", {C});
    }
    if (v6) {
      for (const char* m : {"x", "w", "k", "v", "r", "g"}) add(b + "att.time_maa_" + m, vec);
      add(b + "att.time_maa_w1", {C, 5 * s.d_mix});
      add(b + "att.time_maa_w2", {5, s.d_mix, C});
      add(b + "att.time_decay", vec);
      add(b + "att.time_decay_w1", {C, s.d_decay});
      add(b + "att.time_decay_w2", {s.d_decay, C});
      add(b + "att.time_faaaa", {H, N});
    } else if (v4) {
      for (const char* m : {"k", "v", "r"}) add(b + "att.time_mix_" + m, vec);
      add(b + "att.time_decay", {C});
      add(b + "att.time_first", {C});
    } else {
      for (const char* m : {"k", "v", "r", "g"}) add(b + "att.time_mix_" + m, vec);
      add(b + "att.time_decay", {H, N});
      add(b + "att.time_faaaa", {H, N});
    }
    add(b + "att.receptance.weight", {C, C});
    add(b + "att.key.weight", {C, C});
    add(b + "att.value.weight", {C, C});
    if (!v4) add(b + "att.gate.weight", {C, C});
    add(b + "att.output.weight", {C, C});
    if (!v4) {
      add(b + "att.ln_x.weight", {C});
      add(b + "att.ln_x.bias", {C});
    }
    for (const char* m : {"k", "r"}) add(b + (v6 ? "ffn.time_maa_" : "ffn.time_mix_") + m, vec);
    add(b + "ffn.key.weight", {s.ffn, C});
    add(b + "ffn.receptance.weight", {C, C});
    add(b + "ffn.value.weight", {C, s.ffn});
  }
  add("ln_out.weight", {C});
  add("ln_out.bias", {C});
  add("head.weight", {s.vocab, C});
  return specs;
}

}  // namespace

std::vector<TensorSpec> RandomModelTensorSpecs(const RandomModelShape& s, DType dtype) {
  if (s.version != RwkvVersion::kV7) return ClassicTensorSpecs(s, dtype);
  const int64_t C = s.n_embd;
  const std::vector<int64_t> vec = {1, 1, C};
  std::vector<TensorSpec> specs;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    specs.push_back({std::move(name), dtype, std::move(shape)});
  };
  add("emb.weight", {s.vocab, C});
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string b = absl::StrCat("blocks.", l, ".");
    // RWKV-LM's Block creates ln1, ln2, then ln0 (layer 0 only), then att and ffn.
    add(b + "ln1.weight", {C});
    add(b + "ln1.bias", {C});
    add(b + "ln2.weight", {C});
    add(b + "ln2.bias", {C});
    if (l == 0) {
      add(b + "ln0.weight", {C});
      add(b + "ln0.bias", {C});
    }
    for (const char* mix : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"}) add(b + "att." + mix, vec);
    add(b + "att.w0", vec);
    add(b + "att.w1", {C, s.lora.decay});
    add(b + "att.w2", {s.lora.decay, C});
    add(b + "att.a0", vec);
    add(b + "att.a1", {C, s.lora.iclr});
    add(b + "att.a2", {s.lora.iclr, C});
    if (l > 0 || s.layer0_value_lora) {
      add(b + "att.v0", vec);
      add(b + "att.v1", {C, s.lora.value});
      add(b + "att.v2", {s.lora.value, C});
    }
    add(b + "att.g1", {C, s.lora.gate});
    add(b + "att.g2", {s.lora.gate, C});
    add(b + "att.k_k", vec);
    add(b + "att.k_a", vec);
    add(b + "att.r_k", {C / s.head_size, s.head_size});
    add(b + "att.receptance.weight", {C, C});
    add(b + "att.key.weight", {C, C});
    add(b + "att.value.weight", {C, C});
    add(b + "att.output.weight", {C, C});
    add(b + "att.ln_x.weight", {C});
    add(b + "att.ln_x.bias", {C});
    add(b + "ffn.x_k", vec);
    add(b + "ffn.key.weight", {s.ffn, C});
    add(b + "ffn.value.weight", {C, s.ffn});
  }
  add("ln_out.weight", {C});
  add("ln_out.bias", {C});
  add("head.weight", {s.vocab, C});
  return specs;
}

void FillRandomModelValues(const TensorSpec& spec, uint64_t seed, int64_t first, int64_t count,
                           float* out) {
  const Range r = RangeFor(spec);
  const uint64_t key = SplitMix64(seed ^ Fnv1a(spec.name));
  for (int64_t i = 0; i < count; ++i) {
    // Counter-based: element i's value depends only on (seed, name, i).
    uint64_t bits = SplitMix64(key + static_cast<uint64_t>(first + i) * 0xD1B54A32D192ED03ull);
    double u = static_cast<double>(bits >> 11) * 0x1.0p-53;
    out[i] = static_cast<float>(r.lo + (r.hi - r.lo) * u);
  }
}

absl::Status WriteRandomModel(const std::string& path, const RandomModelShape& shape, DType dtype,
                              uint64_t seed,
                              const std::function<void(uint64_t, uint64_t)>& progress) {
  absl::StatusOr<RandomModelShape> resolved = ResolveRandomModelShape(shape);
  if (!resolved.ok()) return resolved.status();
  const std::vector<TensorSpec> specs = RandomModelTensorSpecs(*resolved, dtype);
  std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {"rwkv_version", std::string(RwkvVersionName(resolved->version))},
      {"generator", "skein make-model"},
      {"seed", absl::StrCat(seed)},
  };
  absl::StatusOr<std::unique_ptr<TensorWriter>> writer =
      CreateCheckpointWriter(path, specs, metadata);
  if (!writer.ok()) return writer.status();

  uint64_t total = 0, done = 0;
  for (const TensorSpec& s : specs) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    total += static_cast<uint64_t>(n) * DTypeSize(dtype);
  }
  constexpr int64_t kChunk = 1 << 20;
  std::vector<float> values;
  std::vector<char> converted;
  for (const TensorSpec& s : specs) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    for (int64_t first = 0; first < n; first += kChunk) {
      const int64_t count = std::min(kChunk, n - first);
      values.resize(static_cast<size_t>(count));
      converted.resize(static_cast<size_t>(count) * DTypeSize(dtype));
      FillRandomModelValues(s, seed, first, count, values.data());
      base::ConvertElements(DType::kF32, values.data(), dtype, converted.data(),
                            static_cast<size_t>(count));
      absl::Status st = (*writer)->Append(std::string_view(converted.data(), converted.size()));
      if (!st.ok()) return st;
      done += converted.size();
      if (progress) progress(done, total);
    }
  }
  return (*writer)->Finish();
}

}  // namespace skein::model
