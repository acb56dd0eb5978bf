#include "services/router/tokenizer_client.h"

#include "services/common/client_channel.h"
#include "services/common/status.h"

namespace skein::router {
TokenizerClient::TokenizerClient(const std::string& address)
    : stub_(v1::TokenizerService::NewStub(CreateClientChannel(address))) {}

absl::StatusOr<std::vector<uint32_t>> TokenizerClient::Encode(const std::string& bytes,
                                                              absl::Duration timeout) {
  grpc::ClientContext context;
  SetTimeout(&context, timeout);
  v1::EncodeRequest request;
  request.add_texts(bytes);
  v1::EncodeResponse response;
  grpc::Status s = stub_->Encode(&context, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  if (response.results_size() != 1) return absl::InternalError("tokenizer answered no result");
  return std::vector<uint32_t>(response.results(0).ids().begin(), response.results(0).ids().end());
}

absl::StatusOr<v1::DecodeResponse> TokenizerClient::Decode(const std::vector<uint32_t>& ids,
                                                           absl::Duration timeout) {
  grpc::ClientContext context;
  SetTimeout(&context, timeout);
  v1::DecodeRequest request;
  request.mutable_ids()->Add(ids.begin(), ids.end());
  v1::DecodeResponse response;
  grpc::Status s = stub_->Decode(&context, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response;
}

absl::StatusOr<tokenizer::WorldTokenizer> TokenizerClient::FetchVocabulary(absl::Duration timeout) {
  grpc::ClientContext context;
  SetTimeout(&context, timeout);
  v1::Vocabulary vocab;
  grpc::Status s = stub_->GetVocabulary(&context, v1::GetVocabularyRequest(), &vocab);
  if (!s.ok()) return FromGrpcStatus(s);
  std::vector<tokenizer::VocabEntry> entries;
  for (int id = 0; id < vocab.token_bytes_size(); ++id) {
    if (vocab.token_bytes(id).empty()) continue;
    entries.push_back({static_cast<uint32_t>(id), vocab.token_bytes(id), 0});
  }
  tokenizer::WorldTokenizerOptions options;
  options.vocab_size = vocab.vocab_size();
  return tokenizer::WorldTokenizer::FromEntries(entries, options);
}

}  // namespace skein::router
