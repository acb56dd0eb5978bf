#include "services/tokenizer/world_tokenizer.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/tokenizer/greedy_segmenter.h"
#include "services/tokenizer/sha256.h"

namespace skein::tokenizer {
namespace {

// Decode copies tokens of up to this many bytes as one fixed-size block.
constexpr size_t kDecodeSlack = 16;

std::string Where(const VocabEntry& entry) {
  return entry.line > 0 ? absl::StrCat("vocab line ", entry.line, ": ") : std::string();
}

uint32_t RoundUp(uint64_t n, uint64_t multiple) {
  return static_cast<uint32_t>((n + multiple - 1) / multiple * multiple);
}

}  // namespace

absl::StatusOr<WorldTokenizer> WorldTokenizer::LoadFile(absl::string_view path,
                                                        const WorldTokenizerOptions& options) {
  absl::StatusOr<VocabFile> file = ReadVocabFile(path, options.file);
  if (!file.ok()) return file.status();
  absl::StatusOr<std::vector<VocabEntry>> entries = ParseVocabulary(file->contents);
  if (!entries.ok()) {
    return absl::Status(entries.status().code(),
                        absl::StrCat(file->path, ": ", entries.status().message()));
  }
  absl::StatusOr<WorldTokenizer> tokenizer = FromEntries(*entries, options);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(file->path, ": ", tokenizer.status().message()));
  }
  tokenizer->sha256_ = std::move(file->sha256);
  return tokenizer;
}

absl::StatusOr<WorldTokenizer> WorldTokenizer::FromText(absl::string_view text,
                                                        const WorldTokenizerOptions& options) {
  absl::StatusOr<std::vector<VocabEntry>> entries = ParseVocabulary(text);
  if (!entries.ok()) return entries.status();
  absl::StatusOr<WorldTokenizer> tokenizer = FromEntries(*entries, options);
  if (tokenizer.ok()) tokenizer->sha256_ = Sha256Hex(text);
  return tokenizer;
}

absl::StatusOr<WorldTokenizer> WorldTokenizer::FromEntries(absl::Span<const VocabEntry> entries,
                                                           const WorldTokenizerOptions& options) {
  uint32_t max_id = 0;
  for (const VocabEntry& e : entries) {
    if (e.id == kEndOfTextId || e.id > kMaxTokenId) {
      return absl::InvalidArgumentError(absl::StrCat(
          Where(e), "id ", e.id, " is not allowed (ids run from 1 to ", kMaxTokenId, ")"));
    }
    if (e.bytes.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(Where(e), "token ", e.id, " is empty"));
    }
    max_id = std::max(max_id, e.id);
  }

  WorldTokenizer t;
  t.max_token_id_ = max_id;
  t.vocab_size_ = options.vocab_size != 0 ? options.vocab_size : RoundUp(uint64_t{max_id} + 1, 64);
  if (t.vocab_size_ <= max_id) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size ", t.vocab_size_, " does not cover the largest id ", max_id));
  }

  // Entries sorted by id: the blob is laid out in id order, and the trie keeps the smaller id
  // of two identical tokens.
  std::vector<const VocabEntry*> by_id;
  by_id.reserve(entries.size());
  size_t total_bytes = 0;
  for (const VocabEntry& e : entries) {
    by_id.push_back(&e);
    total_bytes += e.bytes.size();
  }
  std::sort(by_id.begin(), by_id.end(),
            [](const VocabEntry* a, const VocabEntry* b) { return a->id < b->id; });
  for (size_t i = 1; i < by_id.size(); ++i) {
    if (by_id[i]->id == by_id[i - 1]->id) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(*by_id[i]), "id ", by_id[i]->id, " appears twice"));
    }
  }
  if (total_bytes > UINT32_MAX - kDecodeSlack) {
    return absl::InvalidArgumentError("vocabulary tokens exceed 4 GiB in total");
  }

  t.offsets_.assign(static_cast<size_t>(t.vocab_size_) + 1, 0);
  t.blob_.reserve(total_bytes + kDecodeSlack);
  std::vector<ByteTrie::Key> keys;
  keys.reserve(by_id.size());
  size_t next = 0;
  for (uint32_t id = 0; id < t.vocab_size_; ++id) {
    t.offsets_[id] = static_cast<uint32_t>(t.blob_.size());
    if (next < by_id.size() && by_id[next]->id == id) {
      const std::string& bytes = by_id[next]->bytes;
      t.blob_ += bytes;
      keys.push_back({bytes, id});
      t.max_token_bytes_ = std::max(t.max_token_bytes_, bytes.size());
      ++next;
    }
  }
  t.offsets_[t.vocab_size_] = static_cast<uint32_t>(t.blob_.size());
  t.blob_.append(kDecodeSlack, '\0');
  t.token_count_ = static_cast<uint32_t>(by_id.size());

  t.trie_ = ByteTrie::Build(keys);
  for (int byte = 0; byte < 256 && !t.trie_.covers_all_bytes(); ++byte) {
    const char c = static_cast<char>(byte);
    if (t.trie_.LongestPrefix(absl::string_view(&c, 1)).length != 1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "the vocabulary has no token for the single byte 0x%02X, so not every input could "
          "be encoded",
          byte));
    }
  }
  return t;
}

std::vector<uint32_t> WorldTokenizer::Encode(absl::string_view bytes) const {
  std::vector<uint32_t> ids;
  EncodeAppend(bytes, &ids);
  return ids;
}

void WorldTokenizer::EncodeAppend(absl::string_view bytes, std::vector<uint32_t>* ids) const {
  // Most tokens are several bytes long; this usually avoids regrowing.
  ids->reserve(ids->size() + bytes.size() / 3 + 16);
  // Every single byte is a token (checked at construction), so every byte string segments
  // completely; only a moved-from tokenizer, with an empty trie, encodes nothing.
  GreedySegmenter(&trie_).Segment(bytes, ids);
}

size_t WorldTokenizer::CountTokens(absl::string_view bytes) const {
  return GreedySegmenter(&trie_).CountKeys(bytes);
}

absl::Status WorldTokenizer::CheckIds(absl::Span<const uint32_t> ids, DecodeMode mode) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    const uint32_t id = ids[i];
    if (id >= vocab_size_) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " at position ", i,
                                                     " is outside the vocabulary (size ",
                                                     vocab_size_, ")"));
    }
    if (mode == DecodeMode::kStrict && offsets_[id] == offsets_[id + 1]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token id ", id, " at position ", i,
          id == kEndOfTextId ? " is end-of-text, which has no bytes" : " has no bytes"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> WorldTokenizer::Decode(absl::Span<const uint32_t> ids,
                                                   DecodeMode mode) const {
  std::string out;
  if (absl::Status s = DecodeAppend(ids, mode, &out); !s.ok()) return s;
  return out;
}

absl::Status WorldTokenizer::DecodeAppend(absl::Span<const uint32_t> ids, DecodeMode mode,
                                          std::string* out) const {
  if (absl::Status s = CheckIds(ids, mode); !s.ok()) return s;
  size_t total = 0;
  for (uint32_t id : ids) total += offsets_[id + 1] - offsets_[id];
  const size_t start = out->size();
  out->resize(start + total + kDecodeSlack);
  char* dst = out->data() + start;
  const char* blob = blob_.data();
  for (uint32_t id : ids) {
    const uint32_t begin = offsets_[id];
    const uint32_t length = offsets_[id + 1] - begin;
    // blob_ and *out both have kDecodeSlack spare bytes, so a short token is one fixed copy.
    if (length <= kDecodeSlack) {
      std::memcpy(dst, blob + begin, kDecodeSlack);
    } else {
      std::memcpy(dst, blob + begin, length);
    }
    dst += length;
  }
  out->resize(start + total);
  return absl::OkStatus();
}

}  // namespace skein::tokenizer
