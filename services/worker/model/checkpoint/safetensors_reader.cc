// OpenSafetensors: an 8-byte little-endian header length, a JSON header mapping each tensor
// name to {dtype, shape, data_offsets} (plus an optional "__metadata__" string map), then the
// tensor bytes, which must tile the rest of the file exactly.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "services/worker/model/checkpoint/archive_impl.h"
#include "services/worker/model/checkpoint/archive_readers.h"
#include "services/worker/model/checkpoint/byte_io.h"
#include "services/worker/model/checkpoint/safetensors_format.h"

namespace skein::model {
namespace {

// Nesting beyond this is not a safetensors header; checked before parsing so a hostile header
// cannot make the JSON library recurse deeply.
constexpr int kMaxJsonDepth = 8;

bool JsonDepthWithin(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

struct Pending {
  TensorView view;
  uint64_t begin = 0;
  uint64_t end = 0;
  size_t header_index = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TensorArchive>> OpenSafetensorsFromSource(
    const std::string& path, std::shared_ptr<const ByteSource> source) {
  const std::string_view bytes = source->bytes();
  if (bytes.size() < 8) {
    return absl::DataLossError(
        absl::StrCat(path, ": too short for a safetensors file (", bytes.size(), " bytes)"));
  }
  const uint64_t header_len = LoadLE<uint64_t>(bytes.data());
  if (header_len > kSafetensorsMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": safetensors header length ", header_len,
                                                   " exceeds the limit of ",
                                                   kSafetensorsMaxHeaderBytes, " bytes"));
  }
  if (header_len > bytes.size() - 8) {
    return absl::DataLossError(absl::StrCat(path, ": safetensors header (", header_len,
                                            " bytes) runs past the end of the file (", bytes.size(),
                                            " bytes)"));
  }
  const std::string_view header = bytes.substr(8, header_len);
  const std::string_view buffer = bytes.substr(8 + header_len);
  if (!JsonDepthWithin(header, kMaxJsonDepth)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": safetensors header nests deeper than ", kMaxJsonDepth, " levels"));
  }
  nlohmann::ordered_json json = nlohmann::ordered_json::parse(header.begin(), header.end(), nullptr,
                                                              /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": safetensors header is not a JSON object"));
  }

  auto archive = std::make_unique<ArchiveImpl>(path, source);
  std::vector<Pending> pending;
  for (auto it = json.begin(); it != json.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::ordered_json& value = it.value();
    if (name == "__metadata__") {
      if (!value.is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": safetensors __metadata__ is not an object"));
      }
      for (auto m = value.begin(); m != value.end(); ++m) {
        if (!m.value().is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(path, ": safetensors __metadata__ value '",
                                                         m.key(), "' is not a string"));
        }
        archive->mutable_metadata()[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor '", name, "' in the safetensors header ", what));
    };
    if (!value.is_object()) return bad("is not an object");
    auto dtype_it = value.find("dtype");
    auto shape_it = value.find("shape");
    auto offsets_it = value.find("data_offsets");
    if (dtype_it == value.end() || !dtype_it->is_string()) return bad("has no dtype string");
    if (shape_it == value.end() || !shape_it->is_array()) return bad("has no shape array");
    if (offsets_it == value.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
        !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
      return bad("has no [begin, end] data_offsets");
    }
    Pending p;
    p.header_index = pending.size();
    p.view.name = name;
    const std::string dtype = dtype_it->get<std::string>();
    if (!SafetensorsDTypeFromName(dtype, &p.view.dtype)) {
      return bad(absl::StrCat("has unsupported dtype ", dtype, " (supported: F32, BF16, F16, I8)"));
    }
    uint64_t numel = 1;
    for (const auto& dim : *shape_it) {
      if (!dim.is_number_unsigned()) return bad("has a shape entry that is not a size");
      uint64_t d = dim.get<uint64_t>();
      if (d > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, d, &numel)) {
        return bad("has an impossibly large shape");
      }
      p.view.shape.push_back(static_cast<int64_t>(d));
    }
    p.begin = (*offsets_it)[0].get<uint64_t>();
    p.end = (*offsets_it)[1].get<uint64_t>();
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, DTypeSize(p.view.dtype), &nbytes)) {
      return bad("has an impossibly large shape");
    }
    if (p.end < p.begin || p.end - p.begin != nbytes) {
      return bad(absl::StrCat("has data_offsets [", p.begin, ", ", p.end, "] that do not span its ",
                              nbytes, " bytes"));
    }
    if (p.end > buffer.size()) {
      return absl::DataLossError(
          absl::StrCat(path, ": tensor '", name, "' data [", p.begin, ", ", p.end,
                       ") runs past the end of the file (data area is ", buffer.size(), " bytes)"));
    }
    p.view.nbytes = nbytes;
    p.view.data = nbytes == 0 ? nullptr : buffer.data() + p.begin;
    pending.push_back(std::move(p));
  }

  // The tensors must tile the data area: no gaps, no overlaps, nothing after the last.
  std::stable_sort(pending.begin(), pending.end(), [](const Pending& a, const Pending& b) {
    return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
  });
  uint64_t cursor = 0;
  for (const Pending& p : pending) {
    if (p.begin != cursor) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tensor '", p.view.name, "' data starts at ", p.begin, " but the previous ",
          "tensor ends at ", cursor, " (safetensors data must be contiguous, without overlap)"));
    }
    cursor = p.end;
  }
  if (cursor != buffer.size()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": safetensors data area has ",
                                                   buffer.size() - cursor,
                                                   " bytes after the last tensor"));
  }
  for (Pending& p : pending) {
    if (absl::Status s = archive->AddInPlace(std::move(p.view)); !s.ok()) return s;
  }
  return std::unique_ptr<TensorArchive>(std::move(archive));
}

}  // namespace skein::model
