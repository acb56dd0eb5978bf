// TokenizerService over gRPC on a loopback port, with the real World vocabulary.
#include "services/tokenizer/tokenizer_service.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"
#include "services/tokenizer/test_vocab.h"
#include "tests/support/test_data.h"

namespace skein::tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

class TokenizerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKEIN_REQUIRE_TEST_DATA(vocab, testing::kWorldVocabPath);
    tokenizer_ = &testing::SharedWorldTokenizer(vocab);
    TokenizerServiceLimits limits;
    limits.max_batch = 4;
    limits.max_request_bytes = 1000;
    limits.max_request_tokens = 100;
    limits.max_decode_bytes = 300;
    service_ = std::make_unique<TokenizerServiceImpl>(tokenizer_, limits, &registry_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::TokenizerService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                              grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  std::string Metrics() {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, registry_.Collect());
    return out.str();
  }

  const WorldTokenizer* tokenizer_ = nullptr;
  prometheus::Registry registry_;
  std::unique_ptr<TokenizerServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::TokenizerService::Stub> stub_;
};

TEST_F(TokenizerServiceTest, EncodesBatchesExactlyLikeTheLibrary) {
  v1::EncodeRequest req;
  req.add_texts("Hello world");
  req.add_texts(std::string("\x00\x01", 2));
  req.add_texts("\xF0\x9F\x98\x80");  // one emoji: three tokens
  req.add_texts("");
  v1::EncodeResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Encode(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.results_size(), 4);
  EXPECT_THAT(resp.results(0).ids(), ElementsAre(33155, 40213));
  EXPECT_THAT(resp.results(1).ids(), ElementsAre(1, 2));
  EXPECT_THAT(resp.results(2).ids(), ElementsAreArray(tokenizer_->Encode("\xF0\x9F\x98\x80")));
  EXPECT_EQ(resp.results(3).ids_size(), 0);
  EXPECT_THAT(Metrics(), HasSubstr("skein_tokenizer_tokens_total{direction=\"encode\"} "));
}

TEST_F(TokenizerServiceTest, AcceptsInvalidUtf8AsBytesAndRoundTrips) {
  const std::string bytes("\xFF\xFE\xC3 a\x80", 6);
  v1::EncodeRequest req;
  req.add_texts(bytes);
  v1::EncodeResponse enc;
  grpc::ClientContext c1;
  ASSERT_TRUE(stub_->Encode(&c1, req, &enc).ok());
  v1::DecodeRequest dreq;
  *dreq.mutable_ids() = enc.results(0).ids();
  v1::DecodeResponse dec;
  grpc::ClientContext c2;
  ASSERT_TRUE(stub_->Decode(&c2, dreq, &dec).ok());
  EXPECT_EQ(dec.data(), bytes);
  EXPECT_FALSE(dec.valid_utf8());
  EXPECT_THAT(dec.text(), HasSubstr("\xEF\xBF\xBD"));  // U+FFFD
}

TEST_F(TokenizerServiceTest, DecodeOfValidTextSetsText) {
  v1::DecodeRequest req;
  req.add_ids(33155);
  req.add_ids(40213);
  v1::DecodeResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Decode(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.data(), "Hello world");
  EXPECT_TRUE(resp.valid_utf8());
  EXPECT_EQ(resp.text(), "Hello world");
}

TEST_F(TokenizerServiceTest, UnknownIdsAreInvalidArgumentNamingTheId) {
  for (uint32_t bad : {0u, 65530u, 70000u}) {
    v1::DecodeRequest req;
    req.add_ids(33155);
    req.add_ids(bad);
    v1::DecodeResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->Decode(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_THAT(s.error_message(), HasSubstr(std::to_string(bad)));
  }
}

TEST_F(TokenizerServiceTest, LimitsAnswerResourceExhausted) {
  {
    v1::EncodeRequest req;
    for (int i = 0; i < 5; ++i) req.add_texts("x");
    v1::EncodeResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->Encode(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(s.error_message(), HasSubstr("limit of 4"));
  }
  {
    v1::CountTokensRequest req;
    req.add_texts(std::string(1001, 'a'));
    v1::CountTokensResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->CountTokens(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(s.error_message(), HasSubstr("1001 bytes"));
  }
  {
    v1::DecodeRequest req;
    for (int i = 0; i < 101; ++i) req.add_ids(33);
    v1::DecodeResponse resp;
    grpc::ClientContext ctx;
    EXPECT_EQ(stub_->Decode(&ctx, req, &resp).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  {
    // Few ids, but long tokens: the answer's size is bounded, not just the id count.
    const std::vector<uint32_t> long_token = tokenizer_->Encode(std::string(16, ' '));
    ASSERT_EQ(long_token.size(), 1u) << "the World vocabulary has a 16-space token";
    v1::DecodeRequest req;
    for (int i = 0; i < 19; ++i) req.add_ids(long_token[0]);  // 304 bytes
    v1::DecodeResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->Decode(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(s.error_message(), HasSubstr("304 bytes"));
    req.mutable_ids()->RemoveLast();  // 288 bytes fit
    grpc::ClientContext again;
    EXPECT_TRUE(stub_->Decode(&again, req, &resp).ok());
    EXPECT_EQ(resp.data(), std::string(288, ' '));
  }
  {
    v1::EncodeRequest req;
    v1::EncodeResponse resp;
    grpc::ClientContext ctx;
    EXPECT_EQ(stub_->Encode(&ctx, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  EXPECT_THAT(Metrics(), HasSubstr("skein_tokenizer_rejected_requests_total 4"));
}

TEST_F(TokenizerServiceTest, CountTokensMatchesEncode) {
  v1::CountTokensRequest req;
  req.add_texts("The Eiffel tower is in the city of");
  req.add_texts("\xE4\xBD\xA0\xE5\xA5\xBD");
  v1::CountTokensResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->CountTokens(&ctx, req, &resp).ok());
  EXPECT_THAT(resp.counts(),
              ElementsAre(10, tokenizer_->Encode("\xE4\xBD\xA0\xE5\xA5\xBD").size()));
}

TEST_F(TokenizerServiceTest, StreamDecodeNeverSplitsACharacterAndFlushesAtTheEnd) {
  // U+1F600 is three tokens; the text must arrive whole with the last of them.
  std::vector<uint32_t> emoji = tokenizer_->Encode("\xF0\x9F\x98\x80");
  ASSERT_EQ(emoji.size(), 3u);
  grpc::ClientContext ctx;
  auto stream = stub_->StreamDecode(&ctx);
  std::vector<std::string> texts;
  v1::StreamDecodeResponse resp;
  for (uint32_t id : emoji) {
    v1::StreamDecodeRequest req;
    req.add_ids(id);
    ASSERT_TRUE(stream->Write(req));
    ASSERT_TRUE(stream->Read(&resp));
    texts.push_back(resp.text());
    EXPECT_FALSE(resp.final());
  }
  // A dangling lead byte (0xF0 is token 241) is flushed as U+FFFD at the end.
  v1::StreamDecodeRequest dangling;
  dangling.add_ids(0xF0 + 1);
  ASSERT_TRUE(stream->Write(dangling));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.text(), "");
  stream->WritesDone();
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_TRUE(resp.final());
  EXPECT_EQ(resp.text(), "\xEF\xBF\xBD");
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_THAT(texts, ElementsAre("", "", "\xF0\x9F\x98\x80"));
}

TEST_F(TokenizerServiceTest, StreamDecodeRejectsUnknownIds) {
  grpc::ClientContext ctx;
  auto stream = stub_->StreamDecode(&ctx);
  v1::StreamDecodeRequest req;
  req.add_ids(99999);
  stream->Write(req);
  stream->WritesDone();
  v1::StreamDecodeResponse resp;
  while (stream->Read(&resp)) {
  }
  grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("99999"));
}

TEST_F(TokenizerServiceTest, VocabularyInfoDescribesTheFile) {
  v1::VocabularyInfo info;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->GetVocabularyInfo(&ctx, v1::GetVocabularyInfoRequest(), &info).ok());
  EXPECT_EQ(info.kind(), "rwkv-world");
  EXPECT_EQ(info.vocab_size(), 65536u);
  EXPECT_EQ(info.token_count(), 65529u);
  EXPECT_EQ(info.end_of_text_id(), 0u);
  EXPECT_EQ(info.max_token_bytes(), 128u);
  EXPECT_EQ(info.sha256(), "e6dee3d4e31b4d5c40ac99508ac6c701ceef4bed681bf2167ce9a908552bca89");
}

TEST_F(TokenizerServiceTest, VocabularyHoldsEveryTokensBytesByItsId) {
  v1::Vocabulary vocab;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->GetVocabulary(&ctx, v1::GetVocabularyRequest(), &vocab).ok());
  ASSERT_EQ(vocab.token_bytes_size(), 65536);
  EXPECT_EQ(vocab.vocab_size(), 65536u);
  EXPECT_TRUE(vocab.token_bytes(0).empty());  // end of text has no bytes
  int with_bytes = 0;
  for (const std::string& b : vocab.token_bytes()) with_bytes += b.empty() ? 0 : 1;
  EXPECT_EQ(with_bytes, 65529);
  // "Hello world" is [33155, 40213] (README); the ids' bytes spell it.
  EXPECT_EQ(vocab.token_bytes(33155) + vocab.token_bytes(40213), "Hello world");
}

}  // namespace
}  // namespace skein::tokenizer
