// Names of what the router keeps in the state store, and the chain hash behind the
// prefix-state cache.
//
// A pipeline's identity is a 128-bit hash of every stage's weight fingerprint (a hash of all
// of its weight bytes), layer range and weight dtype, in stage order. The state after feeding
// tokens t0..tn-1 from the zero state is content-addressed by the chain
//   h(0) = identity,  h(i+1) = XXH3-128(h(i) || t_i as 4 little-endian bytes)
// (from a named initial state instead of zeros, h(0) = InitialStateChain(identity, digest))
// and stored as a multi-part snapshot (one part per stage) under StateKey(identity, h(n)).
// So a state can only ever be found by a pipeline that computes exactly the same function,
// two requests that share a prefix share its state, and a session's snapshot is also a
// prefix-cache entry (forks share it without copying a byte).
#ifndef SKEIN_SERVICES_ROUTER_STATE_KEYS_H_
#define SKEIN_SERVICES_ROUTER_STATE_KEYS_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "skein/v1/worker.pb.h"

namespace skein::router {

using ChainHash = std::array<uint8_t, 16>;

// The identity of a pipeline whose stages, in order, describe themselves as `stages`.
ChainHash PipelineIdentity(const std::vector<v1::StageInfo>& stages);

// The chain's start for states grown from a named initial state rather than the zero state:
// a hash of the identity and the initial state's digest (InitialState.digest), so prefixes
// fed from different starting states never share an entry.
ChainHash InitialStateChain(const ChainHash& identity, std::string_view state_digest);

// h extended by `tokens`.
ChainHash ExtendChain(const ChainHash& h, std::span<const uint32_t> tokens);

std::string HashHex(const ChainHash& h);
// Parses 16 raw bytes (as stored in a SessionRecord); false if the size is wrong.
bool HashFromBytes(std::string_view bytes, ChainHash* h);
inline std::string HashBytes(const ChainHash& h) {
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

// "skein/states/<identity hex>/<chain hex>".
std::string StateKey(const ChainHash& identity, const ChainHash& chain);
// "skein/sessions/<id>", and the prefix every session key starts with.
std::string SessionKey(std::string_view session_id);
inline constexpr std::string_view kSessionKeyPrefix = "skein/sessions/";

// Whether `id` is a valid session id: 1..128 characters of [A-Za-z0-9._-].
bool ValidSessionId(std::string_view id);

}  // namespace skein::router

#endif  // SKEIN_SERVICES_ROUTER_STATE_KEYS_H_
