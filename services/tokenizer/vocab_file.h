// Finds, reads and authenticates a vocabulary file.
//
// The path always comes from the caller (a --vocab flag or a config entry); there is no
// built-in search path, so a server never silently picks up a different file. By default
// the file must be the official RWKV World vocabulary, byte for byte (checked by SHA-256);
// custom vocabularies turn the check off. Thread-safe (no shared state).
#ifndef SKEIN_SERVICES_TOKENIZER_VOCAB_FILE_H_
#define SKEIN_SERVICES_TOKENIZER_VOCAB_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace skein::tokenizer {

// SHA-256 of rwkv_vocab_v20230424.txt (LF line endings, 1,093,733 bytes).
inline constexpr absl::string_view kWorldVocabV20230424Sha256 =
    "e6dee3d4e31b4d5c40ac99508ac6c701ceef4bed681bf2167ce9a908552bca89";

struct VocabFileOptions {
  // Lowercase hex SHA-256 the file must have. Empty: accept any file (custom vocabularies).
  std::string expected_sha256 = std::string(kWorldVocabV20230424Sha256);
};

// A vocabulary file as read from disk.
struct VocabFile {
  std::string path;
  std::string contents;
  std::string sha256;  // of `contents`, lowercase hex; always computed
};

// Reads the file at `path`.
// Errors: NOT_FOUND if `path` is empty or no such file exists; PERMISSION_DENIED if it cannot
// be opened for that reason; FAILED_PRECONDITION if it is not a regular file; DATA_LOSS if
// reading fails or its SHA-256 differs from options.expected_sha256 (the message gives both).
absl::StatusOr<VocabFile> ReadVocabFile(absl::string_view path,
                                        const VocabFileOptions& options = {});

}  // namespace skein::tokenizer

#endif  // SKEIN_SERVICES_TOKENIZER_VOCAB_FILE_H_
