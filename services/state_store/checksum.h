// End-to-end checksums of state blobs: CRC32C (Castagnoli; SSE4.2 instruction where the CPU
// has it, a table-driven portable version otherwise) and XXH3-64 (seed 0, from libxxhash).
// Writers compute a checksum of the raw bytes, the store verifies it on the way in and again
// on every read, and readers may verify it once more.
//
// ChecksumAccumulator is not thread-safe (one per stream); the free functions are.
#ifndef SKEIN_SERVICES_STATE_STORE_CHECKSUM_H_
#define SKEIN_SERVICES_STATE_STORE_CHECKSUM_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

namespace skein::state_store {

enum class ChecksumAlgorithm {
  kCrc32c,
  kXxh3_64,
};

// "crc32c" or "xxh3_64".
std::string_view ChecksumAlgorithmName(ChecksumAlgorithm algorithm);
// Parses the names above (and "xxh3"); nullopt for anything else.
std::optional<ChecksumAlgorithm> ParseChecksumAlgorithm(std::string_view name);

// CRC32C of `data` continuing from `crc` (0 for a fresh sum). Crc32c(Crc32c(0, a), b) ==
// Crc32c(0, a + b). Uses SSE4.2 when available.
uint32_t Crc32c(uint32_t crc, std::string_view data);
// The same sum computed with tables only; the reference that the fast path is tested against.
uint32_t Crc32cPortable(uint32_t crc, std::string_view data);
// True when Crc32c() uses the SSE4.2 instruction on this CPU.
bool Crc32cIsHardwareAccelerated();

// The checksum of `data` under `algorithm` (CRC32C widened to 64 bits).
uint64_t ComputeChecksum(ChecksumAlgorithm algorithm, std::string_view data);

// Computes a checksum over data that arrives in pieces.
class ChecksumAccumulator {
 public:
  explicit ChecksumAccumulator(ChecksumAlgorithm algorithm);
  ~ChecksumAccumulator();
  ChecksumAccumulator(const ChecksumAccumulator&) = delete;
  ChecksumAccumulator& operator=(const ChecksumAccumulator&) = delete;

  void Update(std::string_view data);
  // The checksum of everything passed to Update so far; may be called more than once.
  uint64_t Value() const;

 private:
  struct Xxh3State;
  ChecksumAlgorithm algorithm_;
  uint32_t crc_ = 0;
  std::unique_ptr<Xxh3State> xxh3_;
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_CHECKSUM_H_
