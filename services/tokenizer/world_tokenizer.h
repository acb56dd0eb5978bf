// The RWKV World tokenizer (spec §8): text as bytes <-> token ids, with the vocabulary of
// rwkv_vocab_v20230424.txt or any file in the same format.
//
// Encoding is the official TRIE_TOKENIZER's algorithm: from the start of the input, emit the
// id of the longest vocabulary entry that is a prefix of the remaining bytes, and repeat. No
// normalisation and no special tokens: "<|endoftext|>" in the input is ordinary text. Every
// byte string encodes (invalid UTF-8 and NUL bytes included), since every single byte is a
// token, and Decode(Encode(x)) == x for every x. The encoder never produces id 0.
//
// Id 0 is end-of-text and has no bytes. Decoding concatenates token bytes; what an id
// without bytes does depends on DecodeMode (below). Ids are read from the file, not assumed:
// gaps are allowed; vocab_size() is the number of model rows the ids address.
//
// If two ids have identical bytes, the encoder emits the smaller id. (The official tokenizer
// picks one by Python set order, which varies with the hash seed; the World vocabulary has no
// such pair.)
//
// Thread-safety: immutable once built; every method is const and may be called from any
// number of threads at once. Movable, not copyable (about 2 MB of tables for World).
#ifndef SKEIN_SERVICES_TOKENIZER_WORLD_TOKENIZER_H_
#define SKEIN_SERVICES_TOKENIZER_WORLD_TOKENIZER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/tokenizer/byte_trie.h"
#include "services/tokenizer/vocab_file.h"
#include "services/tokenizer/vocab_parser.h"

namespace skein::tokenizer {

// How Decode treats ids that have no bytes.
enum class DecodeMode {
  // Every id must be a token: id 0 (end-of-text), ids in gaps or in the padding rows
  // (65530..65535 for World) and ids >= vocab_size() are INVALID_ARGUMENT naming the id.
  // For ids that come from a client.
  kStrict,
  // Ids below vocab_size() without bytes (id 0 and padding rows) decode to nothing; ids >=
  // vocab_size() are still INVALID_ARGUMENT. For ids sampled from a model, which may pick
  // any of its rows.
  kLenient,
};

struct WorldTokenizerOptions {
  // How LoadFile authenticates the file (by default: the official World vocabulary's hash).
  VocabFileOptions file;
  // Rows of the model this vocabulary serves. 0: the largest id + 1, rounded up to a
  // multiple of 64 (65536 for World). Otherwise it must exceed the largest id.
  uint32_t vocab_size = 0;
};

class WorldTokenizer {
 public:
  // Reads, checks (see ReadVocabFile) and parses the vocabulary file at `path`.
  // Errors: those of ReadVocabFile (NOT_FOUND, DATA_LOSS, ...), then INVALID_ARGUMENT with
  // the file name and "vocab line N: ..." for a malformed file, or as FromEntries.
  static absl::StatusOr<WorldTokenizer> LoadFile(absl::string_view path,
                                                 const WorldTokenizerOptions& options = {});

  // Parses a vocabulary file's contents (see vocab_parser.h). sha256() is set from `text`.
  static absl::StatusOr<WorldTokenizer> FromText(absl::string_view text,
                                                 const WorldTokenizerOptions& options = {});

  // Builds from parsed entries. INVALID_ARGUMENT if an id repeats, is 0 or above
  // kMaxTokenId, a token is empty, some byte value has no single-byte token (then some
  // inputs could not be encoded), or options.vocab_size is set but not above the largest id.
  static absl::StatusOr<WorldTokenizer> FromEntries(absl::Span<const VocabEntry> entries,
                                                    const WorldTokenizerOptions& options = {});

  WorldTokenizer(WorldTokenizer&&) = default;
  WorldTokenizer& operator=(WorldTokenizer&&) = default;
  WorldTokenizer(const WorldTokenizer&) = delete;
  WorldTokenizer& operator=(const WorldTokenizer&) = delete;

  // The ids of `bytes` (any bytes at all). Never fails.
  std::vector<uint32_t> Encode(absl::string_view bytes) const;
  // Appends the ids of `bytes` to `*ids`.
  void EncodeAppend(absl::string_view bytes, std::vector<uint32_t>* ids) const;
  // Encode(bytes).size(), without storing the ids.
  size_t CountTokens(absl::string_view bytes) const;

  // The concatenated bytes of `ids` (not necessarily valid UTF-8: a token can end inside a
  // character; see utf8.h to repair, stream_detokenizer.h to stream).
  // Errors: INVALID_ARGUMENT naming the first offending id and its position (see DecodeMode).
  absl::StatusOr<std::string> Decode(absl::Span<const uint32_t> ids,
                                     DecodeMode mode = DecodeMode::kStrict) const;
  // As Decode, appending to `*out`. On error `*out` is unchanged.
  absl::Status DecodeAppend(absl::Span<const uint32_t> ids, DecodeMode mode,
                            std::string* out) const;
  // OK if every id decodes under `mode`; else the error Decode would return.
  absl::Status CheckIds(absl::Span<const uint32_t> ids, DecodeMode mode) const;

  // The bytes of token `id`; empty if it has none (id 0, a gap, or >= vocab_size()).
  absl::string_view TokenBytes(uint32_t id) const {
    if (id >= vocab_size_) return {};
    return absl::string_view(blob_.data() + offsets_[id], offsets_[id + 1] - offsets_[id]);
  }
  bool HasBytes(uint32_t id) const { return !TokenBytes(id).empty(); }

  // Rows of the model the ids address (65536 for World).
  uint32_t vocab_size() const { return vocab_size_; }
  // Ids that have bytes (65529 for World).
  uint32_t token_count() const { return token_count_; }
  uint32_t max_token_id() const { return max_token_id_; }
  // Length of the longest token (128 for World).
  size_t max_token_bytes() const { return max_token_bytes_; }
  uint32_t end_of_text_id() const { return kEndOfTextId; }
  // Bytes the encoder's trie takes (about 3 MB for World).
  size_t trie_memory_bytes() const { return trie_.memory_bytes(); }
  // SHA-256 (lowercase hex) of the vocabulary file; empty if built from entries.
  const std::string& sha256() const { return sha256_; }

 private:
  WorldTokenizer() = default;

  ByteTrie trie_;
  // Token id's bytes are blob_[offsets_[id], offsets_[id + 1]); offsets_ has vocab_size_ + 1
  // entries. blob_ ends with kDecodeSlack spare bytes so Decode may copy in fixed-size blocks.
  std::vector<uint32_t> offsets_;
  std::string blob_;
  uint32_t vocab_size_ = 0;
  uint32_t token_count_ = 0;
  uint32_t max_token_id_ = 0;
  size_t max_token_bytes_ = 0;
  std::string sha256_;
};

}  // namespace skein::tokenizer

#endif  // SKEIN_SERVICES_TOKENIZER_WORLD_TOKENIZER_H_
