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
      ByteTrie::State state{task.key_value, task.key_length, task.depth, 0};
      uint32_t i = task.lo;
      if (i < task.hi && Bytes(order, i).size() == task.depth) {
        state.key_value = keys_[order[i]].value;  // the first of equal keys
        state.key_length = task.depth;
      }
      while (i < task.hi && Bytes(order, i).size() == task.depth) ++i;
      state_of_cell_[task.cell] = state;
      visit_order_.push_back(task.cell);
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
      base_of_cell_[task.cell] = base;
      for (size_t k = 0; k < labels.size(); ++k) {
        const uint32_t child = base + labels[k];
        Use(child);
        label_of_cell_[child] = labels[k];
        parent_of_cell_[child] = task.cell;
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
    uint32_t cell;                   // where the state lives
    uint32_t lo, hi;                 // range of `order` whose keys all pass through the state
    uint32_t depth;                  // length of the prefix that leads to the state
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
    const uint32_t old_size = static_cast<uint32_t>(used_.size());
    const uint32_t new_size = old_size + static_cast<uint32_t>(count);
    base_of_cell_.resize(new_size, 0);
    label_of_cell_.resize(new_size, 0);
    parent_of_cell_.resize(new_size, 0);
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
    if (size > used_.size()) Grow(std::max(size - used_.size(), used_.size() / 2));
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
    if (head_ == kNone) Grow(used_.size() / 2);
    if (many && scan_start_ == kNone) scan_start_ = head_;
    uint32_t cell = many ? scan_start_ : head_;
    for (int probe = 0; probe < kMaxProbes; ++probe) {
      if (cell > labels[0]) {
        const uint32_t base = cell - labels[0];
        EnsureSize(static_cast<size_t>(base) + 256);
        bool fits = Available(base);
        for (size_t k = 1; k < labels.size() && fits; ++k) fits = !used_[base + labels[k]];
        if (fits) return TakeBase(base);
      }
      const uint32_t next = next_[cell];
      if (next == head_) break;  // `cell` is the last free cell
      if (many && cell == scan_start_ && ++failures_[cell] >= kMaxFailures) scan_start_ = next;
      cell = next;
    }
    uint32_t base = std::max<uint32_t>(max_used_ + 1 - std::min<uint32_t>(max_used_, labels[0]), 1);
    while (!Available(base)) ++base;
    return TakeBase(base);
  }

  // Whether `base` can be given to a state: no state has it, and it is not 255 modulo 256
  // (free cells point their labels at such bases, see ByteTrie).
  bool Available(uint32_t base) const {
    return (base & 255) != 255 && (base >= base_taken_.size() || !base_taken_[base]);
  }

  uint32_t TakeBase(uint32_t base) {
    EnsureSize(static_cast<size_t>(base) + 256);
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

  // Gives every leaf a base of its own, one that no internal state has. Then drops the cells
  // past the last one a lookup can reach, fills the table of states, finds the failure links
  // and packs the cells.
  void Finish(const std::vector<uint32_t>& leaves) {
    size_t size = std::max<size_t>(max_used_ + 1, static_cast<size_t>(max_base_) + 256);
    uint32_t base = 0;
    for (uint32_t leaf : leaves) {
      while (!Available(base)) ++base;
      TakeBase(base);
      size = std::max<size_t>(size, static_cast<size_t>(base) + 256);
      base_of_cell_[leaf] = base++;
    }
    const uint32_t root_base = base_of_cell_[ByteTrie::kRoot];
    // Free cells: a label that points at no base, and the root as state and link, so that a
    // failure step that lands on one (and is rejected for its label) resumes at the root.
    // t + 1 modulo 256 points at t - 255 modulo 256, which is no base (see Available).
    auto free_label = [](size_t cell) { return static_cast<uint8_t>(cell + 1); };
    trie_.cells_.resize(size);
    for (size_t c = 0; c < size; ++c) {
      trie_.cells_[c] = ByteTrie::MakeCell(root_base, free_label(c), root_base);
    }
    trie_.states_.assign(size - 255, ByteTrie::State{0, 0, 0, 0});
    for (size_t c = 0; c <= max_used_; ++c) {
      if (!used_[c]) continue;
      trie_.states_[base_of_cell_[c]] = state_of_cell_[c];  // its link follows below
      // The root's cell is no child: it keeps a free cell's label.
      const uint8_t label = c == ByteTrie::kRoot ? free_label(c) : label_of_cell_[c];
      trie_.cells_[c] = ByteTrie::MakeCell(base_of_cell_[c], label, 0);
    }
    trie_.has_links_ = max_base_ <= ByteTrie::kMaxLinkedBase;
    if (!trie_.has_links_) return;
    // Parents first: a state's link follows from its parent's (see SetLink).
    for (uint32_t cell : visit_order_) SetLink(cell, root_base);
  }

  // The failure link of the state in `cell` (see ByteTrie): the root where a key ends there;
  // else the state of the path's rest after its longest key, else the state itself. Where no
  // key ends at a state, its longest key is its parent's, so its rest is the parent's rest
  // plus its label: the link is the child of the parent's link on that label, if both exist.
  void SetLink(uint32_t cell, uint32_t root_base) {
    const ByteTrie::State& s = state_of_cell_[cell];
    const uint32_t own = base_of_cell_[cell];
    uint32_t link = own;
    if (s.key_length == s.depth) {
      link = root_base;
    } else if (s.key_length > 0) {
      const uint32_t parent = base_of_cell_[parent_of_cell_[cell]];
      const uint32_t parent_link = trie_.states_[parent].link;
      const uint8_t label = label_of_cell_[cell];
      const ByteTrie::Cell next = trie_.cells_[parent_link + label];
      if (parent_link != parent && ByteTrie::LabelOf(next) == label) link = ByteTrie::BaseOf(next);
    }
    trie_.states_[own].link = link;
    trie_.cells_[cell] |= ByteTrie::Cell{link} << ByteTrie::kLinkShift;
  }

  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr uint8_t kMaxFailures = 16;
  static constexpr int kMaxProbes = 256;
  absl::Span<const ByteTrie::Key> keys_;
  ByteTrie trie_;
  std::vector<uint8_t> used_;                   // cell holds a state
  std::vector<uint8_t> base_taken_;             // some state has this base
  std::vector<uint32_t> next_, prev_;           // the ring of free cells
  std::vector<ByteTrie::State> state_of_cell_;  // what each used cell's state stands for
  std::vector<uint32_t> base_of_cell_;          // the base of each used cell's state
  std::vector<uint8_t> label_of_cell_;          // the byte that leads to each used cell
  std::vector<uint32_t> parent_of_cell_;        // the cell of each used cell's parent
  std::vector<uint32_t> visit_order_;           // used cells, each after its parent
  std::vector<uint8_t> failures_;  // searches that started at this free cell and failed
  uint32_t head_ = kNone;          // the first free cell
  uint32_t scan_start_ = kNone;    // where searches for several children start
  uint32_t max_used_ = 0;
  uint32_t max_base_ = 0;
};

ByteTrie ByteTrie::Build(absl::Span<const Key> keys) { return ByteTrieBuilder(keys).Build(); }

}  // namespace skein::tokenizer
