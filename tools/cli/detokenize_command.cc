// `skein detokenize --vocab PATH`: a JSON array of token ids on stdin -> the raw bytes they
// stand for on stdout.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tools/cli/command_registry.h"
#include "tools/cli/tokenizer_support.h"

namespace skein::cli {
namespace {

struct DetokenizeOptions {
  VocabOptions vocab;
  bool lenient = false;
};

// Parses a JSON array of non-negative integers that fit 32 bits.
std::vector<uint32_t> ParseIdsOrThrow(const std::string& input) {
  const nlohmann::json doc = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) throw CommandError(1, "stdin is not valid JSON");
  if (!doc.is_array()) throw CommandError(1, "stdin must be a JSON array of token ids");
  std::vector<uint32_t> ids;
  ids.reserve(doc.size());
  for (size_t i = 0; i < doc.size(); ++i) {
    const nlohmann::json& v = doc[i];
    if (!v.is_number_unsigned() || v.get<uint64_t>() > UINT32_MAX) {
      throw CommandError(
          1, absl::StrCat("element ", i, " of the array (", v.dump(), ") is not a token id"));
    }
    ids.push_back(static_cast<uint32_t>(v.get<uint64_t>()));
  }
  return ids;
}

void Detokenize(const DetokenizeOptions& options) {
  const std::vector<uint32_t> ids = ParseIdsOrThrow(ReadStdinOrThrow());
  const tokenizer::WorldTokenizer tokenizer = LoadTokenizerOrThrow(options.vocab);
  absl::StatusOr<std::string> bytes = tokenizer.Decode(
      ids, options.lenient ? tokenizer::DecodeMode::kLenient : tokenizer::DecodeMode::kStrict);
  if (!bytes.ok()) throw CommandError(1, bytes.status().ToString());
  WriteStdoutOrThrow(*bytes);
}

}  // namespace
}  // namespace skein::cli

SKEIN_REGISTER_COMMAND(detokenize, [](CLI::App& app) {
  auto* options = new skein::cli::DetokenizeOptions();  // lives as long as the program
  auto* cmd = app.add_subcommand(
      "detokenize", "Decode a JSON array of RWKV World token ids (stdin) to raw bytes (stdout)");
  skein::cli::AddVocabOptions(cmd, &options->vocab);
  cmd->add_flag("--lenient", options->lenient,
                "Decode id 0 (end-of-text) and ids without bytes as nothing instead of failing");
  cmd->callback([options] { skein::cli::Detokenize(*options); });
});
