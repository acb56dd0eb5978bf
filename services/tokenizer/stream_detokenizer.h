// Turns token ids, fed one or a few at a time as a model produces them, into UTF-8 text
// that never contains part of a character.
//
// Tokens may end inside a multi-byte character (the emoji U+1F600 is three World tokens).
// The detokenizer emits every complete character as soon as its last byte arrives and holds
// back only a valid but unfinished prefix (at most 3 bytes). Bytes that can never become
// valid are emitted at once as U+FFFD, one per maximal subpart (the WHATWG / Unicode practice
// described in utf8.h): e.g. 0xFF, or a lead byte followed by a non-continuation byte. At the
// end, Finish() turns a held-back prefix into one U+FFFD.
//
// The concatenation of everything Push() and Finish() return is exactly
// RepairUtf8(tokenizer.Decode(all ids)) however the ids are split into calls.
//
// Thread-safety: not thread-safe; use one object per stream. Holds a pointer to the
// tokenizer, which must outlive it (the tokenizer itself may be shared by many streams).
#ifndef SKEIN_SERVICES_TOKENIZER_STREAM_DETOKENIZER_H_
#define SKEIN_SERVICES_TOKENIZER_STREAM_DETOKENIZER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "services/tokenizer/world_tokenizer.h"

namespace skein::tokenizer {

class StreamDetokenizer {
 public:
  // `mode` decides how ids without bytes are treated (see DecodeMode).
  explicit StreamDetokenizer(const WorldTokenizer* tokenizer, DecodeMode mode = DecodeMode::kStrict)
      : tokenizer_(tokenizer), mode_(mode) {}

  // Feeds `ids` and appends the text they complete to `*text` (possibly nothing).
  // Errors: INVALID_ARGUMENT for an id that does not decode under the mode (see
  // WorldTokenizer::CheckIds); then no id of this call is consumed and `*text` is unchanged.
  absl::Status Push(absl::Span<const uint32_t> ids, std::string* text);
  // Convenience: feeds one id and returns the text it completes.
  absl::StatusOr<std::string> Push(uint32_t id);

  // Ends the stream: returns the held-back bytes as text (an unfinished character becomes
  // one U+FFFD; empty if nothing is held) and resets, so the object can start a new stream.
  std::string Finish();

  // Bytes held back waiting for the rest of a character (0..3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const WorldTokenizer* tokenizer_;
  DecodeMode mode_;
  std::string pending_;  // a valid but unfinished UTF-8 prefix
  std::string scratch_;  // reused: pending_ plus the new tokens' bytes
};

}  // namespace skein::tokenizer

#endif  // SKEIN_SERVICES_TOKENIZER_STREAM_DETOKENIZER_H_
