#include "services/router/state_keys.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "xxhash.h"

namespace skein::router {
namespace {

ChainHash FromXxh(XXH128_hash_t x) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, x);
  ChainHash h;
  std::memcpy(h.data(), c.digest, h.size());
  return h;
}

}  // namespace

ChainHash PipelineIdentity(const std::vector<v1::StageInfo>& stages) {
  std::string description = "skein-pipeline-v1";
  for (const v1::StageInfo& s : stages) {
    absl::StrAppend(&description, "|", s.model().model().fingerprint(), ":", s.layers().first(),
                    "-", s.layers().last(), ":", s.model().weight_dtype(), ":",
                    s.model().architecture());
  }
  return FromXxh(XXH3_128bits(description.data(), description.size()));
}

ChainHash InitialStateChain(const ChainHash& identity, std::string_view state_digest) {
  std::string description = absl::StrCat("skein-initial-state-v1|", HashHex(identity), "|");
  description.append(state_digest.data(), state_digest.size());
  return FromXxh(XXH3_128bits(description.data(), description.size()));
}

ChainHash ExtendChain(const ChainHash& h, std::span<const uint32_t> tokens) {
  ChainHash out = h;
  uint8_t buffer[20];
  for (uint32_t t : tokens) {
    std::memcpy(buffer, out.data(), 16);
    for (int b = 0; b < 4; ++b) buffer[16 + b] = static_cast<uint8_t>(t >> (8 * b));
    out = FromXxh(XXH3_128bits(buffer, sizeof(buffer)));
  }
  return out;
}

std::string HashHex(const ChainHash& h) {
  std::string s;
  s.reserve(32);
  for (uint8_t b : h) absl::StrAppendFormat(&s, "%02x", b);
  return s;
}

bool HashFromBytes(std::string_view bytes, ChainHash* h) {
  if (bytes.size() != h->size()) return false;
  std::memcpy(h->data(), bytes.data(), h->size());
  return true;
}

std::string StateKey(const ChainHash& identity, const ChainHash& chain) {
  return absl::StrCat("skein/states/", HashHex(identity), "/", HashHex(chain));
}

std::string SessionKey(std::string_view session_id) {
  std::string key(kSessionKeyPrefix);
  key.append(session_id);
  return key;
}

bool ValidSessionId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  // "." and ".." are not valid store key segments.
  return id != "." && id != "..";
}

}  // namespace skein::router
