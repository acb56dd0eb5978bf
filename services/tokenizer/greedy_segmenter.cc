#include "services/tokenizer/greedy_segmenter.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace skein::tokenizer {
namespace {

// The constants were tuned on the World vocabulary and a mixed-language text (see
// docs/benchmarks.md, "Tokenizer"); the result does not depend on them.
//
// Lanes in flight at once. A step's dependency chain is an add, a load and three one-cycle
// instructions, so several lanes must overlap to keep the CPU busy (6 to 12 lanes with 4 or 8
// steps per visit measured within 10% of each other; 8 x 4 was best).
constexpr size_t kLanes = 8;
// Segments are long enough that joining them (a few LongestPrefix calls each) and the
// hardware prefetcher's warm-up cost little, and a batch of kMaxSegmentsPerBatch of them
// keeps all lanes busy until near its end.
constexpr size_t kMaxSegmentBytes = 4096;
constexpr size_t kMinSegmentBytes = 64;
// Steps a lane takes each time it is visited. More steps per visit save loads and stores of
// the lane's state but lengthen each visit's chain, so fewer lanes overlap.
constexpr int kStepsPerVisit = 4;
// How far ahead of a lane its text is prefetched: many interleaved streams are more than the
// hardware prefetcher follows well.
constexpr size_t kPrefetchBytes = 256;

// Outputs of SegmentInto. Add appends one value; Reserve(n) gives room for up to n values
// and Commit(m) keeps the first m of them.

// Appends the values to a vector, in place: room is made just before it is written, so the
// vector's zero-filling of new elements touches cache lines that are written next anyway.
class VectorOutput {
 public:
  explicit VectorOutput(std::vector<uint32_t>* values) : values_(*values), size_(values->size()) {}
  ~VectorOutput() { values_.resize(size_); }

  void Add(uint32_t value) {
    if (size_ == values_.size()) Grow(1);
    values_[size_++] = value;
  }
  uint32_t* Reserve(size_t count) {
    if (values_.size() - size_ < count) Grow(count);
    return values_.data() + size_;
  }
  void Commit(size_t count) { size_ += count; }

 private:
  // Makes room for `count` values, and for up to kRoom within the capacity the vector has.
  void Grow(size_t count) {
    values_.resize(size_ + std::max(count, std::min(kRoom, values_.capacity() - size_)));
  }

  static constexpr size_t kRoom = 256;
  std::vector<uint32_t>& values_;
  size_t size_;  // values_ beyond this are room, not output
};

// Counts the values; Reserve hands out scratch room.
class CountingOutput {
 public:
  void Add(uint32_t) { ++count_; }
  uint32_t* Reserve(size_t count) {
    if (scratch_.size() < count) scratch_.resize(count);
    return scratch_.data();
  }
  void Commit(size_t count) { count_ += count; }
  size_t count() const { return count_; }

 private:
  std::vector<uint32_t> scratch_;
  size_t count_ = 0;
};

}  // namespace

void GreedySegmenter::Segment(absl::string_view text, std::vector<uint32_t>* values) const {
  VectorOutput output(values);
  SegmentInto(text, output);
}

size_t GreedySegmenter::CountKeys(absl::string_view text) const {
  CountingOutput output;
  SegmentInto(text, output);
  return output.count();
}

void GreedySegmenter::SegmentSimply(absl::string_view text, std::vector<uint32_t>* values) const {
  VectorOutput output(values);
  SegmentSimplyInto(text, output);
}

template <class Output>
void GreedySegmenter::SegmentSimplyInto(absl::string_view text, Output& output) const {
  while (!text.empty()) {
    const ByteTrie::Match m = trie_->LongestPrefix(text);
    if (m.length == 0) break;
    output.Add(m.value);
    text.remove_prefix(m.length);
  }
}

template <class Output>
void GreedySegmenter::SegmentInto(absl::string_view text, Output& output) const {
  const ByteTrie& trie = *trie_;
  // A lane's walk that starts at s reads bytes up to s + max_key_length() (the one that ends
  // it), and a lane starts walks before its segment's end + kStepsPerVisit, so lanes never
  // read past the text.
  const size_t margin = trie.max_key_length() + kStepsPerVisit + 1;
  // Lanes need a key for every byte (a walk that fails where a key ends goes on at the
  // root's child for the byte) and the failure links.
  if (!trie.covers_all_bytes() || !trie.has_links() ||
      text.size() < margin + kLanes * kMinSegmentBytes) {
    SegmentSimplyInto(text, output);
    return;
  }
  const size_t walk_bytes = text.size() - margin;
  const size_t segment_bytes = std::min(kMaxSegmentBytes, (walk_bytes + kLanes - 1) / kLanes);
  const size_t batch_bytes = segment_bytes * kMaxSegmentsPerBatch;

  const auto* const begin = reinterpret_cast<const uint8_t*>(text.data());
  const auto size = static_cast<ptrdiff_t>(text.size());

  Batch batch;
  batch.segment_bytes = segment_bytes;
  // Every emitted state stands for at least one byte, and a lane emits its last state at
  // most kStepsPerVisit bytes past its segment's end.
  batch.states_per_segment = segment_bytes + kStepsPerVisit + 2;
  std::vector<uint32_t> states(
      batch.states_per_segment *
      std::min(kMaxSegmentsPerBatch, (walk_bytes + segment_bytes - 1) / segment_bytes));
  batch.states = states.data();

  const ByteTrie::State* const state_of_base = trie.states_.data();
  const ByteTrie::Cell* const cells = trie.cells_.data();
  const uint32_t root_base = ByteTrie::BaseOf(cells[ByteTrie::kRoot]);
  // Offsets into the text. Signed: a lane that went on from a wrong state may seem to have
  // started its walk before the text.
  ptrdiff_t done = 0;  // the true segmentation before this offset is in `output`
  auto extend = [&trie, &output, &done, begin, size] {
    const ByteTrie::Match m = trie.LongestPrefix(absl::string_view(
        reinterpret_cast<const char*>(begin + done), static_cast<size_t>(size - done)));
    output.Add(m.value);
    done += static_cast<ptrdiff_t>(m.length);
  };
  // The lane's failure step after the walk that started at `start` and ended in `state`:
  // where the lane's next walk (seemingly) started, and in `*on_link` whether the step
  // landed on the link's child, i.e. whether that next walk reads the text.
  auto next_walk = [&](const ByteTrie::State& state, ptrdiff_t start, bool* on_link) {
    const ptrdiff_t stopped = start + state.depth;
    const uint8_t byte = begin[stopped];
    const ByteTrie::Cell next = cells[state.link + byte];
    *on_link = ByteTrie::LabelOf(next) == byte;
    return stopped + 1 - static_cast<ptrdiff_t>(state_of_base[ByteTrie::BaseOf(next)].depth);
  };
  for (size_t offset = 0; offset < walk_bytes; offset += batch_bytes) {
    batch.begin = begin + offset;
    batch.end = begin + std::min(walk_bytes, offset + batch_bytes);
    if (step_ == Step::kPortable) {
      WalkBatch<true>(&batch);
    } else {
      WalkBatch<false>(&batch);
    }

    for (size_t s = 0; s < batch.segments; ++s) {
      const uint32_t* const emitted = batch.states + s * batch.states_per_segment;
      const size_t count = batch.counts[s];
      // Where the walk that ended in emitted[k] started, and whether that walk read the text
      // from there (it did not after a failure step that landed on a cell of the wrong label).
      auto lane = static_cast<ptrdiff_t>(offset + s * segment_bytes);
      bool read_text = true;
      size_t k = 0;
      while (k < count) {
        if (lane == done && read_text) {
          // A common boundary: the lane's walk is the greedy walk from here, so its state's
          // longest key is the greedy key, and the lane stays right while its failure steps
          // land where they should (the link's child on the byte the walk stopped at).
          uint32_t* const out = output.Reserve(count - k);
          const uint32_t* next_state = emitted + k;
          const uint32_t* const states_end = emitted + count;
          uint32_t* next_out = out;
          do {
            const ByteTrie::State& state = state_of_base[*next_state++];
            *next_out++ = state.key_value;
            const ptrdiff_t stopped = done + state.depth;
            const uint8_t byte = begin[stopped];
            const uint32_t next = state.link + byte;
            done += state.key_length;
            if (ByteTrie::LabelAt(cells, next) != byte) [[unlikely]] {
              bool on_link;  // false: the label was just found wrong
              lane = next_walk(state, stopped - state.depth, &on_link);
              read_text = false;
              break;
            }
          } while (next_state != states_end);
          output.Commit(static_cast<size_t>(next_out - out));
          k = static_cast<size_t>(next_state - emitted);
          if (read_text) lane = done;
        } else if (lane < done) {
          // Skip a lane key inside the true segmentation, following where its lane went.
          const ByteTrie::State& state = state_of_base[emitted[k++]];
          bool on_link;
          lane = next_walk(state, lane, &on_link);
          // From the root (a key ended) the walk reads the text again whatever came before.
          read_text = on_link && (read_text || state.link == root_base);
        } else {
          extend();
        }
      }
    }
  }
  while (done < size) extend();
}

// One lane's walk, in registers while it takes its steps.
template <bool kPortableStep>
struct GreedySegmenter::Walk {
  const uint8_t* at;    // the next byte to read is at[offset] in a visit's step `offset`
  size_t n;             // where in `emitted` the state of the walk in progress goes
  ByteTrie::Cell cell;  // the current state's cell: its base, label and link

  // Reads the byte at[kOffset]. Branch-free, because where a walk stops is not predictable:
  // the current state is stored unconditionally and kept (n advances) only where the walk
  // cannot go on, and the next cell is the child's or, where the child's label is wrong, the
  // failure link's child on the same byte. (GCC compiles the C++ selects below to branches,
  // hence the assembly for x86-64, which is the same steps.)
  // `stops` holds 0 or 1 between steps (setne writes only its low byte).
  template <int kOffset>
  __attribute__((always_inline)) void Step(const ByteTrie::Cell* cells, uint32_t* emitted,
                                           uint64_t& stops) {
#if defined(__x86_64__)
    if constexpr (!kPortableStep) {
      static_assert(ByteTrie::kLabelShift == 32 && ByteTrie::kLinkShift == 40);
      uint64_t byte, index, link;
      asm("movzbl %c[offset](%[at]), %k[byte]\n\t"
          "leal (%q[cell], %[byte]), %k[index]\n\t"  // the base is the low 32 bits
          "movq %q[cell], %[link]\n\t"
          "shrq $40, %[link]\n\t"
          "movl %k[cell], (%[emitted], %[n], 4)\n\t"
          "addl %k[byte], %k[link]\n\t"
          "cmpb %b[byte], 4(%[cells], %[index], 8)\n\t"  // the child's label
          "movq (%[cells], %[index], 8), %[cell]\n\t"
          "cmovneq (%[cells], %[link], 8), %[cell]\n\t"
          "setne %b[stops]\n\t"
          "addq %[stops], %[n]"
          : [n] "+r"(n), [cell] "+r"(cell), [byte] "=&r"(byte), [index] "=&r"(index),
            [link] "=&r"(link), [stops] "+r"(stops)
          : [at] "r"(at), [offset] "i"(kOffset), [cells] "r"(cells), [emitted] "r"(emitted)
          : "cc", "memory");
      return;
    }
#endif
    const uint8_t byte = at[kOffset];
    const ByteTrie::Cell child = cells[ByteTrie::BaseOf(cell) + byte];
    emitted[n] = ByteTrie::BaseOf(cell);
    stops = ByteTrie::LabelOf(child) != byte ? 1 : 0;
    n += stops;
    cell = stops != 0 ? cells[ByteTrie::LinkOf(cell) + byte] : child;
  }

  // kSteps steps, unrolled.
  template <int... kOffsets>
  __attribute__((always_inline)) void Steps(std::integer_sequence<int, kOffsets...>,
                                            const ByteTrie::Cell* cells, uint32_t* emitted) {
    uint64_t stops = 0;
    (Step<kOffsets>(cells, emitted, stops), ...);
    at += sizeof...(kOffsets);
  }
};

template <bool kPortableStep>
void GreedySegmenter::WalkBatch(Batch* batch) const {
  const ByteTrie::Cell* const cells = trie_->cells_.data();
  uint32_t* const emitted = batch->states;
  const size_t segment_bytes = batch->segment_bytes;

  struct Lane {
    Walk<kPortableStep> walk;
    const uint8_t* segment_end;  // the lane finishes its segment at or past this byte
    size_t segment;
  };

  batch->segments =
      static_cast<size_t>(batch->end - batch->begin + segment_bytes - 1) / segment_bytes;
  size_t next_segment = 0;
  auto start = [&](Lane& lane) {
    const size_t s = next_segment++;
    lane.walk.at = batch->begin + s * segment_bytes;
    lane.walk.n = s * batch->states_per_segment;
    lane.walk.cell = cells[ByteTrie::kRoot];
    lane.segment_end = std::min(lane.walk.at + segment_bytes, batch->end);
    lane.segment = s;
  };

  // Visits a lane: kStepsPerVisit steps, and at its segment's end the rest of the walk in
  // progress. False when the lane has finished its segment and there is no other to start.
  auto visit = [&](Lane & lane) __attribute__((always_inline)) {
    Walk<kPortableStep> walk = lane.walk;
    __builtin_prefetch(walk.at + kPrefetchBytes);
    walk.Steps(std::make_integer_sequence<int, kStepsPerVisit>(), cells, emitted);
    lane.walk = walk;
    if (walk.at < lane.segment_end) [[likely]]
      return true;
    const size_t stop = walk.n + 1;
    while (walk.n != stop) walk.Steps(std::integer_sequence<int, 0>(), cells, emitted);
    const size_t s = lane.segment;
    batch->counts[s] = walk.n - s * batch->states_per_segment;
    if (next_segment == batch->segments) return false;
    start(lane);
    return true;
  };

  Lane lanes[kLanes];
  size_t active = 0;
  while (active < kLanes && next_segment < batch->segments) start(lanes[active++]);
  // While every lane is busy, rounds are unrolled over the lanes, so that each lane's state
  // sits at a fixed address. A lane that runs out of segments ends its round early; the
  // others continue in the loop below.
  bool all_busy = active == kLanes;
  while (all_busy) {
    [&]<size_t... kLane>(std::index_sequence<kLane...>) __attribute__((always_inline)) {
      ((all_busy = all_busy && visit(lanes[kLane])), ...);
    }
    (std::make_index_sequence<kLanes>());
  }
  for (size_t l = 0; l < active; ++l) {
    if (lanes[l].walk.at >= lanes[l].segment_end) lanes[l--] = lanes[--active];
  }
  while (active > 0) {
    for (size_t l = 0; l < active; ++l) {
      if (visit(lanes[l])) continue;
      lanes[l--] = lanes[--active];  // and visit the lane moved here in this round too
    }
  }
}

}  // namespace skein::tokenizer
