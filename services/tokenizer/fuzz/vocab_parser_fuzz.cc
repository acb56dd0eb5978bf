// libFuzzer target: arbitrary bytes as a vocabulary file and as a single Python literal. The
// parser must never crash; when it accepts a file whose tokens cover every byte, the
// tokenizer built from it must round-trip the file's own text.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "services/tokenizer/python_literal.h"
#include "services/tokenizer/vocab_parser.h"
#include "services/tokenizer/world_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  (void)skein::tokenizer::DecodePythonLiteral(input);

  absl::StatusOr<std::vector<skein::tokenizer::VocabEntry>> entries =
      skein::tokenizer::ParseVocabulary(input);
  if (!entries.ok()) {
    // Every rejection names a line.
    if (entries.status().message().rfind("vocab line ", 0) != 0) std::abort();
    return 0;
  }
  for (const auto& e : *entries) {
    if (e.id == 0 || e.id > skein::tokenizer::kMaxTokenId || e.bytes.empty()) std::abort();
  }
  absl::StatusOr<skein::tokenizer::WorldTokenizer> t =
      skein::tokenizer::WorldTokenizer::FromEntries(*entries);
  if (!t.ok()) return 0;
  absl::StatusOr<std::string> decoded = t->Decode(t->Encode(input));
  if (!decoded.ok() || *decoded != input) {
    std::fprintf(stderr, "vocab_parser_fuzz: round trip failed\n");
    std::abort();
  }
  return 0;
}
