// Greedy longest-match segmentation of a text into the keys of a ByteTrie: from the start,
// take the longest key that prefixes the rest, and repeat. The result is exactly that of a
// loop of ByteTrie::LongestPrefix calls, produced somewhat faster on long texts (about 1.2x
// on the World vocabulary; docs/benchmarks.md, "Tokenizer").
//
// Why it is faster: one greedy walk is a chain of dependent loads (each step's cell address
// comes from the previous cell) plus a hard-to-predict branch where each key ends, so a
// single walk leaves much of the CPU idle. The segmenter cuts the text into segments and
// walks several of them at once in one thread, each from its own start, with branch-free
// steps; the walks are independent, so their loads overlap. A segment's start is usually
// not a true key boundary, so each segment's keys are then joined to what precedes them:
// the true segmentation is continued from the previous segment's end, one LongestPrefix at a
// time, until it reaches a boundary of the segment's own segmentation. From a common
// boundary on, both are the same (greedy matching depends only on where it starts), so the
// rest of the segment's keys are taken as they are. That happens within a few keys in
// practice; if it never happens, the true segmentation simply continues into the next
// segment, so the result is exact for every input.
//
// Thread-safe: stateless apart from the trie it reads, which must outlive the calls.
#ifndef SKEIN_SERVICES_TOKENIZER_GREEDY_SEGMENTER_H_
#define SKEIN_SERVICES_TOKENIZER_GREEDY_SEGMENTER_H_

#include <cstddef>
#include <cstdint>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/tokenizer/byte_trie.h"

namespace skein::tokenizer {

class GreedySegmenter {
 public:
  // Receives the values of consecutive keys, in text order, in runs of any length.
  using Sink = absl::FunctionRef<void(absl::Span<const uint32_t>)>;

  explicit GreedySegmenter(const ByteTrie* trie) : trie_(trie) {}

  // Passes to `sink` the value of each key of the greedy segmentation of `text`. If some
  // remainder of the text starts with no key (possible only when the trie does not have
  // every single byte as a key), the segmentation stops there, as LongestPrefix loops do.
  void Segment(absl::string_view text, Sink sink) const;

  // The reference: one LongestPrefix call per key. Same result as Segment, for tests.
  void SegmentSimply(absl::string_view text, Sink sink) const;

 private:
  static constexpr size_t kMaxSegmentsPerBatch = 32;

  // Consecutive segments of a text, each walked from its own start.
  struct Batch {
    const uint8_t* begin;  // segment s starts at begin + s * segment_bytes
    const uint8_t* end;    // the last segment ends here
    size_t segment_bytes;
    uint32_t* values;  // segment s's cells start at values + s * values_per_segment
    size_t values_per_segment;
    // Outputs of WalkBatch.
    size_t segments;
    size_t counts[kMaxSegmentsPerBatch];        // keys of each segment
    const uint8_t* ends[kMaxSegmentsPerBatch];  // end of each segment's last key
  };

  // Segments every segment of `batch` independently, several walks at a time.
  void WalkBatch(Batch* batch) const;

  const ByteTrie* trie_;
};

}  // namespace skein::tokenizer

#endif  // SKEIN_SERVICES_TOKENIZER_GREEDY_SEGMENTER_H_
