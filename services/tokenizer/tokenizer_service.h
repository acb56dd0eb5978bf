// skein.v1.TokenizerService over a loaded WorldTokenizer: batch encode, decode, streaming
// decode, token counts and vocabulary facts, with request size limits.
//
// Thread-safe: the tokenizer is immutable and every RPC keeps its own state.
#ifndef SKEIN_SERVICES_TOKENIZER_TOKENIZER_SERVICE_H_
#define SKEIN_SERVICES_TOKENIZER_TOKENIZER_SERVICE_H_

#include <cstdint>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"
#include "services/tokenizer/world_tokenizer.h"
#include "skein/v1/tokenizer.grpc.pb.h"

namespace skein::tokenizer {

struct TokenizerServiceLimits {
  // Most texts in one Encode/CountTokens request.
  uint32_t max_batch = 1024;
  // Most input bytes in one Encode/CountTokens request (all texts together).
  uint64_t max_request_bytes = 16 << 20;
  // Most ids in one Decode request or one StreamDecode message.
  uint64_t max_request_tokens = 4 << 20;
  // Most bytes one Decode answer (or one StreamDecode message) may decode to. The answer
  // carries them twice (the raw bytes and the text), so this bounds its memory.
  uint64_t max_decode_bytes = 16 << 20;
};

class TokenizerServiceImpl final : public v1::TokenizerService::Service {
 public:
  // `tokenizer` must outlive the service. Metrics are added to `registry`.
  TokenizerServiceImpl(const WorldTokenizer* tokenizer, TokenizerServiceLimits limits,
                       prometheus::Registry* registry);

  grpc::Status Encode(grpc::ServerContext* context, const v1::EncodeRequest* request,
                      v1::EncodeResponse* response) override;
  grpc::Status Decode(grpc::ServerContext* context, const v1::DecodeRequest* request,
                      v1::DecodeResponse* response) override;
  grpc::Status StreamDecode(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::StreamDecodeResponse, v1::StreamDecodeRequest>* stream) override;
  grpc::Status CountTokens(grpc::ServerContext* context, const v1::CountTokensRequest* request,
                           v1::CountTokensResponse* response) override;
  grpc::Status GetVocabulary(grpc::ServerContext* context, const v1::GetVocabularyRequest* request,
                             v1::Vocabulary* response) override;
  grpc::Status GetVocabularyInfo(grpc::ServerContext* context,
                                 const v1::GetVocabularyInfoRequest* request,
                                 v1::VocabularyInfo* response) override;

 private:
  // INVALID_ARGUMENT for an empty batch; RESOURCE_EXHAUSTED over the batch or byte limits.
  grpc::Status CheckTextBatch(const google::protobuf::RepeatedPtrField<std::string>& texts) const;
  grpc::Status CheckTokenCount(int count) const;
  // RESOURCE_EXHAUSTED when `ids` decode to more than max_decode_bytes (unknown ids count as
  // nothing here; decoding reports them).
  grpc::Status CheckDecodedSize(const google::protobuf::RepeatedField<uint32_t>& ids) const;

  const WorldTokenizer* tokenizer_;
  TokenizerServiceLimits limits_;
  prometheus::Counter* encoded_bytes_;
  prometheus::Counter* encoded_tokens_;
  prometheus::Counter* decoded_tokens_;
  prometheus::Counter* decoded_bytes_;
  prometheus::Counter* rejected_limit_;
};

}  // namespace skein::tokenizer

#endif  // SKEIN_SERVICES_TOKENIZER_TOKENIZER_SERVICE_H_
