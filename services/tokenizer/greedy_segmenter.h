// Greedy longest-match segmentation of a text into the keys of a ByteTrie: from the start,
// take the longest key that prefixes the rest, and repeat. The result is exactly that of a
// loop of ByteTrie::LongestPrefix calls, produced faster on long texts (docs/benchmarks.md,
// "Tokenizer").
//
// Why it is faster: a greedy walk is a chain of dependent loads (each step's cell address
// comes from the previous cell), so one walk leaves much of the CPU idle, and where each key
// ends there is a hard-to-predict branch. The segmenter cuts the text into segments and walks
// several of them at once in one thread ("lanes"), each from its own start, with branch-free
// steps; the walks are independent, so their loads overlap.
//
// A lane takes exactly one step per byte and never goes back. On a byte its state has a child
// for, it moves to the child. On any other byte it emits its state (by its base, which is
// unique: see ByteTrie) and moves to the child of the state's failure link on that byte. The
// greedy key there is the longest key on the state's path, and the link stands for the rest
// of the path after that key, which the next key starts with: the root where a key ends at
// the state (most keys), else a deeper state. So a lane follows the greedy segmentation from
// its start, except where that failure step is wrong: where the state has no link (the rest
// of its path is no trie state) or the link has no child on the byte. The step then lands on
// a cell whose label is not the byte, and the lane goes on from an unrelated state.
//
// One routine then puts the true segmentation together, segment by segment: `done` is where
// the true segmentation has got to, and it runs over the lane's keys next to it. Where a lane
// walk that read the text starts at `done`, its state's longest key is the greedy key; the
// routine takes it and checks the failure step's label (one load per key), which holds in all
// but about 1 % of keys on real text. Where the two differ (after a wrong failure step, and at
// the start of every segment, which is usually no true boundary), the true segmentation goes
// on one LongestPrefix at a time and the lane's keys are skipped until a boundary of both is
// met, after which both are the same (greedy matching depends only on where it starts). The
// skipped keys' failure steps tell where each lane walk started and whether it read the text:
// a walk that left the root did, whatever came before. That happens within a few keys in
// practice; if it never happens the true segmentation simply continues through the rest of
// the text, so the result is exact for every input.
//
// Thread-safe: stateless apart from the trie it reads, which must outlive the calls.
#ifndef SKEIN_SERVICES_TOKENIZER_GREEDY_SEGMENTER_H_
#define SKEIN_SERVICES_TOKENIZER_GREEDY_SEGMENTER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/tokenizer/byte_trie.h"

namespace skein::tokenizer {

class GreedySegmenter {
 public:
  // The code of a lane's step: x86-64 assembly where available, else the portable C++ one.
  // kPortable forces the C++ step, so that tests check it on x86-64 as well.
  enum class Step { kFastest, kPortable };

  explicit GreedySegmenter(const ByteTrie* trie, Step step = Step::kFastest)
      : trie_(trie), step_(step) {}

  // Appends to `*values` the value of each key of the greedy segmentation of `text`, written
  // straight into the vector. If some remainder of the text starts with no key (possible only
  // when the trie does not have every single byte as a key), the segmentation stops there,
  // as LongestPrefix loops do.
  void Segment(absl::string_view text, std::vector<uint32_t>* values) const;

  // The number of keys Segment would append, without storing their values.
  size_t CountKeys(absl::string_view text) const;

  // The reference: one LongestPrefix call per key. Same result as Segment, for tests.
  void SegmentSimply(absl::string_view text, std::vector<uint32_t>* values) const;

 private:
  static constexpr size_t kMaxSegmentsPerBatch = 32;

  // Consecutive segments of a text, each walked by a lane from its own start.
  struct Batch {
    const uint8_t* begin;  // segment s starts at begin + s * segment_bytes
    const uint8_t* end;    // the last segment ends here
    size_t segment_bytes;
    uint32_t* states;  // segment s's emitted states start at states + s * states_per_segment
    size_t states_per_segment;
    // Outputs of WalkBatch.
    size_t segments;
    size_t counts[kMaxSegmentsPerBatch];  // states each segment's lane emitted
  };

  // One lane's walk (greedy_segmenter.cc).
  template <bool kPortableStep>
  struct Walk;

  // Segment and CountKeys, writing to an output of greedy_segmenter.cc.
  template <class Output>
  void SegmentInto(absl::string_view text, Output& output) const;
  template <class Output>
  void SegmentSimplyInto(absl::string_view text, Output& output) const;

  // Segments every segment of `batch` independently, several lanes at a time.
  template <bool kPortableStep>
  void WalkBatch(Batch* batch) const;

  const ByteTrie* trie_;
  Step step_;
};

}  // namespace skein::tokenizer

#endif  // SKEIN_SERVICES_TOKENIZER_GREEDY_SEGMENTER_H_
