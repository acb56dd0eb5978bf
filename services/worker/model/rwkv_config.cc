#include "services/worker/model/rwkv_config.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/absl_bridge.h"
#include "base/dtype.h"

namespace skein::model {
namespace {

constexpr std::string_view kBlocksPrefix = "blocks.";

// Splits "blocks.<l>.<rest>" into l and rest. False for any other name, including indices
// with a sign, leading zeros or more than 9 digits.
bool SplitBlockName(std::string_view name, int64_t* layer, std::string_view* rest) {
  if (name.substr(0, kBlocksPrefix.size()) != kBlocksPrefix) return false;
  std::string_view tail = name.substr(kBlocksPrefix.size());
  size_t dot = tail.find('.');
  if (dot == 0 || dot == std::string_view::npos || dot > 9) return false;
  std::string_view digits = tail.substr(0, dot);
  if (digits.size() > 1 && digits[0] == '0') return false;
  int64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *layer = v;
  *rest = tail.substr(dot + 1);
  return true;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The first tensor whose per-block part (after "blocks.<l>.") satisfies `pred`, or null.
template <typename Pred>
const TensorView* FirstBlockTensor(const TensorArchive& archive, Pred pred) {
  for (const TensorView& t : archive.tensors()) {
    int64_t layer;
    std::string_view rest;
    if (SplitBlockName(t.name, &layer, &rest) && pred(rest)) return &t;
  }
  return nullptr;
}

bool IsDeepEmbedPart(std::string_view rest) {
  return rest.substr(0, 10) == "ffn.s_emb." || rest == "ffn.s0" || rest == "ffn.s1" ||
         rest == "ffn.s2" || rest.substr(0, 7) == "ffn.s0." || rest.substr(0, 7) == "ffn.s1." ||
         rest.substr(0, 7) == "ffn.s2.";
}

std::string Common(const TensorArchive& archive) {
  bool any_int8 = false, all_matrices_int8 = true;
  for (const TensorView& t : archive.tensors()) {
    if (t.dtype == DType::kI8) any_int8 = true;
    if (IsQuantizableMatrix(t.name) && t.dtype != DType::kI8) all_matrices_int8 = false;
  }
  if (any_int8) return all_matrices_int8 ? "int8" : "mixed";
  std::string dtype;
  for (const TensorView& t : archive.tensors()) {
    std::string name(DTypeName(t.dtype));
    if (dtype.empty()) {
      dtype = name;
    } else if (dtype != name) {
      return "mixed";
    }
  }
  return dtype.empty() ? "none" : dtype;
}

int64_t CountParameters(const TensorArchive& archive) {
  int64_t n = 0;
  for (const TensorView& t : archive.tensors()) n += t.numel();
  return n;
}

// Block indices present in tensor names, sorted.
std::set<int64_t> BlockIndices(const TensorArchive& archive) {
  std::set<int64_t> layers;
  for (const TensorView& t : archive.tensors()) {
    int64_t layer;
    std::string_view rest;
    if (SplitBlockName(t.name, &layer, &rest)) layers.insert(layer);
  }
  return layers;
}

absl::Status Unsupported(const TensorArchive& archive, RwkvVersion version) {
  const std::string& path = archive.path();
  switch (version) {
    case RwkvVersion::kV5_1:
    case RwkvVersion::kV5_0:
      return absl::UnimplementedError(absl::StrCat(
          path, ": RWKV-5 preview (", base::AsAbsl(RwkvVersionName(version)),
          ") is not supported; the released RWKV-5 models (x052), RWKV-4, -6 and -7 are"));
    case RwkvVersion::kV7DeepEmbed: {
      const TensorView* t = FirstBlockTensor(archive, IsDeepEmbedPart);
      return absl::UnimplementedError(
          absl::StrCat(path, ": RWKV-7 with DeepEmbed (tensor '", t ? t->name : "?",
                       "') is not supported; its FFN differs from plain x070"));
    }
    case RwkvVersion::kV8: {
      const TensorView* t = FirstBlockTensor(
          archive, [](std::string_view r) { return r.substr(0, 8) == "ffn.enn."; });
      return absl::UnimplementedError(
          absl::StrCat(path, ": RWKV-8 (tensor '", t ? t->name : "?", "') is not supported"));
    }
    case RwkvVersion::kChatRwkvConverted: {
      auto it = archive.metadata().find("_strategy");
      std::string strategy = it == archive.metadata().end() ? "" : it->second;
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": was pre-processed by ChatRWKV's converter (strategy '", strategy,
                       "'); use the original checkpoint"));
    }
    case RwkvVersion::kUnknown:
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": not an RWKV checkpoint (no blocks.<l>.att.* tensors of any known version)"));
    case RwkvVersion::kV4:
    case RwkvVersion::kV5_2:
    case RwkvVersion::kV6:
    case RwkvVersion::kV7:
      break;
  }
  return absl::OkStatus();
}

// One tensor a version's layout has, with its exact shape.
struct Expected {
  std::string name;
  std::vector<int64_t> shape;
  bool vector = false;  // [1,1,C] may also be stored as [C]
  bool optional = false;
};

// The error helpers every version's validation uses; they name the file and the tensor.
class ShapeChecker {
 public:
  ShapeChecker(const TensorArchive& archive, std::string_view version_name)
      : archive_(archive), version_name_(version_name) {}

  absl::Status Missing(std::string_view name) const {
    return absl::InvalidArgumentError(absl::StrCat(archive_.path(), ": ",
                                                   base::AsAbsl(version_name_), " tensor '",
                                                   base::AsAbsl(name), "' is missing"));
  }

  // A tensor of `rank` positive dimensions.
  absl::StatusOr<const TensorView*> Tensor(std::string_view name, size_t rank) const {
    const TensorView* t = archive_.Find(name);
    if (t == nullptr) return Missing(name);
    const bool positive =
        std::all_of(t->shape.begin(), t->shape.end(), [](int64_t d) { return d > 0; });
    if (t->shape.size() != rank || !positive) {
      return absl::InvalidArgumentError(absl::StrCat(archive_.path(), ": tensor '", t->name,
                                                     "' has shape ", ShapeText(t->shape),
                                                     ", expected ", rank, " dimensions"));
    }
    return t;
  }

  // Blocks must be exactly 0..L-1; returns L.
  absl::StatusOr<int64_t> Layers() const {
    int64_t next = 0;
    for (int64_t l : BlockIndices(archive_)) {
      if (l != next) {
        return absl::InvalidArgumentError(
            absl::StrCat(archive_.path(), ": block ", next,
                         " is missing (blocks are not contiguous: block ", l, " exists)"));
      }
      ++next;
    }
    return next;
  }

  // Every expected tensor present (unless optional) with its shape, and nothing else in the
  // file. Returns how many optional tensors were present.
  absl::StatusOr<int> CheckExactly(const std::vector<Expected>& expected) const {
    absl::flat_hash_set<std::string> known;
    int optional_present = 0;
    for (const Expected& e : expected) {
      known.insert(e.name);
      const TensorView* t = archive_.Find(e.name);
      if (t == nullptr) {
        if (e.optional) continue;
        return Missing(e.name);
      }
      if (e.optional) ++optional_present;
      const bool ok =
          t->shape == e.shape || (e.vector && t->shape == std::vector<int64_t>{e.shape.back()});
      if (!ok) {
        return absl::InvalidArgumentError(absl::StrCat(archive_.path(), ": tensor '", e.name,
                                                       "' has shape ", ShapeText(t->shape),
                                                       ", expected ", ShapeText(e.shape)));
      }
    }
    if (absl::Status s = CheckInt8(known); !s.ok()) return s;
    for (const TensorView& t : archive_.tensors()) {
      if (!known.contains(t.name)) {
        return absl::InvalidArgumentError(absl::StrCat(archive_.path(), ": unexpected tensor '",
                                                       t.name, "' for ",
                                                       base::AsAbsl(version_name_)));
      }
    }
    return optional_present;
  }

 private:
  // Every int8 tensor is a quantisable matrix of this layout with a valid scale tensor, which
  // joins `known`.
  absl::Status CheckInt8(absl::flat_hash_set<std::string>& known) const {
    for (const TensorView& t : archive_.tensors()) {
      if (t.dtype != DType::kI8) continue;
      if (!known.contains(t.name)) continue;  // reported as unexpected
      if (!IsQuantizableMatrix(t.name)) {
        return absl::InvalidArgumentError(absl::StrCat(
            archive_.path(), ": tensor '", t.name,
            "' is int8; only the large matrices (head, att.receptance/key/value/output/gate, "
            "ffn.key/value/receptance) may be"));
      }
      const std::string scale_name = Int8ScaleName(t.name);
      const TensorView* scale = archive_.Find(scale_name);
      if (scale == nullptr) return Missing(scale_name);
      if (scale->dtype == DType::kI8 || scale->shape != std::vector<int64_t>{t.shape[0]}) {
        return absl::InvalidArgumentError(
            absl::StrCat(archive_.path(), ": int8 scale tensor '", scale_name, "' is ",
                         base::AsAbsl(DTypeName(scale->dtype)), " ", ShapeText(scale->shape),
                         ", expected fp32, bf16 or fp16 [", t.shape[0], "]"));
      }
      std::vector<float> values(static_cast<size_t>(scale->numel()));
      base::ConvertElements(scale->dtype, scale->data, DType::kF32, values.data(), values.size());
      for (size_t i = 0; i < values.size(); ++i) {
        if (!std::isfinite(values[i]) || values[i] < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(archive_.path(), ": int8 scale tensor '", scale_name, "' holds ",
                           values[i], " at row ", i, " (scales are finite and >= 0)"));
        }
      }
      // -128 has no positive counterpart; the kernels' integer paths rely on |q| <= 127.
      if (std::memchr(t.data, 0x80, t.nbytes) != nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(archive_.path(), ": int8 tensor '", t.name,
                                                       "' holds -128 (int8 matrices hold values "
                                                       "in [-127, 127])"));
      }
      known.insert(scale_name);
    }
    return absl::OkStatus();
  }

  const TensorArchive& archive_;
  std::string_view version_name_;
};

// The tensors outside the blocks, and a block's norms, which every version shares.
void AddCommon(std::vector<Expected>& expected, int64_t V, int64_t C) {
  expected.push_back({"emb.weight", {V, C}});
  expected.push_back({"blocks.0.ln0.weight", {C}});
  expected.push_back({"blocks.0.ln0.bias", {C}});
  expected.push_back({"ln_out.weight", {C}});
  expected.push_back({"ln_out.bias", {C}});
  expected.push_back({"head.weight", {V, C}});
}

absl::StatusOr<RwkvConfig> LoadX070Config(const TensorArchive& archive);
absl::StatusOr<RwkvConfig> LoadClassicConfig(const TensorArchive& archive, RwkvVersion version);

}  // namespace

bool IsQuantizableMatrix(std::string_view name) {
  if (name == "head.weight") return true;
  int64_t layer;
  std::string_view rest;
  if (!SplitBlockName(name, &layer, &rest)) return false;
  for (std::string_view m :
       {"att.receptance.weight", "att.key.weight", "att.value.weight", "att.output.weight",
        "att.gate.weight", "ffn.key.weight", "ffn.value.weight", "ffn.receptance.weight"}) {
    if (rest == m) return true;
  }
  return false;
}

std::string Int8ScaleName(std::string_view matrix) { return std::string(matrix) + "_scale"; }

bool IsSupportedRwkvVersion(RwkvVersion v) {
  return v == RwkvVersion::kV7 || v == RwkvVersion::kV6 || v == RwkvVersion::kV5_2 ||
         v == RwkvVersion::kV4;
}

absl::StatusOr<RwkvConfig> LoadRwkvConfig(const TensorArchive& archive) {
  const RwkvVersion version = DetectRwkvVersion(archive);
  if (!IsSupportedRwkvVersion(version)) return Unsupported(archive, version);
  absl::StatusOr<RwkvConfig> c =
      version == RwkvVersion::kV7 ? LoadX070Config(archive) : LoadClassicConfig(archive, version);
  if (!c.ok()) return c;
  c->version = version;
  c->parameters = CountParameters(archive);
  c->dtype = Common(archive);
  return c;
}

std::string_view RwkvVersionName(RwkvVersion v) {
  switch (v) {
    case RwkvVersion::kUnknown:
      return "unknown";
    case RwkvVersion::kV4:
      return "v4";
    case RwkvVersion::kV5_0:
      return "v5.0";
    case RwkvVersion::kV5_1:
      return "v5.1";
    case RwkvVersion::kV5_2:
      return "x052";
    case RwkvVersion::kV6:
      return "x060";
    case RwkvVersion::kV7:
      return "x070";
    case RwkvVersion::kV7DeepEmbed:
      return "x070+DeepEmbed";
    case RwkvVersion::kV8:
      return "rwkv8";
    case RwkvVersion::kChatRwkvConverted:
      return "chatrwkv-converted";
  }
  return "unknown";
}

RwkvVersion DetectRwkvVersion(const TensorArchive& archive) {
  const auto& meta = archive.metadata();
  if (meta.count("_strategy") || meta.count("_version")) return RwkvVersion::kChatRwkvConverted;
  auto any = [&](std::string_view part) {
    return FirstBlockTensor(archive, [&](std::string_view r) { return r == part; }) != nullptr;
  };
  if (FirstBlockTensor(archive, [](std::string_view r) { return r.substr(0, 8) == "ffn.enn."; })) {
    return RwkvVersion::kV8;
  }
  if (FirstBlockTensor(archive, IsDeepEmbedPart)) return RwkvVersion::kV7DeepEmbed;
  if (any("att.r_k") || any("att.k_k") || any("att.w0")) return RwkvVersion::kV7;
  if (any("att.time_maa_x")) return RwkvVersion::kV6;
  if (any("att.ln_x.weight")) {
    if (!any("att.gate.weight")) return RwkvVersion::kV5_0;
    const TensorView* decay =
        FirstBlockTensor(archive, [](std::string_view r) { return r == "att.time_decay"; });
    if (decay != nullptr && decay->shape.size() >= 2 && decay->shape.back() > 1) {
      return RwkvVersion::kV5_2;
    }
    return RwkvVersion::kV5_1;
  }
  if (any("att.time_first") || any("att.time_mix_k") || any("att.time_decay")) {
    return RwkvVersion::kV4;
  }
  return RwkvVersion::kUnknown;
}

RwkvBasics DescribeRwkvBasics(const TensorArchive& archive) {
  RwkvBasics b;
  b.version = DetectRwkvVersion(archive);
  std::set<int64_t> layers = BlockIndices(archive);
  b.n_layer = layers.empty() ? 0 : *layers.rbegin() + 1;
  if (const TensorView* emb = archive.Find("emb.weight"); emb && emb->shape.size() == 2) {
    b.vocab = emb->shape[0];
    b.n_embd = emb->shape[1];
  }
  b.parameters = CountParameters(archive);
  b.dtype = Common(archive);
  return b;
}

Rwkv7LoraRanks DefaultRwkv7LoraRanks(int64_t n_embd) {
  const double c = static_cast<double>(n_embd);
  auto rank = [](double x) {
    return std::max<int64_t>(32, static_cast<int64_t>(std::nearbyint(x / 32)) * 32);
  };
  Rwkv7LoraRanks r;
  r.decay = rank(1.8 * std::pow(c, 0.5));
  r.iclr = rank(1.8 * std::pow(c, 0.5));
  r.value = rank(1.3 * std::pow(c, 0.5));
  r.gate = rank(0.6 * std::pow(c, 0.8));
  return r;
}

namespace {

absl::StatusOr<RwkvConfig> LoadX070Config(const TensorArchive& archive) {
  const std::string& path = archive.path();
  const ShapeChecker check(archive, "RWKV-7 (x070)");
  auto matrix = [&](std::string_view name) { return check.Tensor(name, 2); };

  RwkvConfig c;
  absl::StatusOr<const TensorView*> emb = matrix("emb.weight");
  if (!emb.ok()) return emb.status();
  c.vocab = (*emb)->shape[0];
  c.n_embd = (*emb)->shape[1];
  absl::StatusOr<const TensorView*> r_k = matrix("blocks.0.att.r_k");
  if (!r_k.ok()) return r_k.status();
  c.n_head = (*r_k)->shape[0];
  c.head_size = (*r_k)->shape[1];
  if (c.n_head * c.head_size != c.n_embd) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": tensor 'blocks.0.att.r_k' has shape ", ShapeText((*r_k)->shape),
                     ", but heads x head size must equal n_embd ", c.n_embd, " (from emb.weight)"));
  }
  absl::StatusOr<int64_t> layers = check.Layers();
  if (!layers.ok()) return layers.status();
  c.n_layer = *layers;

  absl::StatusOr<const TensorView*> ffn_key = matrix("blocks.0.ffn.key.weight");
  if (!ffn_key.ok()) return ffn_key.status();
  c.ffn = (*ffn_key)->shape[0];
  auto rank_of = [&](std::string_view name, int64_t* out) -> absl::Status {
    absl::StatusOr<const TensorView*> t = matrix(name);
    if (!t.ok()) return t.status();
    *out = (*t)->shape[1];
    return absl::OkStatus();
  };
  if (absl::Status s = rank_of("blocks.0.att.w1", &c.d_decay); !s.ok()) return s;
  if (absl::Status s = rank_of("blocks.0.att.a1", &c.d_iclr); !s.ok()) return s;
  if (absl::Status s = rank_of("blocks.0.att.g1", &c.d_gate); !s.ok()) return s;
  // Layer 0's value LoRA is unused and may be absent, so D_v comes from layer 1.
  if (c.n_layer > 1) {
    if (absl::Status s = rank_of("blocks.1.att.v1", &c.d_value); !s.ok()) return s;
  } else if (archive.Find("blocks.0.att.v1") != nullptr) {
    if (absl::Status s = rank_of("blocks.0.att.v1", &c.d_value); !s.ok()) return s;
  }
  int64_t d_value0 = c.d_value;
  if (const TensorView* v1 = archive.Find("blocks.0.att.v1");
      v1 != nullptr && v1->shape.size() == 2 && v1->shape[1] > 0) {
    d_value0 = v1->shape[1];
  }

  const int64_t C = c.n_embd, V = c.vocab, F = c.ffn;
  std::vector<Expected> expected;
  AddCommon(expected, V, C);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string b = absl::StrCat("blocks.", l, ".");
    auto add = [&](std::string_view part, std::vector<int64_t> shape, bool vec = false,
                   bool optional = false) {
      expected.push_back({absl::StrCat(b, base::AsAbsl(part)), std::move(shape), vec, optional});
    };
    const bool l0 = l == 0;
    const int64_t dv = l0 ? d_value0 : c.d_value;
    add("ln1.weight", {C});
    add("ln1.bias", {C});
    add("ln2.weight", {C});
    add("ln2.bias", {C});
    for (const char* mix : {"att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a", "att.x_g"}) {
      add(mix, {1, 1, C}, true);
    }
    add("att.w0", {1, 1, C}, true);
    add("att.w1", {C, c.d_decay});
    add("att.w2", {c.d_decay, C});
    add("att.a0", {1, 1, C}, true);
    add("att.a1", {C, c.d_iclr});
    add("att.a2", {c.d_iclr, C});
    add("att.v0", {1, 1, C}, true, l0);
    add("att.v1", {C, dv}, false, l0);
    add("att.v2", {dv, C}, false, l0);
    add("att.g1", {C, c.d_gate});
    add("att.g2", {c.d_gate, C});
    add("att.k_k", {1, 1, C}, true);
    add("att.k_a", {1, 1, C}, true);
    add("att.r_k", {c.n_head, c.head_size});
    add("att.receptance.weight", {C, C});
    add("att.key.weight", {C, C});
    add("att.value.weight", {C, C});
    add("att.output.weight", {C, C});
    add("att.ln_x.weight", {C});
    add("att.ln_x.bias", {C});
    add("ffn.x_k", {1, 1, C}, true);
    add("ffn.key.weight", {F, C});
    add("ffn.value.weight", {C, F});
  }

  absl::StatusOr<int> layer0_value_present = check.CheckExactly(expected);
  if (!layer0_value_present.ok()) return layer0_value_present.status();
  c.layer0_value_lora = *layer0_value_present == 3;
  return c;
}

// RWKV-4, RWKV-5.2 and RWKV-6 (spec §§3-5).
absl::StatusOr<RwkvConfig> LoadClassicConfig(const TensorArchive& archive, RwkvVersion version) {
  const std::string& path = archive.path();
  const bool v4 = version == RwkvVersion::kV4, v6 = version == RwkvVersion::kV6;
  const std::string name = v4 ? "RWKV-4" : v6 ? "RWKV-6 (x060)" : "RWKV-5 (x052)";
  const ShapeChecker check(archive, name);

  RwkvConfig c;
  absl::StatusOr<const TensorView*> emb = check.Tensor("emb.weight", 2);
  if (!emb.ok()) return emb.status();
  c.vocab = (*emb)->shape[0];
  c.n_embd = (*emb)->shape[1];
  absl::StatusOr<int64_t> layers = check.Layers();
  if (!layers.ok()) return layers.status();
  c.n_layer = *layers;
  absl::StatusOr<const TensorView*> ffn_key = check.Tensor("blocks.0.ffn.key.weight", 2);
  if (!ffn_key.ok()) return ffn_key.status();
  c.ffn = (*ffn_key)->shape[0];
  if (!v4) {
    // Heads come from the bonus: time_faaaa is [H, N].
    absl::StatusOr<const TensorView*> u = check.Tensor("blocks.0.att.time_faaaa", 2);
    if (!u.ok()) return u.status();
    c.n_head = (*u)->shape[0];
    c.head_size = (*u)->shape[1];
    if (c.n_head * c.head_size != c.n_embd) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tensor 'blocks.0.att.time_faaaa' has shape ", ShapeText((*u)->shape),
          ", but heads x head size must equal n_embd ", c.n_embd, " (from emb.weight)"));
    }
  }
  if (v6) {
    absl::StatusOr<const TensorView*> maa_w1 = check.Tensor("blocks.0.att.time_maa_w1", 2);
    if (!maa_w1.ok()) return maa_w1.status();
    if ((*maa_w1)->shape[1] % 5 != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor 'blocks.0.att.time_maa_w1' has shape ",
                       ShapeText((*maa_w1)->shape), ", whose second dimension must be 5·D_mix"));
    }
    c.d_mix = (*maa_w1)->shape[1] / 5;
    absl::StatusOr<const TensorView*> decay_w1 = check.Tensor("blocks.0.att.time_decay_w1", 2);
    if (!decay_w1.ok()) return decay_w1.status();
    c.d_decay = (*decay_w1)->shape[1];
  }

  const int64_t C = c.n_embd, V = c.vocab, F = c.ffn, H = c.n_head, N = c.head_size;
  std::vector<Expected> expected;
  AddCommon(expected, V, C);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string b = absl::StrCat("blocks.", l, ".");
    auto add = [&](std::string_view part, std::vector<int64_t> shape, bool vec = false) {
      expected.push_back({absl::StrCat(b, base::AsAbsl(part)), std::move(shape), vec, false});
    };
    add("ln1.weight", {C});
    add("ln1.bias", {C});
    add("ln2.weight", {C});
    add("ln2.bias", {C});
    for (const char* m : {"att.receptance.weight", "att.key.weight", "att.value.weight",
                          "att.output.weight", "ffn.receptance.weight"}) {
      add(m, {C, C});
    }
    add("ffn.key.weight", {F, C});
    add("ffn.value.weight", {C, F});
    if (v4) {
      for (const char* m : {"att.time_mix_k", "att.time_mix_v", "att.time_mix_r"}) {
        add(m, {1, 1, C}, true);
      }
      add("att.time_decay", {C});
      add("att.time_first", {C});
    } else {
      add("att.gate.weight", {C, C});
      add("att.ln_x.weight", {C});
      add("att.ln_x.bias", {C});
      add("att.time_faaaa", {H, N});
    }
    if (version == RwkvVersion::kV5_2) {
      for (const char* m :
           {"att.time_mix_k", "att.time_mix_v", "att.time_mix_r", "att.time_mix_g"}) {
        add(m, {1, 1, C}, true);
      }
      add("att.time_decay", {H, N});
    }
    if (v6) {
      for (const char* m : {"att.time_maa_x", "att.time_maa_w", "att.time_maa_k", "att.time_maa_v",
                            "att.time_maa_r", "att.time_maa_g", "att.time_decay"}) {
        add(m, {1, 1, C}, true);
      }
      add("att.time_maa_w1", {C, 5 * c.d_mix});
      add("att.time_maa_w2", {5, c.d_mix, C});
      add("att.time_decay_w1", {C, c.d_decay});
      add("att.time_decay_w2", {c.d_decay, C});
      add("ffn.time_maa_k", {1, 1, C}, true);
      add("ffn.time_maa_r", {1, 1, C}, true);
    } else {
      add("ffn.time_mix_k", {1, 1, C}, true);
      add("ffn.time_mix_r", {1, 1, C}, true);
    }
  }
  absl::StatusOr<int> checked = check.CheckExactly(expected);
  if (!checked.ok()) return checked.status();
  return c;
}

}  // namespace

}  // namespace skein::model
