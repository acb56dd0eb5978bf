#include "services/tokenizer/byte_trie.h"

#include <algorithm>

namespace skein::tokenizer {

// Places the states of a sorted key set into the double array, depth first so that a
// state's children land near it. Free cells form a doubly linked ring, so finding room for
// a state's children skips used cells in O(1) each.
class ByteTrieBuilder {
 public:
  explicit ByteTrieBuilder(absl::Span<const ByteTrie::Key> keys) : keys_(keys) {}

  ByteTrie Build() {
    std::vector<uint32_t> order;
    order.reserve(keys_.size());
    for (uint32_t i = 0; i < keys_.size(); ++i) {
      const ByteTrie::Key& key = keys_[i];
      if (!key.bytes.empty() && key.value != 0) {
        order.push_back(i);
      }
    }
    SortKeys(order);
    for (uint32_t index : order) {
      trie_.max_key_length_ = std::max(trie_.max_key_length_, keys_[index].bytes.size());
    }
    // One cell per state (one per distinct prefix) plus some slack for the gaps.
    size_t states = 1;
    for (size_t i = 0; i < order.size(); ++i) {
      const absl::string_view key = Bytes(order, i);
      size_t shared = 0;
      if (i > 0) {
        const absl::string_view prev = Bytes(order, i - 1);
        while (shared < key.size() && shared < prev.size() && key[shared] == prev[shared]) {
          ++shared;
        }
      }
      states += key.size() - shared;
    }
    Grow(states + states / 8 + 1024);
    Use(ByteTrie::kRoot);
    std::vector<Task> stack = {{ByteTrie::kRoot, 0, static_cast<uint32_t>(order.size()), 0, 0, 0}};
    std::vector<uint8_t> labels;
    std::vector<Task> children;
    std::vector<uint32_t> leaves;
    while (!stack.empty()) {
      const Task task = stack.back();
      stack.pop_back();
      // A copy: FindBase may grow state_of_cell_.
      ByteTrie::State state{task.key_value, task.key_length, task.depth};
      uint32_t i = task.lo;
      if (i < task.hi && Bytes(order, i).size() == task.depth) {
        state.key_value = keys_[order[i]].value;  // the first of equal keys
        state.key_length = task.depth;
      }
      while (i < task.hi && Bytes(order, i).size() == task.depth) ++i;
      state_of_cell_[task.cell] = state;
      if (i == task.hi) {
        leaves.push_back(task.cell);
        continue;
      }

      labels.clear();
      children.clear();
      while (i < task.hi) {
        const uint8_t label = Label(order, i, task.depth);
        uint32_t j = i + 1;
        while (j < task.hi && Label(order, j, task.depth) == label) ++j;
        labels.push_back(label);
        children.push_back({0, i, j, task.depth + 1, state.key_value, state.key_length});
        i = j;
      }
      const uint32_t base = FindBase(labels);
      trie_.cells_[task.cell].base = base;
      for (size_t k = 0; k < labels.size(); ++k) {
        const uint32_t child = base + labels[k];
        Use(child);
        trie_.cells_[child].check = base;
        children[k].cell = child;
      }
      // Reverse, so the smallest label is expanded first.
      stack.insert(stack.end(), children.rbegin(), children.rend());
    }
    Finish(leaves);
    trie_.covers_all_bytes_ = CoversAllBytes();
    return std::move(trie_);
  }

 private:
  struct Task {
    uint32_t cell;    // where the state lives
    uint32_t lo, hi;  // range of `order` whose keys all pass through the state
    uint32_t depth;   // length of the prefix that leads to the state
    uint32_t key_value, key_length;  // the longest key that is a proper prefix of that one
  };

  // Orders key indices by their bytes; equal keys keep their input order, so the earliest is
  // met first and wins. Comparing the first 8 bytes as one big-endian number settles most
  // comparisons without touching the strings.
  void SortKeys(std::vector<uint32_t>& order) const {
    struct Item {
      uint64_t prefix;
      uint32_t index;
    };
    std::vector<Item> items;
    items.reserve(order.size());
    for (uint32_t index : order) {
      const absl::string_view key = keys_[index].bytes;
      uint64_t prefix = 0;
      for (size_t i = 0; i < 8; ++i) {
        prefix = prefix << 8 | (i < key.size() ? static_cast<uint8_t>(key[i]) : 0);
      }
      items.push_back({prefix, index});
    }
    std::sort(items.begin(), items.end(), [this](const Item& a, const Item& b) {
      if (a.prefix != b.prefix) return a.prefix < b.prefix;
      const int c = keys_[a.index].bytes.compare(keys_[b.index].bytes);
      return c != 0 ? c < 0 : a.index < b.index;
    });
    for (size_t i = 0; i < items.size(); ++i) order[i] = items[i].index;
  }

  absl::string_view Bytes(const std::vector<uint32_t>& order, size_t i) const {
    return keys_[order[i]].bytes;
  }
  uint8_t Label(const std::vector<uint32_t>& order, uint32_t i, uint32_t depth) const {
    return static_cast<uint8_t>(Bytes(order, i)[depth]);
  }

  // Appends `count` free cells and links them at the end of the free ring.
  void Grow(size_t count) {
    const uint32_t old_size = static_cast<uint32_t>(trie_.cells_.size());
    const uint32_t new_size = old_size + static_cast<uint32_t>(count);
    trie_.cells_.resize(new_size);
    state_of_cell_.resize(new_size);
    used_.resize(new_size, 0);
    base_taken_.resize(new_size, 0);
    failures_.resize(new_size, 0);
    next_.resize(new_size);
    prev_.resize(new_size);
    for (uint32_t c = old_size; c < new_size; ++c) {
      if (head_ == kNone) {
        head_ = c;
        next_[c] = prev_[c] = c;
        continue;
      }
      const uint32_t tail = prev_[head_];
      next_[tail] = c;
      prev_[c] = tail;
      next_[c] = head_;
      prev_[head_] = c;
    }
  }

  void EnsureSize(size_t size) {
    if (size > trie_.cells_.size()) {
      Grow(std::max(size - trie_.cells_.size(), trie_.cells_.size() / 2));
    }
  }

  void Use(uint32_t c) {
    used_[c] = 1;
    max_used_ = std::max(max_used_, c);
    if (next_[c] == c) {
      head_ = scan_start_ = kNone;
      return;
    }
    // Past the tail, the search restarts from the first free cell.
    if (scan_start_ == c) scan_start_ = next_[c] == head_ ? kNone : next_[c];
    next_[prev_[c]] = next_[c];
    prev_[next_[c]] = prev_[c];
    if (head_ == c) head_ = next_[c];
  }

  // A base >= 1, not yet any state's, at which every label's cell is free. A state with
  // one child fits at almost any free cell, so its search starts at the first one; for more
  // children it starts at scan_start_, which moves past free cells that have failed
  // kMaxFailures searches (holes in a densely filled region would otherwise be re-examined by
  // every later search). After kMaxProbes candidates the children go past the last used cell,
  // where everything is free, so a search never costs more than that.
  uint32_t FindBase(const std::vector<uint8_t>& labels) {
    const bool many = labels.size() > 1;
    if (head_ == kNone) Grow(trie_.cells_.size() / 2);
    if (many && scan_start_ == kNone) scan_start_ = head_;
    uint32_t cell = many ? scan_start_ : head_;
    for (int probe = 0; probe < kMaxProbes; ++probe) {
      if (cell > labels[0]) {
        const uint32_t base = cell - labels[0];
        EnsureSize(static_cast<size_t>(base) + 256);
        bool fits = !base_taken_[base];
        for (size_t k = 1; k < labels.size() && fits; ++k) fits = !used_[base + labels[k]];
        if (fits) return TakeBase(base);
      }
      const uint32_t next = next_[cell];
      if (next == head_) break;  // `cell` is the last free cell
      if (many && cell == scan_start_ && ++failures_[cell] >= kMaxFailures) scan_start_ = next;
      cell = next;
    }
    uint32_t base = std::max<uint32_t>(max_used_ + 1 - std::min<uint32_t>(max_used_, labels[0]), 1);
    while (base_taken_.size() > base && base_taken_[base]) ++base;
    EnsureSize(static_cast<size_t>(base) + 256);
    return TakeBase(base);
  }

  uint32_t TakeBase(uint32_t base) {
    base_taken_[base] = 1;
    max_base_ = std::max(max_base_, base);
    return base;
  }

  bool CoversAllBytes() const {
    for (int byte = 0; byte < 256; ++byte) {
      const char c = static_cast<char>(byte);
      if (trie_.LongestPrefix(absl::string_view(&c, 1)).length != 1) return false;
    }
    return true;
  }

  // Gives every leaf a base of its own: one that no internal state has, so no cell's check
  // equals it. Then drops the cells past the last one a lookup can reach and fills the table
  // of states.
  void Finish(const std::vector<uint32_t>& leaves) {
    size_t size = std::max<size_t>(max_used_ + 1, static_cast<size_t>(max_base_) + 256);
    size_t base = 0;
    for (uint32_t leaf : leaves) {
      while (base < base_taken_.size() && base_taken_[base]) ++base;
      size = std::max(size, base + 256);
      trie_.cells_[leaf].base = static_cast<uint32_t>(base++);
    }
    trie_.cells_.resize(size);  // new cells are free
    trie_.states_.assign(size - 255, ByteTrie::State{0, 0, 0});
    for (size_t c = 0; c <= max_used_; ++c) {
      if (used_[c]) trie_.states_[trie_.cells_[c].base] = state_of_cell_[c];
    }
  }

  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr uint8_t kMaxFailures = 16;
  static constexpr int kMaxProbes = 256;
  absl::Span<const ByteTrie::Key> keys_;
  ByteTrie trie_;
  std::vector<uint8_t> used_;          // cell holds a state
  std::vector<uint8_t> base_taken_;    // some state has this base
  std::vector<uint32_t> next_, prev_;  // the ring of free cells
  std::vector<ByteTrie::State> state_of_cell_;  // what each used cell's state stands for
  std::vector<uint8_t> failures_;      // searches that started at this free cell and failed
  uint32_t head_ = kNone;              // the first free cell
  uint32_t scan_start_ = kNone;        // where searches for several children start
  uint32_t max_used_ = 0;
  uint32_t max_base_ = 0;
};

ByteTrie ByteTrie::Build(absl::Span<const Key> keys) { return ByteTrieBuilder(keys).Build(); }

}  // namespace skein::tokenizer
