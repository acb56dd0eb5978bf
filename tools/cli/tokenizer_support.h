// What the `skein tokenize` and `skein detokenize` commands share: the vocabulary options and
// loading, and raw stdin/stdout.
#ifndef SKEIN_TOOLS_CLI_TOKENIZER_SUPPORT_H_
#define SKEIN_TOOLS_CLI_TOKENIZER_SUPPORT_H_

#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/string_view.h"
#include "services/tokenizer/world_tokenizer.h"

namespace skein::cli {

struct VocabOptions {
  std::string path;
  bool skip_hash_check = false;
};

// Adds --vocab PATH (or $SKEIN_VOCAB) and --skip-vocab-hash-check to `cmd`.
void AddVocabOptions(CLI::App* cmd, VocabOptions* options);

// Loads the tokenizer; throws CommandError (exit code 1) with a one-line message on failure.
tokenizer::WorldTokenizer LoadTokenizerOrThrow(const VocabOptions& options);

// Reads all of stdin as bytes; throws CommandError on a read error.
std::string ReadStdinOrThrow();

// Writes `bytes` to stdout and flushes; throws CommandError on a write error.
void WriteStdoutOrThrow(absl::string_view bytes);

}  // namespace skein::cli

#endif  // SKEIN_TOOLS_CLI_TOKENIZER_SUPPORT_H_
