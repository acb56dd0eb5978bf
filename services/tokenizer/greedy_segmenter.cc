#include "services/tokenizer/greedy_segmenter.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace skein::tokenizer {
namespace {

// The constants were tuned on the World vocabulary and a mixed-language text (see
// docs/benchmarks.md, "Tokenizer"); the result does not depend on them.
//
// Walks in flight at once. A branch-free step is a longer dependency chain than a predicted
// one (the next byte's address waits for the cell load), so several walks must overlap;
// beyond about a dozen the out-of-order window holds no more of them.
constexpr size_t kLanes = 12;
// Segments are long enough that joining them (a few LongestPrefix calls each) and the
// hardware prefetcher's warm-up cost little, and a batch of kMaxSegmentsPerBatch of them
// keeps all lanes busy until near its end.
constexpr size_t kMaxSegmentBytes = 4096;
constexpr size_t kMinSegmentBytes = 64;
// Steps a walk takes each time its lane is visited. More steps per visit save loads and
// stores of the lane's state but lengthen each visit's chain, so fewer walks overlap.
constexpr int kStepsPerVisit = 2;
// How far ahead of a walk its text is prefetched: a dozen interleaved streams are more than
// the hardware prefetcher follows well.
constexpr size_t kPrefetchBytes = 256;

// Hands single values to a sink in runs rather than one call each.
class RunBuffer {
 public:
  explicit RunBuffer(GreedySegmenter::Sink sink) : sink_(sink) {}
  ~RunBuffer() { Flush(); }

  void Add(uint32_t value) {
    if (size_ == kCapacity) Flush();
    values_[size_++] = value;
  }
  void Flush() {
    if (size_ > 0) sink_(absl::MakeConstSpan(values_, size_));
    size_ = 0;
  }

 private:
  static constexpr size_t kCapacity = 256;
  GreedySegmenter::Sink sink_;
  uint32_t values_[kCapacity];
  size_t size_ = 0;
};

}  // namespace

void GreedySegmenter::SegmentSimply(absl::string_view text, Sink sink) const {
  RunBuffer run(sink);
  while (!text.empty()) {
    const ByteTrie::Match m = trie_->LongestPrefix(text);
    if (m.length == 0) break;
    run.Add(m.value);
    text.remove_prefix(m.length);
  }
}

void GreedySegmenter::Segment(absl::string_view text, Sink sink) const {
  const ByteTrie& trie = *trie_;
  // A walk from a key start s reads bytes up to s + max_key_length() (the last one to find
  // that the walk cannot go on), and a lane starts keys at most kStepsPerVisit bytes past the
  // end of its segment, so lanes never read past the text.
  const size_t margin = trie.max_key_length() + kStepsPerVisit + 1;
  // Lanes need a key for every byte: their walks never come back empty.
  if (!trie.covers_all_bytes() || text.size() < margin + kLanes * kMinSegmentBytes) {
    SegmentSimply(text, sink);
    return;
  }
  const size_t walk_bytes = text.size() - margin;
  const size_t segment_bytes = std::min(kMaxSegmentBytes, (walk_bytes + kLanes - 1) / kLanes);
  const size_t batch_bytes = segment_bytes * kMaxSegmentsPerBatch;

  const auto* begin = reinterpret_cast<const uint8_t*>(text.data());
  const uint8_t* const end = begin + text.size();
  auto rest = [end](const uint8_t* p) {
    return absl::string_view(reinterpret_cast<const char*>(p), end - p);
  };

  Batch batch;
  batch.segment_bytes = segment_bytes;
  // A segment has at most one key per byte, and a lane may start kStepsPerVisit + 1 keys
  // past the segment's end.
  batch.values_per_segment = segment_bytes + kStepsPerVisit + 2;
  std::vector<uint32_t> values(
      batch.values_per_segment *
      std::min(kMaxSegmentsPerBatch, (walk_bytes + segment_bytes - 1) / segment_bytes));
  batch.values = values.data();

  const uint32_t* const values_of_cells = trie.values_.data();
  RunBuffer run(sink);
  const uint8_t* done = begin;  // the segmentation before this point has been passed on
  for (size_t offset = 0; offset < walk_bytes; offset += batch_bytes) {
    batch.begin = begin + offset;
    batch.end = begin + std::min(walk_bytes, offset + batch_bytes);
    WalkBatch(&batch);

    for (size_t s = 0; s < batch.segments; ++s) {
      // Join segment s: `done` is a true key boundary, and `at` runs over the segment's
      // own key boundaries (found again with LongestPrefix, which agrees with the lanes).
      const uint8_t* at = batch.begin + s * segment_bytes;
      size_t skipped = 0;
      while (at != done) {
        if (at < done) {
          if (skipped == batch.counts[s]) break;  // no common boundary in this segment
          at += trie.LongestPrefix(rest(at)).length;
          ++skipped;
        } else {
          const ByteTrie::Match m = trie.LongestPrefix(rest(done));
          run.Add(m.value);
          done += m.length;
        }
      }
      if (at != done) continue;
      run.Flush();
      uint32_t* const keys = batch.values + s * batch.values_per_segment;
      if (batch.counts[s] > skipped) {
        for (size_t k = skipped; k < batch.counts[s]; ++k) keys[k] = values_of_cells[keys[k]];
        sink(absl::MakeConstSpan(keys + skipped, batch.counts[s] - skipped));
      }
      done = batch.ends[s];
    }
  }
  while (done < end) {
    const ByteTrie::Match m = trie.LongestPrefix(rest(done));
    run.Add(m.value);
    done += m.length;
  }
}

void GreedySegmenter::WalkBatch(Batch* batch) const {
  const ByteTrie::Cell* const cells = trie_->cells_.data();
  const uint32_t root_base = cells[ByteTrie::kRoot].base;
  const size_t segment_bytes = batch->segment_bytes;

  // One walk's state, in registers while the walk takes its steps.
  struct Walk {
    const uint8_t* at;        // the next byte to read
    const uint8_t* best_end;  // end of the longest key found since the key's start
    uint32_t* out;            // where the current key's cell goes
    uint32_t base;            // the current state's base (the root's at a key start)
    uint32_t best_cell;       // cell of the longest key found

    // One byte. Branch-free: where the walk cannot go on, the longest key found is written
    // out and the walk restarts at the root from that key's end, all by conditional moves,
    // because where a key ends is not predictable. (GCC compiles the C++ below to branches,
    // hence the assembly for x86-64, which is the same steps.)
    __attribute__((always_inline)) void Step(const ByteTrie::Cell* cells, uint32_t root_base) {
#if defined(__x86_64__)
      uint64_t index, diff;
      uint32_t* advanced;
      asm("movzbl (%[at]), %k[index]\n\t"
          "addl %[base], %k[index]\n\t"
          "movl 4(%[cells], %[index], 8), %k[diff]\n\t"
          "xorl %[base], %k[diff]\n\t"
          "movl (%[cells], %[index], 8), %[base]\n\t"
          "addq $1, %[at]\n\t"
          "leaq 4(%[out]), %[advanced]\n\t"
          "cmpl $0x80000000, %k[diff]\n\t"  // a key ends here
          "cmovel %k[index], %[best_cell]\n\t"
          "cmoveq %[at], %[best_end]\n\t"
          "movl %[best_cell], (%[out])\n\t"
          "addl %k[diff], %k[diff]\n\t"  // zero iff the walk goes on
          "cmovneq %[best_end], %[at]\n\t"
          "cmovnel %[root], %[base]\n\t"
          "cmovneq %[advanced], %[out]"
          : [at] "+r"(at), [best_end] "+r"(best_end), [out] "+r"(out), [base] "+r"(base),
            [best_cell] "+r"(best_cell), [index] "=&r"(index), [diff] "=&r"(diff),
            [advanced] "=&r"(advanced)
          : [cells] "r"(cells), [root] "r"(root_base)
          : "cc", "memory");
#else
      const uint32_t index = base + *at;
      const ByteTrie::Cell cell = cells[index];
      // Zero but for the key bit while the walk goes on. No cell's check is 0 (see
      // ByteTrie::Cell), so a state without children (base 0) always stops here.
      const uint32_t diff = cell.check_and_end ^ base;
      const bool found = diff == ~ByteTrie::kNoParent;
      const bool alive = (diff << 1) == 0;
      best_end = found ? at + 1 : best_end;
      best_cell = found ? index : best_cell;
      *out = best_cell;  // final once the walk stops
      out += alive ? 0 : 1;
      at = alive ? at + 1 : best_end;
      base = alive ? cell.base : root_base;
#endif
    }
  };
  struct Lane {
    Walk walk;
    const uint8_t* segment_end;  // the walk finishes its segment at or past this byte
    size_t segment;
  };

  batch->segments =
      static_cast<size_t>(batch->end - batch->begin + segment_bytes - 1) / segment_bytes;
  size_t next_segment = 0;
  auto start = [&](Lane& lane) {
    const size_t s = next_segment++;
    lane.walk.at = batch->begin + s * segment_bytes;
    lane.walk.best_end = lane.walk.at;
    lane.walk.out = batch->values + s * batch->values_per_segment;
    lane.walk.base = root_base;
    lane.walk.best_cell = ByteTrie::kRoot;
    lane.segment_end = std::min(lane.walk.at + segment_bytes, batch->end);
    lane.segment = s;
  };

  Lane lanes[kLanes];
  size_t active = 0;
  while (active < kLanes && next_segment < batch->segments) start(lanes[active++]);
  while (active > 0) {
    for (size_t l = 0; l < active; ++l) {
      Lane& lane = lanes[l];
      Walk walk = lane.walk;
      __builtin_prefetch(walk.at + kPrefetchBytes);
#pragma GCC unroll 8
      for (int i = 0; i < kStepsPerVisit; ++i) walk.Step(cells, root_base);
      lane.walk = walk;
      if (walk.at < lane.segment_end) [[likely]]
        continue;
      // Finish the key in progress, then the segment.
      const uint32_t* const stop = walk.out + 1;
      while (walk.out != stop) walk.Step(cells, root_base);
      const size_t s = lane.segment;
      batch->counts[s] =
          static_cast<size_t>(walk.out - (batch->values + s * batch->values_per_segment));
      batch->ends[s] = walk.at;
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
