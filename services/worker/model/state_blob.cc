#include "services/worker/model/state_blob.h"

#include <bit>
#include <cstring>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/hash.h"

namespace skein::model {
namespace {

constexpr char kMagic[8] = {'S', 'K', 'E', 'I', 'N', 'S', 'T', '7'};
constexpr size_t kHeaderSize = 64;
constexpr size_t kChecksumSize = 8;

template <typename T>
void Put(std::string& out, size_t offset, T value) {
  static_assert(std::is_integral_v<T>);
  for (size_t i = 0; i < sizeof(T); ++i) {
    out[offset + i] = static_cast<char>(static_cast<uint64_t>(value) >> (8 * i));
  }
}

template <typename T>
T Get(std::string_view in, size_t offset) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    v |= static_cast<uint64_t>(static_cast<uint8_t>(in[offset + i])) << (8 * i);
  }
  return static_cast<T>(v);
}

std::string ShapeText(const StateShape& s) {
  return absl::StrCat("layers [", s.first_layer, ", ", s.last_layer, "), C=", s.embd,
                      ", H=", s.heads, ", N=", s.head_size);
}

}  // namespace

std::string EncodeStateBlob(const RwkvState& state, uint64_t model_fingerprint) {
  const StateShape& s = state.shape();
  const absl::Span<const float> data = state.data();
  const size_t payload = data.size() * sizeof(float);
  std::string out(kHeaderSize + payload + kChecksumSize, '\0');
  std::memcpy(out.data(), kMagic, sizeof(kMagic));
  Put<uint32_t>(out, 8, kStateBlobVersion);
  Put<uint32_t>(out, 12, kHeaderSize);
  Put<uint64_t>(out, 16, model_fingerprint);
  Put<uint32_t>(out, 24, static_cast<uint32_t>(s.first_layer));
  Put<uint32_t>(out, 28, static_cast<uint32_t>(s.last_layer));
  Put<uint64_t>(out, 32, static_cast<uint64_t>(s.embd));
  Put<uint32_t>(out, 40, static_cast<uint32_t>(s.heads));
  Put<uint32_t>(out, 44, static_cast<uint32_t>(s.head_size));
  Put<uint64_t>(out, 48, static_cast<uint64_t>(state.position()));
  Put<uint64_t>(out, 56, payload);
  if constexpr (std::endian::native == std::endian::little) {
    // A state of no layers has no storage (data() is null), and memcpy from null is undefined
    // even for zero bytes.
    if (payload > 0) std::memcpy(out.data() + kHeaderSize, data.data(), payload);
  } else {
    for (size_t i = 0; i < data.size(); ++i) {
      uint32_t bits;
      std::memcpy(&bits, &data[i], 4);
      Put<uint32_t>(out, kHeaderSize + 4 * i, bits);
    }
  }
  Put<uint64_t>(out, kHeaderSize + payload, base::Xxh3_64(out.data(), kHeaderSize + payload));
  return out;
}

absl::StatusOr<StateBlobInfo> InspectStateBlob(std::string_view blob) {
  if (blob.size() < sizeof(kMagic) || std::memcmp(blob.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::InvalidArgumentError("not a Skein RWKV state blob (bad magic)");
  }
  if (blob.size() < 16) return absl::DataLossError("state blob truncated in its header");
  StateBlobInfo info;
  info.version = Get<uint32_t>(blob, 8);
  if (info.version != kStateBlobVersion) {
    return absl::FailedPreconditionError(absl::StrCat("state blob format version ", info.version,
                                                      " is not supported (this "
                                                      "build reads version ",
                                                      kStateBlobVersion, ")"));
  }
  const uint32_t header = Get<uint32_t>(blob, 12);
  if (header != kHeaderSize || blob.size() < kHeaderSize + kChecksumSize) {
    return absl::DataLossError(absl::StrCat("state blob truncated or with a bad header size (",
                                            blob.size(), " bytes, header ", header, ")"));
  }
  const uint64_t payload = Get<uint64_t>(blob, 56);
  if (payload != blob.size() - kHeaderSize - kChecksumSize) {
    return absl::DataLossError(absl::StrCat("state blob is ", blob.size(),
                                            " bytes but its header announces a payload of ",
                                            payload, " bytes"));
  }
  const uint64_t stored = Get<uint64_t>(blob, blob.size() - kChecksumSize);
  const uint64_t actual = base::Xxh3_64(blob.data(), blob.size() - kChecksumSize);
  if (stored != actual) {
    return absl::DataLossError(absl::StrCat("state blob checksum mismatch (stored ", stored,
                                            ", computed ", actual, "): the blob is corrupt"));
  }
  info.model_fingerprint = Get<uint64_t>(blob, 16);
  info.shape.first_layer = static_cast<int>(Get<uint32_t>(blob, 24));
  info.shape.last_layer = static_cast<int>(Get<uint32_t>(blob, 28));
  info.shape.embd = static_cast<int64_t>(Get<uint64_t>(blob, 32));
  info.shape.heads = Get<uint32_t>(blob, 40);
  info.shape.head_size = Get<uint32_t>(blob, 44);
  info.position = static_cast<int64_t>(Get<uint64_t>(blob, 48));
  const StateShape& s = info.shape;
  // A checksum only proves the bytes are as written, not that a writer was sane: bound every
  // dimension so one layer's size cannot overflow, then check the layer count against the
  // payload by division (layers × layer size may not fit in 64 bits for a lying header).
  // Heads and head size are both 0 (RWKV-4) or both positive.
  const bool heads_ok =
      (s.heads == 0 && s.head_size == 0) ||
      (s.heads > 0 && s.heads <= (1 << 20) && s.head_size > 0 && s.head_size <= 4096);
  bool consistent = s.first_layer >= 0 && s.last_layer >= s.first_layer && s.embd > 0 &&
                    s.embd <= (1 << 20) && heads_ok && info.position >= 0;
  if (consistent) {
    const uint64_t layer_bytes = static_cast<uint64_t>(s.floats_per_layer()) * sizeof(float);
    consistent =
        payload % layer_bytes == 0 && payload / layer_bytes == static_cast<uint64_t>(s.layers());
  }
  if (!consistent) {
    return absl::DataLossError(absl::StrCat("state blob header is inconsistent: ", ShapeText(s),
                                            ", position ", info.position, ", payload ", payload,
                                            " bytes"));
  }
  return info;
}

absl::StatusOr<RwkvState> DecodeStateBlob(std::string_view blob, uint64_t model_fingerprint,
                                          const StateShape& expected) {
  absl::StatusOr<StateBlobInfo> info = InspectStateBlob(blob);
  if (!info.ok()) return info.status();
  if (info->model_fingerprint != model_fingerprint) {
    return absl::FailedPreconditionError(
        absl::StrCat("state blob belongs to another model (fingerprint ", info->model_fingerprint,
                     ", this model is ", model_fingerprint, ")"));
  }
  if (info->shape != expected) {
    return absl::FailedPreconditionError(absl::StrCat("state blob holds ", ShapeText(info->shape),
                                                      "; this stage needs ", ShapeText(expected)));
  }
  RwkvState state(expected);
  state.set_position(info->position);
  absl::Span<float> data = state.data();
  if constexpr (std::endian::native == std::endian::little) {
    // As in EncodeStateBlob: a blob of no layers has nothing to copy into a null data().
    if (!data.empty()) {
      std::memcpy(data.data(), blob.data() + kHeaderSize, data.size() * sizeof(float));
    }
  } else {
    for (size_t i = 0; i < data.size(); ++i) {
      const uint32_t bits = Get<uint32_t>(blob, kHeaderSize + 4 * i);
      std::memcpy(&data[i], &bits, 4);
    }
  }
  return state;
}

}  // namespace skein::model
