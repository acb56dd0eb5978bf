// A double-array trie over byte strings, built once, that finds the longest stored key that
// is a prefix of a text. This is the World tokenizer's matcher.
//
// Layout: every state that has children owns a distinct `base`, and its child on byte c is
// the cell base + c, which belongs to it iff that cell's check equals base. A cell is 8 bytes:
// its state's own base, and the check with a flag for "a key ends here" in the top bit. So
// each step of a walk is an add and one load that depends on the previous step (the check is
// off that chain), and a state without children ends the walk without a further probe. The
// values of keys sit in a separate array indexed by cell and are read only where a key ends.
// The whole World vocabulary takes about 1.4 MB.
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
  // A key to store and the value found for it (non-zero).
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
    Match best{0, 0};
    if (cells_.empty()) return best;
    const auto* p = reinterpret_cast<const uint8_t*>(text.data());
    const Cell* cells = cells_.data();
    uint32_t base = cells[kRoot].base;
    for (size_t i = 0; i < text.size(); ++i) {
      const uint32_t index = base + p[i];
      const Cell cell = cells[index];
      if (cell.parent_base() != base) break;
      if (cell.ends_key()) best = {values_[index], i + 1};
      base = cell.base;
    }
    return best;
  }

  // True if every single byte is a stored key, so that any text can be segmented into keys.
  bool covers_all_bytes() const { return covers_all_bytes_; }

  // Length of the longest key; a walk never reads more than this many bytes plus one.
  size_t max_key_length() const { return max_key_length_; }

  size_t memory_bytes() const { return cells_.size() * (sizeof(Cell) + sizeof(uint32_t)); }

 private:
  friend class ByteTrieBuilder;
  friend class GreedySegmenter;

  // One slot of the double array. Every base b has b + 255 < cells_.size(), 0 included.
  //
  // A state without children has base 0, and no cell's check is 0 (free cells and the root
  // hold kNoParent), so a walk that steps from such a state finds a check that differs from
  // its base and stops, like any other mismatch. A walker thus needs no test for "no
  // children", which keeps branch-free walks (greedy_segmenter.cc) simple.
  struct Cell {
    uint32_t base = 0;           // children at base + byte; 0 for a state without children
    uint32_t check_and_end = 0;  // (a key ends here) << 31 | the parent's base
    uint32_t parent_base() const { return check_and_end & 0x7FFFFFFF; }
    bool ends_key() const { return (check_and_end >> 31) != 0; }
  };
  static constexpr uint32_t kRoot = 0;  // the root's cell
  // The check of cells that are no state's child; no base is this large.
  static constexpr uint32_t kNoParent = 0x7FFFFFFF;

  std::vector<Cell> cells_;
  std::vector<uint32_t> values_;  // value of the key ending at each cell, 0 where none does
  size_t max_key_length_ = 0;
  bool covers_all_bytes_ = false;
};

}  // namespace skein::tokenizer

#endif  // SKEIN_SERVICES_TOKENIZER_BYTE_TRIE_H_
