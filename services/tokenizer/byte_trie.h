// A double-array trie over byte strings, built once, that finds the longest stored key that
// is a prefix of a text. This is the World tokenizer's matcher.
//
// Layout: every state (node) owns a distinct `base`, leaves included, and its child on byte
// c is the cell base + c. A cell is one 64-bit word: the base of the state that lives in it,
// its label (the byte that leads to it) and the base of its failure link (below). A cell
// belongs to the state with base b and label c exactly when its index is b + c, so a walk
// checks only the label: since bases are unique, no other state's child sits at b + c with
// label c. Free cells get a label that no state can match (no base is 255 modulo 256, and a
// free cell t is labelled t + 1 modulo 256, pointing at such a non-base), and so does every
// cell a leaf's base points at; walkers need no test for "no children". Each step of a walk is
// an add, one load and a byte compare.
//
// Because bases are unique, a state is named by its base, and a second array indexed by base
// describes each state: its depth (the length of the prefix that leads to it), the longest
// key that is a prefix of that path (the state's own key if one ends there), and its link.
//
// Failure links serve greedy segmentation (GreedySegmenter): where a walk from state v cannot
// go on, the greedy key is the longest key on v's path, and the next key starts right after
// it, so the next walk has already read the rest of v's path. The link of v is the state of
// that rest: the root when a key ends at v, else the state for v's path minus its longest key
// when there is one. A walker that fails at v on byte c goes on at the link's child on c in one
// step, without re-reading the text. Where v's rest is no state (the greedy segmentation then
// takes two or more keys from v's path), or the link has no child on c, that step lands on a
// cell whose label is not c; a walker detects this by checking the label (see
// GreedySegmenter). Such v link to themselves, so their failure cells never carry label c.
// The whole World vocabulary takes about 3 MB (1 MB of cells, 2 MB of states).
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
  // bytes, the one that comes first in `keys` wins. Cells are indexed by 32 bits, so the keys
  // must have fewer than about 2^32 - 2^24 distinct prefixes in all; failure links are kept
  // while every base is below 2^24 (about 16 million prefixes).
  static ByteTrie Build(absl::Span<const Key> keys);

  // Longest stored key that is a prefix of `text`.
  Match LongestPrefix(absl::string_view text) const {
    if (cells_.empty()) return {0, 0};
    const auto* p = reinterpret_cast<const uint8_t*>(text.data());
    const Cell* cells = cells_.data();
    uint32_t base = BaseOf(cells[kRoot]);
    size_t walked = 0;
    for (; walked < text.size(); ++walked) {
      const Cell cell = cells[base + p[walked]];
      if (LabelOf(cell) != p[walked]) break;
      base = BaseOf(cell);
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

  // True if every state has its failure link (every base is below 2^24).
  bool has_links() const { return has_links_; }

  // Length of the longest key; a walk never reads more than this many bytes plus one.
  size_t max_key_length() const { return max_key_length_; }

  size_t memory_bytes() const {
    return cells_.size() * sizeof(Cell) + states_.size() * sizeof(State);
  }

 private:
  friend class ByteTrieBuilder;
  friend class GreedySegmenter;

  // One slot of the double array: bits 0-31 hold the base of the state that lives in it,
  // bits 32-39 its label, bits 40-63 the base of its failure link. GreedySegmenter's
  // assembly relies on this layout.
  using Cell = uint64_t;
  static constexpr int kLabelShift = 32;
  static constexpr int kLinkShift = 40;
  static constexpr uint32_t kMaxLinkedBase = (1u << 24) - 1;
  static uint32_t BaseOf(Cell cell) { return static_cast<uint32_t>(cell); }
  static uint8_t LabelOf(Cell cell) { return static_cast<uint8_t>(cell >> kLabelShift); }
  static uint32_t LinkOf(Cell cell) { return static_cast<uint32_t>(cell >> kLinkShift); }
  // The label of cells[index], read as the one byte it is (a narrower load than the cell's).
  static uint8_t LabelAt(const Cell* cells, size_t index) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return reinterpret_cast<const uint8_t*>(cells + index)[kLabelShift / 8];
#else
    return LabelOf(cells[index]);
#endif
  }
  static Cell MakeCell(uint32_t base, uint8_t label, uint32_t link) {
    return Cell{base} | Cell{label} << kLabelShift | Cell{link} << kLinkShift;
  }

  // What a state stands for, at states_[its base]. A base that no state has holds zeros.
  struct State {
    uint32_t key_value;   // value of the longest key that prefixes the state's path, or 0
    uint32_t key_length;  // that key's length: `depth` exactly when a key ends here
    uint32_t depth;       // length of the state's path (0 for the root)
    uint32_t link;        // base of the failure link (the state's own base where it has none)
  };
  static constexpr uint32_t kRoot = 0;  // the root's cell

  std::vector<Cell> cells_;
  std::vector<State> states_;  // indexed by base; size cells_.size() - 255
  size_t max_key_length_ = 0;
  bool covers_all_bytes_ = false;
  bool has_links_ = false;
};

}  // namespace skein::tokenizer

#endif  // SKEIN_SERVICES_TOKENIZER_BYTE_TRIE_H_
