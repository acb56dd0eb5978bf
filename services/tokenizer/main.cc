// skein-tokenizer: the RWKV World tokenizer over gRPC.
#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "services/common/logging.h"
#include "services/common/server_options.h"
#include "services/common/service_host.h"
#include "services/tokenizer/tokenizer_service.h"
#include "services/tokenizer/world_tokenizer.h"

int main(int argc, char** argv) {
  skein::ServerOptions options;
  options.service_name = "skein-tokenizer";
  options.listen = "127.0.0.1:7710";
  options.metrics_port = 9710;

  std::string vocab_path;
  std::string vocab_sha256(skein::tokenizer::kWorldVocabV20230424Sha256);
  skein::tokenizer::TokenizerServiceLimits limits;

  CLI::App app{"skein-tokenizer: the RWKV World tokenizer over gRPC", "skein-tokenizer"};
  skein::AddServerFlags(app, &options);
  app.add_option("--vocab", vocab_path, "Vocabulary file (rwkv_vocab_v20230424.txt)")->required();
  app.add_option("--vocab-sha256", vocab_sha256,
                 "SHA-256 the vocabulary file must have; empty accepts any file")
      ->capture_default_str();
  app.add_option("--max-batch", limits.max_batch, "Most texts per Encode/CountTokens request")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 20));
  app.add_option("--max-request-bytes", limits.max_request_bytes,
                 "Most input bytes per Encode/CountTokens request")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 30));
  app.add_option("--max-request-tokens", limits.max_request_tokens,
                 "Most ids per Decode request or StreamDecode message")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 28));
  app.add_option("--max-decode-bytes", limits.max_decode_bytes,
                 "Most bytes one Decode answer or StreamDecode message may decode to")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 30));
  if (auto exit_code = skein::ParseCommandLine(app, options.service_name, argc, argv)) {
    return *exit_code;
  }

  skein::ServiceHost host(options);
  skein::tokenizer::WorldTokenizerOptions tokenizer_options;
  tokenizer_options.file.expected_sha256 = vocab_sha256;
  auto tokenizer = skein::tokenizer::WorldTokenizer::LoadFile(vocab_path, tokenizer_options);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "%s: error: %s\n", options.service_name.c_str(),
                 std::string(tokenizer.status().message()).c_str());
    return 1;
  }
  skein::log::Info("vocabulary loaded", {{"path", vocab_path},
                                         {"tokens", std::to_string(tokenizer->token_count())},
                                         {"sha256", tokenizer->sha256()}});
  skein::tokenizer::TokenizerServiceImpl service(&*tokenizer, limits, &host.metrics().registry());
  host.AddService(&service, "skein.v1.TokenizerService");
  return host.Run();
}
