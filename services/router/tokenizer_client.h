// A typed client of skein.v1.TokenizerService: encoding prompts, decoding ids, and fetching
// the vocabulary so that generated text can be streamed locally (StreamDetokenizer).
// Thread-safe (gRPC stubs are).
#ifndef SKEIN_SERVICES_ROUTER_TOKENIZER_CLIENT_H_
#define SKEIN_SERVICES_ROUTER_TOKENIZER_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "services/tokenizer/world_tokenizer.h"
#include "skein/v1/tokenizer.grpc.pb.h"

namespace skein::router {

class TokenizerClient {
 public:
  explicit TokenizerClient(const std::string& address);

  // Errors: the service's (RESOURCE_EXHAUSTED for text over its limit); UNAVAILABLE.
  absl::StatusOr<std::vector<uint32_t>> Encode(const std::string& bytes, absl::Duration timeout);
  // Errors: INVALID_ARGUMENT for an unknown id; UNAVAILABLE.
  absl::StatusOr<v1::DecodeResponse> Decode(const std::vector<uint32_t>& ids,
                                            absl::Duration timeout);
  // The service's vocabulary as a local tokenizer (for decoding only). UNAVAILABLE when the
  // service cannot be reached; INVALID_ARGUMENT if what it sends is not a vocabulary.
  absl::StatusOr<tokenizer::WorldTokenizer> FetchVocabulary(absl::Duration timeout);

 private:
  std::unique_ptr<v1::TokenizerService::Stub> stub_;
};

}  // namespace skein::router

#endif  // SKEIN_SERVICES_ROUTER_TOKENIZER_CLIENT_H_
