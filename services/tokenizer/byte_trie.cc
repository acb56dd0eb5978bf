#include "services/tokenizer/byte_trie.h"

#include <algorithm>
#include <numeric>

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
      if (!keys_[i].bytes.empty() && keys_[i].value != 0) order.push_back(i);
    }
    // Stable, so that among equal keys the earliest one is met first and wins.
    std::stable_sort(order.begin(), order.end(),
                     [this](uint32_t a, uint32_t b) { return keys_[a].bytes < keys_[b].bytes; });

    Grow(1024);
    Use(ByteTrie::kRoot);
    std::vector<Task> stack = {{ByteTrie::kRoot, 0, static_cast<uint32_t>(order.size()), 0}};
    std::vector<uint8_t> labels;
    std::vector<Task> children;
    while (!stack.empty()) {
      const Task task = stack.back();
      stack.pop_back();
      uint32_t i = task.lo;
      for (; i < task.hi && Bytes(order, i).size() == task.depth; ++i) {
        uint32_t& value = trie_.cells_[task.state].value;
        if (value == 0) value = keys_[order[i]].value;
      }
      if (i == task.hi) continue;  // a leaf: base stays 0

      labels.clear();
      children.clear();
      while (i < task.hi) {
        const uint8_t label = Label(order, i, task.depth);
        uint32_t j = i + 1;
        while (j < task.hi && Label(order, j, task.depth) == label) ++j;
        labels.push_back(label);
        children.push_back({0, i, j, task.depth + 1});
        i = j;
      }
      const uint32_t base = FindBase(labels);
      trie_.cells_[task.state].base = base;
      for (size_t k = 0; k < labels.size(); ++k) {
        const uint32_t child = base + labels[k];
        Use(child);
        trie_.cells_[child].check = task.state;
        children[k].state = child;
      }
      // Reverse, so the smallest label is expanded first.
      stack.insert(stack.end(), children.rbegin(), children.rend());
    }
    Trim();
    return std::move(trie_);
  }

 private:
  struct Task {
    uint32_t state;
    uint32_t lo, hi;  // range of `order` whose keys all pass through `state`
    uint32_t depth;   // length of the prefix that leads to `state`
  };

  absl::string_view Bytes(const std::vector<uint32_t>& order, uint32_t i) const {
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
    used_.resize(new_size, 0);
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
      head_ = kNone;
      return;
    }
    next_[prev_[c]] = next_[c];
    prev_[next_[c]] = prev_[c];
    if (head_ == c) head_ = next_[c];
  }

  // The smallest-found base >= 1 at which every label's cell is free.
  uint32_t FindBase(const std::vector<uint8_t>& labels) {
    if (head_ == kNone) Grow(trie_.cells_.size() / 2);
    uint32_t cell = head_;
    while (true) {
      if (cell > labels[0]) {
        const uint32_t base = cell - labels[0];
        EnsureSize(static_cast<size_t>(base) + 256);
        bool fits = true;
        for (size_t k = 1; k < labels.size() && fits; ++k) fits = !used_[base + labels[k]];
        if (fits) {
          max_base_ = std::max(max_base_, base);
          return base;
        }
      }
      if (next_[cell] == head_) Grow(trie_.cells_.size() / 2);  // `cell` is the tail
      cell = next_[cell];
    }
  }

  // Drops unused cells past the last one a lookup can reach.
  void Trim() {
    const size_t keep = std::max<size_t>(max_used_ + 1, static_cast<size_t>(max_base_) + 256);
    trie_.cells_.resize(keep);
    trie_.cells_.shrink_to_fit();
  }

  static constexpr uint32_t kNone = UINT32_MAX;
  absl::Span<const ByteTrie::Key> keys_;
  ByteTrie trie_;
  std::vector<uint8_t> used_;
  std::vector<uint32_t> next_, prev_;  // the ring of free cells
  uint32_t head_ = kNone;
  uint32_t max_used_ = 0;
  uint32_t max_base_ = 0;
};

ByteTrie ByteTrie::Build(absl::Span<const Key> keys) { return ByteTrieBuilder(keys).Build(); }

}  // namespace skein::tokenizer
