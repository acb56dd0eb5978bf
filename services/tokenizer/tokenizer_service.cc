#include "services/tokenizer/tokenizer_service.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/common/status.h"
#include "services/tokenizer/stream_detokenizer.h"
#include "services/tokenizer/utf8.h"

namespace skein::tokenizer {

TokenizerServiceImpl::TokenizerServiceImpl(const WorldTokenizer* tokenizer,
                                           TokenizerServiceLimits limits,
                                           prometheus::Registry* registry)
    : tokenizer_(tokenizer), limits_(limits) {
  auto& bytes = prometheus::BuildCounter()
                    .Name("skein_tokenizer_bytes_total")
                    .Help("Bytes processed: text encoded, or bytes produced by decoding.")
                    .Register(*registry);
  auto& tokens = prometheus::BuildCounter()
                     .Name("skein_tokenizer_tokens_total")
                     .Help("Token ids produced by encoding or consumed by decoding.")
                     .Register(*registry);
  auto& rejected = prometheus::BuildCounter()
                       .Name("skein_tokenizer_rejected_requests_total")
                       .Help("Requests refused for exceeding a size limit.")
                       .Register(*registry);
  encoded_bytes_ = &bytes.Add({{"direction", "encode"}});
  decoded_bytes_ = &bytes.Add({{"direction", "decode"}});
  encoded_tokens_ = &tokens.Add({{"direction", "encode"}});
  decoded_tokens_ = &tokens.Add({{"direction", "decode"}});
  rejected_limit_ = &rejected.Add({});
}

grpc::Status TokenizerServiceImpl::CheckTextBatch(
    const google::protobuf::RepeatedPtrField<std::string>& texts) const {
  if (texts.empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "texts: the batch is empty");
  }
  if (static_cast<uint64_t>(texts.size()) > limits_.max_batch) {
    rejected_limit_->Increment();
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("texts: ", texts.size(), " items exceed the limit of ",
                                     limits_.max_batch, " per request"));
  }
  uint64_t total = 0;
  for (const std::string& t : texts) total += t.size();
  if (total > limits_.max_request_bytes) {
    rejected_limit_->Increment();
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("texts: ", total, " bytes exceed the limit of ",
                                     limits_.max_request_bytes, " bytes per request"));
  }
  return grpc::Status::OK;
}

grpc::Status TokenizerServiceImpl::CheckTokenCount(int count) const {
  if (static_cast<uint64_t>(count) > limits_.max_request_tokens) {
    rejected_limit_->Increment();
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("ids: ", count, " ids exceed the limit of ",
                                     limits_.max_request_tokens, " per request"));
  }
  return grpc::Status::OK;
}

grpc::Status TokenizerServiceImpl::CheckDecodedSize(
    const google::protobuf::RepeatedField<uint32_t>& ids) const {
  uint64_t bytes = 0;
  for (uint32_t id : ids) {
    bytes += tokenizer_->TokenBytes(id).size();
  }
  if (bytes > limits_.max_decode_bytes) {
    rejected_limit_->Increment();
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("ids: they decode to ", bytes, " bytes, over the limit of ",
                                     limits_.max_decode_bytes, " per answer"));
  }
  return grpc::Status::OK;
}

grpc::Status TokenizerServiceImpl::Encode(grpc::ServerContext*, const v1::EncodeRequest* request,
                                          v1::EncodeResponse* response) {
  if (grpc::Status s = CheckTextBatch(request->texts()); !s.ok()) return s;
  std::vector<uint32_t> ids;
  for (const std::string& text : request->texts()) {
    ids.clear();
    tokenizer_->EncodeAppend(text, &ids);
    response->add_results()->mutable_ids()->Add(ids.begin(), ids.end());
    encoded_bytes_->Increment(static_cast<double>(text.size()));
    encoded_tokens_->Increment(static_cast<double>(ids.size()));
  }
  return grpc::Status::OK;
}

grpc::Status TokenizerServiceImpl::Decode(grpc::ServerContext*, const v1::DecodeRequest* request,
                                          v1::DecodeResponse* response) {
  if (grpc::Status s = CheckTokenCount(request->ids_size()); !s.ok()) return s;
  if (grpc::Status s = CheckDecodedSize(request->ids()); !s.ok()) return s;
  absl::StatusOr<std::string> bytes = tokenizer_->Decode(request->ids(), DecodeMode::kStrict);
  if (!bytes.ok()) return ToGrpcStatus(bytes.status());
  const bool valid = IsValidUtf8(*bytes);
  response->set_valid_utf8(valid);
  response->set_text(valid ? *bytes : RepairUtf8(*bytes));
  decoded_tokens_->Increment(request->ids_size());
  decoded_bytes_->Increment(static_cast<double>(bytes->size()));
  response->set_data(*std::move(bytes));
  return grpc::Status::OK;
}

grpc::Status TokenizerServiceImpl::StreamDecode(
    grpc::ServerContext*,
    grpc::ServerReaderWriter<v1::StreamDecodeResponse, v1::StreamDecodeRequest>* stream) {
  StreamDetokenizer detokenizer(tokenizer_, DecodeMode::kStrict);
  v1::StreamDecodeRequest request;
  v1::StreamDecodeResponse response;
  while (stream->Read(&request)) {
    if (grpc::Status s = CheckTokenCount(request.ids_size()); !s.ok()) return s;
    if (grpc::Status s = CheckDecodedSize(request.ids()); !s.ok()) return s;
    std::string* text = response.mutable_text();
    text->clear();
    absl::Status pushed = detokenizer.Push(request.ids(), text);
    if (!pushed.ok()) return ToGrpcStatus(pushed);
    decoded_tokens_->Increment(request.ids_size());
    decoded_bytes_->Increment(static_cast<double>(text->size()));
    if (!stream->Write(response)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
  }
  response.set_text(detokenizer.Finish());
  response.set_final(true);
  decoded_bytes_->Increment(static_cast<double>(response.text().size()));
  stream->Write(response);
  return grpc::Status::OK;
}

grpc::Status TokenizerServiceImpl::CountTokens(grpc::ServerContext*,
                                               const v1::CountTokensRequest* request,
                                               v1::CountTokensResponse* response) {
  if (grpc::Status s = CheckTextBatch(request->texts()); !s.ok()) return s;
  for (const std::string& text : request->texts()) {
    response->add_counts(static_cast<uint32_t>(tokenizer_->CountTokens(text)));
    encoded_bytes_->Increment(static_cast<double>(text.size()));
  }
  return grpc::Status::OK;
}

grpc::Status TokenizerServiceImpl::GetVocabularyInfo(grpc::ServerContext*,
                                                     const v1::GetVocabularyInfoRequest*,
                                                     v1::VocabularyInfo* response) {
  response->set_kind("rwkv-world");
  response->set_vocab_size(tokenizer_->vocab_size());
  response->set_token_count(tokenizer_->token_count());
  response->set_end_of_text_id(tokenizer_->end_of_text_id());
  response->set_sha256(tokenizer_->sha256());
  response->set_max_token_bytes(static_cast<uint32_t>(tokenizer_->max_token_bytes()));
  return grpc::Status::OK;
}

grpc::Status TokenizerServiceImpl::GetVocabulary(grpc::ServerContext*,
                                                 const v1::GetVocabularyRequest*,
                                                 v1::Vocabulary* response) {
  response->set_sha256(tokenizer_->sha256());
  response->set_vocab_size(tokenizer_->vocab_size());
  response->mutable_token_bytes()->Reserve(static_cast<int>(tokenizer_->vocab_size()));
  for (uint32_t id = 0; id < tokenizer_->vocab_size(); ++id) {
    absl::string_view bytes = tokenizer_->TokenBytes(id);
    response->add_token_bytes(bytes.data(), bytes.size());
  }
  return grpc::Status::OK;
}

}  // namespace skein::tokenizer
