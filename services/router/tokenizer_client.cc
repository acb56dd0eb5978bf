#include "services/router/tokenizer_client.h"

#include "services/common/status.h"

namespace skein::router {
namespace {

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
}

}  // namespace

TokenizerClient::TokenizerClient(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  stub_ = v1::TokenizerService::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
}

absl::StatusOr<std::vector<uint32_t>> TokenizerClient::Encode(const std::string& bytes,
                                                              absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(context, timeout);
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
  SetDeadline(context, timeout);
  v1::DecodeRequest request;
  request.mutable_ids()->Add(ids.begin(), ids.end());
  v1::DecodeResponse response;
  grpc::Status s = stub_->Decode(&context, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response;
}

absl::StatusOr<tokenizer::WorldTokenizer> TokenizerClient::FetchVocabulary(absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(context, timeout);
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
