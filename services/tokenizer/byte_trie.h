// A double-array trie over byte strings, built once, that finds the longest stored key that
// is a prefix of a text. This is the World tokenizer's matcher.
//
// Layout: state s has `base`; its child on byte c is t = base[s] + c, valid iff check[t] == s.
// One probe per input byte, no branches on node shape and no allocation, so a lookup costs
// a few nanoseconds per byte. The cells of a state's children are near each other, and the
// whole World vocabulary takes about 1.5 MB.
//
// Immutable after Build(); safe for concurrent use from any number of threads.
#ifndef SKEIN_SERVICES_TOKENIZER_BYTE_TRIE_H_
#define SKEIN_SERVICES_TOKENIZER_BYTE_TRIE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace skein::tokenizer {

class ByteTrie {
 public:
  // A key to store and the value found for it. Values must be non-zero.
  struct Key {
    absl::string_view bytes;
    uint32_t value;
  };

  // The longest stored key that prefixes a text: its value and length, or {0, 0} if none.
  struct Match {
    uint32_t value;
    size_t length;
  };

  ByteTrie() = default;

  // Builds the trie. Empty keys and zero values are ignored. When several keys have the same
  // bytes, the one that comes first in `keys` wins.
  static ByteTrie Build(absl::Span<const Key> keys);

  // Longest stored key that is a prefix of `text`.
  Match LongestPrefix(absl::string_view text) const {
    const auto* p = reinterpret_cast<const uint8_t*>(text.data());
    const Cell* cells = cells_.data();
    Match best{0, 0};
    if (cells == nullptr) return best;
    uint32_t state = kRoot;
    for (size_t i = 0; i < text.size(); ++i) {
      const uint32_t next = cells[state].base + p[i];
      if (cells[next].check != state) break;
      state = next;
      if (cells[state].value != 0) best = {cells[state].value, i + 1};
    }
    return best;
  }

  // Number of cells (states plus unused slots); for memory accounting.
  size_t cell_count() const { return cells_.size(); }
  size_t memory_bytes() const { return cells_.size() * sizeof(Cell); }

 private:
  struct Cell {
    uint32_t base = 0;          // children at base + byte; 0 for a state with no children
    uint32_t check = kNoState;  // parent state; kNoState for an unused cell and the root
    uint32_t value = 0;         // value of the key ending here, 0 if none
  };
  static constexpr uint32_t kRoot = 0;
  static constexpr uint32_t kNoState = UINT32_MAX;

  friend class ByteTrieBuilder;
  std::vector<Cell> cells_;
};

}  // namespace skein::tokenizer

#endif  // SKEIN_SERVICES_TOKENIZER_BYTE_TRIE_H_
