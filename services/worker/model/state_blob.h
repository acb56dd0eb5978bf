// A versioned, checksummed binary encoding of an RwkvState, for the state store.
//
// Layout (little-endian):
//   offset  size  field
//   0       8     magic "SKEINST7"
//   8       4     format version (1)
//   12      4     header size in bytes (64)
//   16      8     model fingerprint (RwkvWeights::fingerprint)
//   24      4     first layer
//   28      4     last layer (exclusive)
//   32      8     C
//   40      4     H (0: RWKV-4, whose att state is aa, bb, pp per channel)
//   44      4     N (0 for RWKV-4)
//   48      8     position (tokens consumed)
//   56      8     payload size in bytes
//   64      …     payload: the state's floats (fp32), layer by layer:
//                 att_x_prev [C], att_kv [H][N][N] (RWKV-4: [3][C]), ffn_x_prev [C]
//   end−8   8     XXH3-64 of every byte before it (header and payload)
//
// Decoding checks, in order: length and magic (INVALID_ARGUMENT: not a state blob), version
// (FAILED_PRECONDITION: written by another format), checksum and sizes (DATA_LOSS: corrupt
// or truncated), then that the blob fits the caller's model and layer range
// (FAILED_PRECONDITION). Thread-safe (pure functions).
#ifndef SKEIN_SERVICES_WORKER_MODEL_STATE_BLOB_H_
#define SKEIN_SERVICES_WORKER_MODEL_STATE_BLOB_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "services/worker/model/state.h"

namespace skein::model {

inline constexpr uint32_t kStateBlobVersion = 1;

// Encodes `state` of the model with `fingerprint`.
std::string EncodeStateBlob(const RwkvState& state, uint64_t model_fingerprint);

// What a blob says about itself, read without decoding the payload. Fails as DecodeStateBlob
// does for a malformed or corrupt blob.
struct StateBlobInfo {
  uint32_t version = 0;
  uint64_t model_fingerprint = 0;
  StateShape shape;
  int64_t position = 0;
};
absl::StatusOr<StateBlobInfo> InspectStateBlob(std::string_view blob);

// Decodes a blob into a state, requiring it to come from the model with
// `model_fingerprint` and to have exactly `expected` shape (layer range and dimensions).
absl::StatusOr<RwkvState> DecodeStateBlob(std::string_view blob, uint64_t model_fingerprint,
                                          const StateShape& expected);

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_STATE_BLOB_H_
