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
  // A lane's key that starts at s reads bytes up to s + max_key_length() (the one that ends
  // it), and a lane starts keys before its segment's end + kStepsPerVisit, so lanes never
  // read past the text.
  const size_t margin = trie.max_key_length() + kStepsPerVisit + 1;
  // Lanes need a key for every byte: every byte starts a key at the root's child for it.
  if (!trie.covers_all_bytes() || text.size() < margin + kLanes * kMinSegmentBytes) {
    SegmentSimplyInto(text, output);
    return;
  }
  const size_t walk_bytes = text.size() - margin;
  const size_t segment_bytes = std::min(kMaxSegmentBytes, (walk_bytes + kLanes - 1) / kLanes);
  const size_t batch_bytes = segment_bytes * kMaxSegmentsPerBatch;

  const auto* begin = reinterpret_cast<const uint8_t*>(text.data());
  const uint8_t* const end = begin + text.size();

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
  const uint8_t* done = begin;  // the true segmentation before this point is in `output`
  auto extend = [&trie, &output, &done, end] {
    const ByteTrie::Match m = trie.LongestPrefix(
        absl::string_view(reinterpret_cast<const char*>(done), static_cast<size_t>(end - done)));
    output.Add(m.value);
    done += m.length;
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
      const uint8_t* lane = batch.begin + s * segment_bytes;  // where emitted[k] starts
      size_t k = 0;
      while (k < count) {
        if (lane < done) {
          lane += state_of_base[emitted[k++]].depth;
          continue;
        }
        if (lane > done) {
          extend();
          continue;
        }
        // A common boundary. The greedy key here is the longest key on the lane's path, and
        // the two stay together while that is the whole path.
        uint32_t* const out = output.Reserve(count - k);
        size_t written = 0;
        do {
          const ByteTrie::State& state = state_of_base[emitted[k++]];
          out[written++] = state.key_value;
          done += state.key_length;
          lane += state.depth;
        } while (k < count && lane == done);
        output.Commit(written);
      }
    }
  }
  while (done < end) extend();
}

// One lane's walk, in registers while it takes its steps.
template <bool kPortableStep>
struct GreedySegmenter::Walk {
  const uint8_t* at;  // the next byte to read is at[offset] in a visit's step `offset`
  size_t n;           // where in `emitted` the state of the key in progress goes
  uint32_t base;      // the current state's base

  // Reads the byte at[kOffset]. Branch-free, because where a key ends is not predictable:
  // the current state is stored unconditionally and kept (n advances) only where the walk
  // cannot go on. (GCC compiles the C++ selects below to branches, hence the assembly for
  // x86-64, which is the same steps.)
  template <int kOffset>
  __attribute__((always_inline)) void Step(const ByteTrie::Cell* cells,
                                           const ByteTrie::Cell* root_child,
                                           uint32_t* emitted) {
#if defined(__x86_64__)
    if constexpr (!kPortableStep) {
      uint64_t byte, index, mismatch;
      asm("movzbl %c[offset](%[at]), %k[byte]\n\t"
          "leal (%q[base], %[byte]), %k[index]\n\t"
          "movl 4(%[cells], %[index], 8), %k[mismatch]\n\t"
          "movl %[base], (%[emitted], %[n], 4)\n\t"
          "xorl %[base], %k[mismatch]\n\t"  // zero iff the walk goes on
          "movl (%[cells], %[index], 8), %[base]\n\t"
          "negl %k[mismatch]\n\t"  // carry iff the walk stops
          "cmovbl (%[root_child], %[byte], 8), %[base]\n\t"
          "adcq $0, %[n]"
          : [n] "+r"(n), [base] "+r"(base), [byte] "=&r"(byte), [index] "=&r"(index),
            [mismatch] "=&r"(mismatch)
          : [at] "r"(at), [offset] "i"(kOffset), [cells] "r"(cells),
            [root_child] "r"(root_child), [emitted] "r"(emitted)
          : "cc", "memory");
      return;
    }
#endif
    const uint8_t byte = at[kOffset];
    const ByteTrie::Cell cell = cells[base + byte];
    emitted[n] = base;
    // No cell's check is a leaf's base (see ByteTrie), so every step from a leaf stops.
    const bool stops = cell.check != base;
    n += stops ? 1 : 0;
    base = stops ? root_child[byte].base : cell.base;
  }

  // kSteps steps, unrolled.
  template <int... kOffsets>
  __attribute__((always_inline)) void Steps(std::integer_sequence<int, kOffsets...>,
                                            const ByteTrie::Cell* cells,
                                            const ByteTrie::Cell* root_child,
                                            uint32_t* emitted) {
    (Step<kOffsets>(cells, root_child, emitted), ...);
    at += sizeof...(kOffsets);
  }
};

template <bool kPortableStep>
void GreedySegmenter::WalkBatch(Batch* batch) const {
  const ByteTrie::Cell* const cells = trie_->cells_.data();
  const uint32_t root_base = cells[ByteTrie::kRoot].base;
  // root_child[c] is the root's child on byte c (every byte has one).
  const ByteTrie::Cell* const root_child = cells + root_base;
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
    lane.walk.base = root_base;
    lane.segment_end = std::min(lane.walk.at + segment_bytes, batch->end);
    lane.segment = s;
  };

  Lane lanes[kLanes];
  size_t active = 0;
  while (active < kLanes && next_segment < batch->segments) start(lanes[active++]);
  while (active > 0) {
    for (size_t l = 0; l < active; ++l) {
      Lane& lane = lanes[l];
      Walk<kPortableStep> walk = lane.walk;
      __builtin_prefetch(walk.at + kPrefetchBytes);
      walk.Steps(std::make_integer_sequence<int, kStepsPerVisit>(), cells, root_child, emitted);
      lane.walk = walk;
      if (walk.at < lane.segment_end) [[likely]]
        continue;
      // Finish the key in progress, then the segment.
      const size_t stop = walk.n + 1;
      while (walk.n != stop) walk.Steps(std::integer_sequence<int, 0>(), cells, root_child, emitted);
      const size_t s = lane.segment;
      batch->counts[s] = walk.n - s * batch->states_per_segment;
      if (next_segment < batch->segments) {
        start(lane);
      } else {
        lane = lanes[--active];
        --l;  // visit the lane moved here in this round too
      }
    }
  }
}

}  // namespace skein::tokenizer
