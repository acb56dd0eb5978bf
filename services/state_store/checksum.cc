#include "services/state_store/checksum.h"

#include <nmmintrin.h>

#include <array>
#include <cstring>

#include "base/hash.h"
#include "xxhash.h"

namespace skein::state_store {
namespace {

// Reflected Castagnoli polynomial.
constexpr uint32_t kCrc32cPolynomial = 0x82F63B78u;

// Slicing-by-8 tables: kTables[k][b] is the CRC of byte b followed by k zero bytes.
using Crc32cTables = std::array<std::array<uint32_t, 256>, 8>;

constexpr Crc32cTables MakeTables() {
  Crc32cTables tables{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t crc = b;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? kCrc32cPolynomial : 0u);
    tables[0][b] = crc;
  }
  for (int k = 1; k < 8; ++k) {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t prev = tables[k - 1][b];
      tables[k][b] = (prev >> 8) ^ tables[0][prev & 0xFFu];
    }
  }
  return tables;
}

constexpr Crc32cTables kTables = MakeTables();

uint64_t LoadLittleEndian64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(uint32_t crc, std::string_view data) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  uint64_t c = ~crc;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7u) != 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
    --n;
  }
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, sizeof(word));
    c = _mm_crc32_u64(c, word);
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
    --n;
  }
  return ~static_cast<uint32_t>(c);
}

bool HasSse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif

}  // namespace

std::string_view ChecksumAlgorithmName(ChecksumAlgorithm algorithm) {
  switch (algorithm) {
    case ChecksumAlgorithm::kCrc32c:
      return "crc32c";
    case ChecksumAlgorithm::kXxh3_64:
      return "xxh3_64";
  }
  return "unknown";
}

std::optional<ChecksumAlgorithm> ParseChecksumAlgorithm(std::string_view name) {
  if (name == "crc32c") return ChecksumAlgorithm::kCrc32c;
  if (name == "xxh3_64" || name == "xxh3") return ChecksumAlgorithm::kXxh3_64;
  return std::nullopt;
}

uint32_t Crc32cPortable(uint32_t crc, std::string_view data) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  uint32_t c = ~crc;
  while (n >= 8) {
    uint64_t word = LoadLittleEndian64(p) ^ c;
    c = kTables[7][word & 0xFF] ^ kTables[6][(word >> 8) & 0xFF] ^ kTables[5][(word >> 16) & 0xFF] ^
        kTables[4][(word >> 24) & 0xFF] ^ kTables[3][(word >> 32) & 0xFF] ^
        kTables[2][(word >> 40) & 0xFF] ^ kTables[1][(word >> 48) & 0xFF] ^ kTables[0][word >> 56];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = (c >> 8) ^ kTables[0][(c ^ *p++) & 0xFF];
    --n;
  }
  return ~c;
}

bool Crc32cIsHardwareAccelerated() {
#if defined(__x86_64__)
  return HasSse42();
#else
  return false;
#endif
}

uint32_t Crc32c(uint32_t crc, std::string_view data) {
#if defined(__x86_64__)
  if (HasSse42()) return Crc32cSse42(crc, data);
#endif
  return Crc32cPortable(crc, data);
}

uint64_t ComputeChecksum(ChecksumAlgorithm algorithm, std::string_view data) {
  switch (algorithm) {
    case ChecksumAlgorithm::kCrc32c:
      return Crc32c(0, data);
    case ChecksumAlgorithm::kXxh3_64:
      return base::Xxh3_64(data.data(), data.size());
  }
  return 0;
}

struct ChecksumAccumulator::Xxh3State {
  Xxh3State() : state(XXH3_createState()) {}
  ~Xxh3State() { XXH3_freeState(state); }
  XXH3_state_t* state;
};

ChecksumAccumulator::ChecksumAccumulator(ChecksumAlgorithm algorithm) : algorithm_(algorithm) {
  if (algorithm_ == ChecksumAlgorithm::kXxh3_64) {
    xxh3_ = std::make_unique<Xxh3State>();
    XXH3_64bits_reset(xxh3_->state);
  }
}

ChecksumAccumulator::~ChecksumAccumulator() = default;

void ChecksumAccumulator::Update(std::string_view data) {
  if (xxh3_) {
    XXH3_64bits_update(xxh3_->state, data.data(), data.size());
  } else {
    crc_ = Crc32c(crc_, data);
  }
}

uint64_t ChecksumAccumulator::Value() const {
  if (xxh3_) return XXH3_64bits_digest(xxh3_->state);
  return crc_;
}

}  // namespace skein::state_store
