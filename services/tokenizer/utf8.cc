#include "services/tokenizer/utf8.h"

#include <cstdint>
#include <cstring>

namespace skein::tokenizer {
namespace {

bool InRange(uint8_t b, uint8_t lo, uint8_t hi) { return b >= lo && b <= hi; }

// Sequence length announced by a lead byte, or 0 for a byte that never starts a sequence.
size_t LeadLength(uint8_t b) {
  if (b < 0x80) return 1;
  if (InRange(b, 0xC2, 0xDF)) return 2;
  if (InRange(b, 0xE0, 0xEF)) return 3;
  if (InRange(b, 0xF0, 0xF4)) return 4;
  return 0;
}

// Allowed range of the byte after `lead` (Unicode Table 3-7); later bytes are always 80..BF.
void SecondByteRange(uint8_t lead, uint8_t* lo, uint8_t* hi) {
  *lo = 0x80;
  *hi = 0xBF;
  switch (lead) {
    case 0xE0:
      *lo = 0xA0;
      break;  // no overlong 3-byte forms
    case 0xED:
      *hi = 0x9F;
      break;  // no surrogates
    case 0xF0:
      *lo = 0x90;
      break;  // no overlong 4-byte forms
    case 0xF4:
      *hi = 0x8F;
      break;  // nothing above U+10FFFF
    default:
      break;
  }
}

bool AllAscii8(const char* p) {
  uint64_t word;
  std::memcpy(&word, p, sizeof(word));
  return (word & 0x8080808080808080ULL) == 0;
}

}  // namespace

Utf8Sequence NextUtf8Sequence(absl::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t need = LeadLength(p[0]);
  if (need == 1) return {Utf8Sequence::Kind::kValid, 1};
  if (need == 0) return {Utf8Sequence::Kind::kInvalid, 1};
  uint8_t lo, hi;
  SecondByteRange(p[0], &lo, &hi);
  size_t i = 1;
  for (; i < need; ++i) {
    if (i == bytes.size()) return {Utf8Sequence::Kind::kTruncated, i};
    if (!InRange(p[i], lo, hi)) return {Utf8Sequence::Kind::kInvalid, i};
    lo = 0x80;
    hi = 0xBF;
  }
  return {Utf8Sequence::Kind::kValid, need};
}

bool IsValidUtf8(absl::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    if (pos + 8 <= bytes.size() && AllAscii8(bytes.data() + pos)) {
      pos += 8;
      continue;
    }
    const Utf8Sequence seq = NextUtf8Sequence(bytes.substr(pos));
    if (seq.kind != Utf8Sequence::Kind::kValid) return false;
    pos += seq.length;
  }
  return true;
}

size_t AppendUtf8Repaired(absl::string_view bytes, bool at_end, std::string* out) {
  size_t pos = 0;
  size_t run_start = 0;  // start of valid bytes not yet appended
  while (pos < bytes.size()) {
    if (pos + 8 <= bytes.size() && AllAscii8(bytes.data() + pos)) {
      pos += 8;
      continue;
    }
    const Utf8Sequence seq = NextUtf8Sequence(bytes.substr(pos));
    if (seq.kind == Utf8Sequence::Kind::kValid) {
      pos += seq.length;
      continue;
    }
    out->append(bytes.data() + run_start, pos - run_start);
    if (seq.kind == Utf8Sequence::Kind::kTruncated && !at_end) return pos;
    out->append(kReplacementCharacter.data(), kReplacementCharacter.size());
    pos += seq.length;
    run_start = pos;
  }
  out->append(bytes.data() + run_start, pos - run_start);
  return pos;
}

std::string RepairUtf8(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  AppendUtf8Repaired(bytes, /*at_end=*/true, &out);
  return out;
}

}  // namespace skein::tokenizer
