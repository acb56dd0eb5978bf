// libFuzzer target: arbitrary bytes as a state blob (state_blob.h), as a worker reads them back
// from the state store. The last 8 bytes of a blob are an XXH3 checksum of the rest, which
// random mutations almost never keep right, so each input is tried twice: as it is (the magic,
// version, size and checksum checks) and with its checksum recomputed (everything behind the
// checksum: the header's shape arithmetic and the payload copy). A blob that decodes must
// re-encode to exactly its own bytes, and must be refused for another model or shape.
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "services/worker/model/state.h"
#include "services/worker/model/state_blob.h"

namespace skein::model {
namespace {

constexpr size_t kHeaderSize = 64;
constexpr size_t kChecksumSize = 8;

void CheckBlob(std::string_view blob) {
  absl::StatusOr<StateBlobInfo> info = InspectStateBlob(blob);
  if (!info.ok()) {
    // Decode reads the header through Inspect: it may not accept what Inspect refuses.
    if (DecodeStateBlob(blob, 0, StateShape{}).ok()) std::abort();
    return;
  }
  const StateShape& shape = info->shape;
  if (shape.total_floats() < 0 ||
      static_cast<uint64_t>(shape.total_floats()) * sizeof(float) + kHeaderSize + kChecksumSize !=
          blob.size()) {
    std::abort();
  }
  absl::StatusOr<RwkvState> state = DecodeStateBlob(blob, info->model_fingerprint, shape);
  if (!state.ok() || state->position() != info->position || state->shape() != shape) {
    std::abort();
  }
  if (EncodeStateBlob(*state, info->model_fingerprint) != blob) std::abort();
  // The blob of one model or stage never loads into another.
  if (DecodeStateBlob(blob, info->model_fingerprint ^ 1, shape).ok()) std::abort();
  StateShape other = shape;
  other.embd += 1;  // embd is bounded by Inspect, so this cannot overflow
  if (DecodeStateBlob(blob, info->model_fingerprint, other).ok()) std::abort();
}

}  // namespace
}  // namespace skein::model

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string blob(reinterpret_cast<const char*>(data), size);
  skein::model::CheckBlob(blob);
  if (size >= skein::model::kHeaderSize + skein::model::kChecksumSize) {
    const size_t body = size - skein::model::kChecksumSize;
    const uint64_t sum = XXH3_64bits(blob.data(), body);
    for (size_t i = 0; i < skein::model::kChecksumSize; ++i) {
      blob[body + i] = static_cast<char>(sum >> (8 * i));
    }
    skein::model::CheckBlob(blob);
  }
  return 0;
}
