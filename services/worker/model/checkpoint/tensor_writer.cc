#include "services/worker/model/checkpoint/tensor_writer.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace skein::model {

absl::StatusOr<std::vector<uint64_t>> ValidateSpecs(const std::string& path,
                                                    const std::vector<TensorSpec>& specs) {
  std::vector<uint64_t> sizes;
  sizes.reserve(specs.size());
  absl::flat_hash_set<std::string_view> names;
  for (const TensorSpec& s : specs) {
    if (s.name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": a tensor has an empty name"));
    }
    if (!names.insert(s.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor '", s.name, "' is given more than once"));
    }
    uint64_t n = DTypeSize(s.dtype);
    for (int64_t d : s.shape) {
      if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": tensor '", s.name, "' has an invalid shape"));
      }
    }
    sizes.push_back(n);
  }
  return sizes;
}

absl::Status AppendTensors(TensorWriter& writer, const std::vector<TensorView>& tensors) {
  for (const TensorView& t : tensors) {
    if (t.nbytes > 0 && t.data == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' has no data"));
    }
    if (t.nbytes != static_cast<uint64_t>(t.numel()) * DTypeSize(t.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' holds ", t.nbytes,
                                                     " bytes, which does not match its shape"));
    }
    if (t.nbytes == 0) continue;
    absl::Status s = writer.Append(std::string_view(static_cast<const char*>(t.data), t.nbytes));
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

std::vector<TensorSpec> SpecsOf(const std::vector<TensorView>& tensors) {
  std::vector<TensorSpec> specs;
  specs.reserve(tensors.size());
  for (const TensorView& t : tensors) specs.push_back({t.name, t.dtype, t.shape});
  return specs;
}

}  // namespace skein::model
