// A double-array trie over byte strings, built once, that finds the longest stored key that
// is a prefix of a text. This is the World tokenizer's matcher.
//
// Layout: every state (node) owns a distinct `base`, leaves included, and its child on byte
// c is the cell base + c, which belongs to it iff that cell's check equals base. A cell is 8
// bytes: its state's base and the check (its parent's base). So each step of a walk is an
// add, one load that depends on the previous step and a compare. A leaf's base is a value no
// internal state uses, so no cell's check equals it and every step from a leaf fails like any
// other mismatch: walkers need no test for "no children".
//
// Because bases are unique, a state is named by its base, and a second array indexed by base
// describes each state: its depth (the length of the prefix that leads to it) and the longest
// key that is a prefix of that path (the state's own key if one ends there). A walk therefore
// tracks nothing but the base: where it stops, one lookup gives the longest key it passed.
// The whole World vocabulary takes about 2.5 MB.
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
  // bytes, the one that comes first in `keys` wins. The trie's cells are indexed by 32 bits,
  // so the keys must have fewer than about 2^32 - 2^16 distinct prefixes in all.
  static ByteTrie Build(absl::Span<const Key> keys);

  // Longest stored key that is a prefix of `text`.
  Match LongestPrefix(absl::string_view text) const {
    if (cells_.empty()) return {0, 0};
    const auto* p = reinterpret_cast<const uint8_t*>(text.data());
    const Cell* cells = cells_.data();
    uint32_t base = cells[kRoot].base;
    size_t walked = 0;
    for (; walked < text.size(); ++walked) {
      const Cell cell = cells[base + p[walked]];
      if (cell.check != base) break;
      base = cell.base;
    }
    const State& state = states_[base];
    // Most walks stop where a key ends, so the key's length is usually the length walked. A
    // predicted branch (not a select, nor key_length alone, to which the compiler would fold
    // it without the empty asm) lets a caller's next walk start from there before the
    // state's load completes, instead of adding that load's latency to every key.
    size_t length = walked;
    if (state.key_length != walked) [[unlikely]] {
      length = state.key_length;
      asm volatile("" : "+r"(length));
    }
    return {state.key_value, length};
  }

  // True if every single byte is a stored key, so that any text can be segmented into keys.
  bool covers_all_bytes() const { return covers_all_bytes_; }

  // Length of the longest key; a walk never reads more than this many bytes plus one.
  size_t max_key_length() const { return max_key_length_; }

  size_t memory_bytes() const {
    return cells_.size() * sizeof(Cell) + states_.size() * sizeof(State);
  }

 private:
  friend class ByteTrieBuilder;
  friend class GreedySegmenter;

  // One slot of the double array. Every base b has b + 255 < cells_.size().
  struct Cell {
    uint32_t base = 0;           // the state's own base (its children are at base + byte)
    uint32_t check = kNoParent;  // the parent's base; kNoParent for the root and free cells
  };
  // What a state stands for, at states_[its base]. A base that no state has holds zeros.
  struct State {
    uint32_t key_value;   // value of the longest key that prefixes the state's path, or 0
    uint32_t key_length;  // that key's length: `depth` exactly when a key ends here
    uint32_t depth;       // length of the state's path (0 for the root)
  };
  static constexpr uint32_t kRoot = 0;  // the root's cell
  // The check of cells that are no state's child; no base is this large.
  static constexpr uint32_t kNoParent = 0xFFFFFFFF;

  std::vector<Cell> cells_;
  std::vector<State> states_;  // indexed by base; size cells_.size() - 255
  size_t max_key_length_ = 0;
  bool covers_all_bytes_ = false;
};

}  // namespace skein::tokenizer

#endif  // SKEIN_SERVICES_TOKENIZER_BYTE_TRIE_H_
