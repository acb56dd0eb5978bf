#include "services/worker/model/state_file.h"

#include <xxhash.h>

#include <algorithm>
#include <map>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/dtype.h"

namespace skein::model {
namespace {

constexpr std::string_view kPrefix = "blocks.";
constexpr std::string_view kSuffix = ".att.time_state";

// The layer of "blocks.<l>.att.time_state", or -1 for any other name.
int64_t LayerOf(std::string_view name) {
  if (name.size() <= kPrefix.size() + kSuffix.size() || name.substr(0, kPrefix.size()) != kPrefix ||
      name.substr(name.size() - kSuffix.size()) != kSuffix) {
    return -1;
  }
  std::string_view digits =
      name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  if (digits.empty() || digits.size() > 9 || (digits.size() > 1 && digits[0] == '0')) return -1;
  int64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

absl::StatusOr<StateFileInfo> InspectStateFile(const TensorArchive& archive) {
  const std::string& path = archive.path();
  std::map<int64_t, const TensorView*> layers;
  StateFileInfo info;
  for (const TensorView& t : archive.tensors()) {
    const int64_t layer = LayerOf(t.name);
    if (layer < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": unexpected tensor '", t.name,
                       "' for a state file (it holds only blocks.<l>.att.time_state tensors)"));
    }
    if (t.dtype == DType::kI8) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tensor '", t.name, "' is int8; state files hold fp32, bf16 or fp16 values"));
    }
    if (t.shape.size() != 3 || t.shape[0] <= 0 || t.shape[1] <= 0 || t.shape[1] != t.shape[2]) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", t.name, "' has shape ",
                                                     ShapeText(t.shape),
                                                     ", expected [heads, head size, head size]"));
    }
    if (layers.empty()) {
      info.heads = t.shape[0];
      info.head_size = t.shape[1];
    } else if (t.shape[0] != info.heads || t.shape[1] != info.head_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tensor '", t.name, "' has shape ", ShapeText(t.shape),
          ", but other layers are [", info.heads, ", ", info.head_size, ", ", info.head_size, "]"));
    }
    layers[layer] = &t;
    const std::string dtype(DTypeName(t.dtype));
    info.dtype = info.dtype.empty() || info.dtype == dtype ? dtype : "mixed";
  }
  if (layers.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": holds no blocks.<l>.att.time_state"));
  }
  int64_t next = 0;
  for (const auto& [layer, tensor] : layers) {
    if (layer != next) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": blocks.", next, ".att.time_state is missing (layer ", layer, " is present)"));
    }
    ++next;
  }
  info.layers = next;
  // The digest covers values, not bytes: the same state saved as bf16 .pth or as safetensors
  // is the same state.
  XXH3_state_t* h = XXH3_createState();
  XXH3_64bits_reset(h);
  std::vector<float> values;
  for (const auto& [layer, t] : layers) {
    XXH3_64bits_update(h, t->name.data(), t->name.size() + 1);
    XXH3_64bits_update(h, t->shape.data(), t->shape.size() * sizeof(int64_t));
    values.resize(static_cast<size_t>(t->numel()));
    base::ConvertElements(t->dtype, t->data, DType::kF32, values.data(), values.size());
    XXH3_64bits_update(h, values.data(), values.size() * sizeof(float));
  }
  info.digest = XXH3_64bits_digest(h);
  XXH3_freeState(h);
  return info;
}

absl::StatusOr<RwkvState> LoadStateFile(const TensorArchive& archive, const RwkvConfig& config,
                                        const StateShape& shape, StateFileInfo* info_out) {
  absl::StatusOr<StateFileInfo> info = InspectStateFile(archive);
  if (!info.ok()) return info.status();
  if (info_out != nullptr) *info_out = *info;
  const std::string& path = archive.path();
  if (shape.per_channel()) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": an initial state does not apply to an RWKV-4 model (its state has no matrix)"));
  }
  if (info->layers != config.n_layer || info->heads != config.n_head ||
      info->head_size != config.head_size) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": the state is for a model of ", info->layers, " layers and ", info->heads,
        " heads of ", info->head_size, "; this model has ", config.n_layer, " layers and ",
        config.n_head, " heads of ", config.head_size));
  }
  RwkvState state(shape);
  for (int l = shape.first_layer; l < shape.last_layer; ++l) {
    const TensorView* t = archive.Find(absl::StrCat("blocks.", l, ".att.time_state"));
    absl::Span<float> kv = state.att_kv(l);
    // [head][value][key] in the file and in our state: a straight copy.
    base::ConvertElements(t->dtype, t->data, DType::kF32, kv.data(), kv.size());
  }
  return state;
}

}  // namespace skein::model
