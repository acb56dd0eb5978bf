#include "tools/cli/tokenizer_support.h"

#include <cerrno>
#include <cstdio>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "tools/cli/command_registry.h"

namespace skein::cli {

void AddVocabOptions(CLI::App* cmd, VocabOptions* options) {
  cmd->add_option("--vocab", options->path, "RWKV World vocabulary file (rwkv_vocab_v20230424.txt)")
      ->envname("SKEIN_VOCAB")
      ->required();
  cmd->add_flag("--skip-vocab-hash-check", options->skip_hash_check,
                "Accept a vocabulary that is not the official file (a custom vocabulary)");
}

tokenizer::WorldTokenizer LoadTokenizerOrThrow(const VocabOptions& options) {
  tokenizer::WorldTokenizerOptions load_options;
  if (options.skip_hash_check) load_options.file.expected_sha256.clear();
  absl::StatusOr<tokenizer::WorldTokenizer> t =
      tokenizer::WorldTokenizer::LoadFile(options.path, load_options);
  if (!t.ok())
    throw CommandError(1, absl::StrCat("cannot load vocabulary: ", t.status().ToString()));
  return *std::move(t);
}

std::string ReadStdinOrThrow() {
  std::string data;
  char buffer[1 << 16];
  while (true) {
    const size_t n = std::fread(buffer, 1, sizeof(buffer), stdin);
    data.append(buffer, n);
    if (n < sizeof(buffer)) break;
  }
  if (std::ferror(stdin)) {
    throw CommandError(1,
                       absl::StrCat("cannot read stdin: ", std::generic_category().message(errno)));
  }
  return data;
}

void WriteStdoutOrThrow(absl::string_view bytes) {
  if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size() ||
      std::fflush(stdout) != 0) {
    throw CommandError(
        1, absl::StrCat("cannot write stdout: ", std::generic_category().message(errno)));
  }
}

}  // namespace skein::cli
