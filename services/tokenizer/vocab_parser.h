// Parses an RWKV World vocabulary file (e.g. rwkv_vocab_v20230424.txt).
//
// Each line is `<id> <python-literal> <byte-length>`: the id is the text before the first
// space, the byte length the text after the last space, and the literal (which may itself
// contain spaces) everything in between; see python_literal.h for the literal syntax. LF and
// CRLF line endings are both accepted; the last line may lack its newline.
//
// Checks, each reported as INVALID_ARGUMENT "vocab line N: ..." (N counts from 1):
//   * the line has the three fields; id and length are decimal integers;
//   * the literal decodes (str or bytes, see python_literal.h);
//   * the decoded byte count equals the declared length;
//   * the token is not empty, and its id is neither 0 (end-of-text, which has no bytes) nor
//     above kMaxTokenId;
//   * no id appears twice (the message names the earlier line).
// Ids need not be contiguous or sorted. Thread-safe (pure function).
#ifndef SKEIN_SERVICES_TOKENIZER_VOCAB_PARSER_H_
#define SKEIN_SERVICES_TOKENIZER_VOCAB_PARSER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace skein::tokenizer {

// The id that marks end-of-text; it has no bytes and is never in a vocabulary file.
inline constexpr uint32_t kEndOfTextId = 0;

// Largest id a vocabulary may use. Tables are indexed by id, so this bounds their size
// (real vocabularies have at most a few hundred thousand ids).
inline constexpr uint32_t kMaxTokenId = (1u << 21) - 1;

// One token of a vocabulary.
struct VocabEntry {
  uint32_t id = 0;
  std::string bytes;  // never empty
  int line = 0;       // 1-based line of the file it came from (0 if not from a file)
};

// Parses a whole vocabulary file's contents. Returns the entries in file order.
absl::StatusOr<std::vector<VocabEntry>> ParseVocabulary(absl::string_view text);

}  // namespace skein::tokenizer

#endif  // SKEIN_SERVICES_TOKENIZER_VOCAB_PARSER_H_
