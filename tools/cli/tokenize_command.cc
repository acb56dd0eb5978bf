// `skein tokenize --vocab PATH`: raw bytes on stdin -> a JSON array of token ids on stdout.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tools/cli/command_registry.h"
#include "tools/cli/tokenizer_support.h"

namespace skein::cli {
namespace {

void Tokenize(const VocabOptions& options) {
  const tokenizer::WorldTokenizer tokenizer = LoadTokenizerOrThrow(options);
  const std::vector<uint32_t> ids = tokenizer.Encode(ReadStdinOrThrow());
  std::string json = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) json += ',';
    absl::StrAppend(&json, ids[i]);
  }
  json += "]\n";
  WriteStdoutOrThrow(json);
}

}  // namespace
}  // namespace skein::cli

SKEIN_REGISTER_COMMAND(tokenize, [](CLI::App& app) {
  auto* options = new skein::cli::VocabOptions();  // lives as long as the program
  auto* cmd = app.add_subcommand(
      "tokenize",
      "Encode stdin (raw bytes) with the RWKV World tokenizer; print a JSON array of ids");
  skein::cli::AddVocabOptions(cmd, options);
  cmd->callback([options] { skein::cli::Tokenize(*options); });
});
