// TLS, mutual TLS and bearer tokens on real processes, with certificates made by openssl:
// every service serves TLS and calls the others with its certificate; internal services
// refuse a peer without one; the public API (gRPC and HTTPS) wants a bearer token, while
// health checks stay open for probes; plaintext is refused.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "skein/v1/router.grpc.pb.h"
#include "skein/v1/worker.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/prerequisite.h"
#include "tests/support/serving_cluster.h"
#include "tests/support/test_data.h"

namespace skein {
namespace {

using ::skein::testing::ChildProcess;
using ::skein::testing::RunfilePath;
using namespace std::chrono_literals;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool RunCommand(std::vector<std::string> argv) {
  ChildProcess p(std::move(argv));
  return p.Wait(60s).value_or(-1) == 0;
}

struct Service {
  std::unique_ptr<ChildProcess> process;
  nlohmann::json ready;
};

Service Start(std::vector<std::string> argv, const std::string& dir, const std::string& name) {
  const std::string ready = dir + "/" + name + ".ready";
  argv.insert(argv.end(), {"--listen", "127.0.0.1:0", "--metrics-port", "0", "--ready-file", ready,
                           "--tls-cert", dir + "/cert.pem", "--tls-key", dir + "/key.pem",
                           "--tls-ca", dir + "/ca.pem"});
  Service s;
  s.process = std::make_unique<ChildProcess>(argv);
  const std::string content = ::skein::testing::WaitForFile(ready, 60s);
  EXPECT_FALSE(content.empty()) << name << ": " << s.process->Stderr();
  if (!content.empty()) s.ready = nlohmann::json::parse(content);
  return s;
}

TEST(SecurityTest, TlsMutualTlsAndBearerTokens) {
  std::string why;
  const std::string model =
      ::skein::testing::FindTestData("golden/rwkv7/small-l4-c256-v1024.pth", &why);
  const std::string vocab = ::skein::testing::FindTestData("data/rwkv_vocab_v20230424.txt", &why);
  if (model.empty() || vocab.empty()) SKEIN_MISSING_PREREQUISITE() << "test data: " << why;
  const std::string openssl = ::skein::testing::FindOnPath("openssl"),
                    curl = ::skein::testing::FindOnPath("curl");
  if (openssl.empty() || curl.empty())
    SKEIN_MISSING_PREREQUISITE() << "openssl and curl are needed";

  // A CA, and one certificate for every process (server and client use), valid for loopback.
  const std::string dir = ::skein::testing::MakeTempDir("tls");
  std::ofstream(dir + "/ext.cnf") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                  << "extendedKeyUsage=serverAuth,clientAuth\n";
  ASSERT_TRUE(
      RunCommand({openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                  "/CN=skein-test-ca", "-keyout", dir + "/ca-key.pem", "-out", dir + "/ca.pem"}));
  ASSERT_TRUE(RunCommand({openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=skein",
                          "-keyout", dir + "/key.pem", "-out", dir + "/cert.csr"}));
  ASSERT_TRUE(RunCommand({openssl, "x509", "-req", "-in", dir + "/cert.csr", "-CA", dir + "/ca.pem",
                          "-CAkey", dir + "/ca-key.pem", "-CAcreateserial", "-days", "2",
                          "-extfile", dir + "/ext.cnf", "-out", dir + "/cert.pem"}));
  std::ofstream(dir + "/tokens") << "# tokens\nsecret-token\n";

  Service tokenizer = Start(
      {RunfilePath("services/tokenizer/skein-tokenizer"), "--vocab", vocab, "--vocab-sha256", ""},
      dir, "tokenizer");
  Service store = Start(
      {RunfilePath("services/state_store/skein-state-store"), "--backend", "memory"}, dir, "store");
  Service worker = Start({RunfilePath("services/worker/skein-worker"), "--model", model, "--dtype",
                          "fp32", "--threads", "1", "--store", store.ready["grpc"]},
                         dir, "worker");
  Service router =
      Start({RunfilePath("services/router/skein-router"), "--pipeline", worker.ready["grpc"],
             "--tokenizer", tokenizer.ready["grpc"], "--store", store.ready["grpc"],
             "--auth-token-file", dir + "/tokens", "--http-listen", "127.0.0.1:0"},
            dir, "router");
  ASSERT_FALSE(router.ready.is_null());
  const std::string address = router.ready["grpc"];

  grpc::SslCredentialsOptions server_only;  // a public client: verifies the server, no cert
  server_only.pem_root_certs = Read(dir + "/ca.pem");
  grpc::SslCredentialsOptions mutual = server_only;
  mutual.pem_private_key = Read(dir + "/key.pem");
  mutual.pem_cert_chain = Read(dir + "/cert.pem");

  auto public_stub =
      v1::RouterService::NewStub(grpc::CreateChannel(address, grpc::SslCredentials(server_only)));
  auto with_token = [](grpc::ClientContext* ctx, const std::string& token) {
    ctx->set_deadline(std::chrono::system_clock::now() + 60s);
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  };
  // The router serves once it reaches its (TLS) worker.
  grpc::Status listed;
  for (int i = 0; i < 200; ++i) {
    grpc::ClientContext ctx;
    with_token(&ctx, "secret-token");
    v1::ListModelsResponse models;
    listed = public_stub->ListModels(&ctx, {}, &models);
    if (listed.ok() && models.models_size() > 0) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(listed.ok()) << listed.error_message();

  // A generation through every internal TLS link equals the engine's.
  v1::GenerateRequest request = ::skein::testing::TokenRequest({1, 2, 3, 4}, 6);
  v1::CompleteResponse done;
  {
    grpc::ClientContext ctx;
    with_token(&ctx, "secret-token");
    grpc::Status s = public_stub->Complete(&ctx, request, &done);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(std::vector<uint32_t>(done.token_ids().begin(), done.token_ids().end()),
            ::skein::testing::EngineGreedy(model, {1, 2, 3, 4}, 6));

  // The command-line client, given the CA and the token.
  ::skein::testing::CmdResult cli =
      ::skein::testing::Skein({"client", "generate", "--router", address, "--tls-ca",
                               dir + "/ca.pem", "--token", "secret-token", "--prompt-tokens",
                               "1,2,3,4", "--max-tokens", "6", "--ignore-eos", "--json"});
  ASSERT_EQ(cli.code, 0) << cli.err;
  EXPECT_EQ(nlohmann::json::parse(cli.out)["tokens"].get<std::vector<uint32_t>>(),
            std::vector<uint32_t>(done.token_ids().begin(), done.token_ids().end()));

  // No token, or a wrong one: UNAUTHENTICATED.
  for (const std::string& token : {std::string(), std::string("guess")}) {
    grpc::ClientContext ctx;
    with_token(&ctx, token);
    v1::CompleteResponse r;
    EXPECT_EQ(public_stub->Complete(&ctx, request, &r).error_code(),
              grpc::StatusCode::UNAUTHENTICATED)
        << "token '" << token << "'";
  }
  // Health stays open for probes, without a token.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    grpc::health::v1::HealthCheckResponse health;
    auto h = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(address, grpc::SslCredentials(server_only)));
    ASSERT_TRUE(h->Check(&ctx, {}, &health).ok());
    EXPECT_EQ(health.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  // Plaintext is refused.
  {
    auto plain = v1::RouterService::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    with_token(&ctx, "secret-token");
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    v1::ListModelsResponse r;
    EXPECT_FALSE(plain->ListModels(&ctx, {}, &r).ok());
  }
  // An internal service wants a client certificate (mutual TLS).
  for (bool with_cert : {false, true}) {
    auto stub = v1::WorkerService::NewStub(
        grpc::CreateChannel(worker.ready["grpc"].get<std::string>(),
                            grpc::SslCredentials(with_cert ? mutual : server_only)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    v1::StageInfo info;
    EXPECT_EQ(stub->GetStageInfo(&ctx, {}, &info).ok(), with_cert);
  }
  // HTTPS front: the same token rule, in the HTTP header.
  const std::string url = "https://" + router.ready["http"].get<std::string>() + "/v1/models";
  auto http = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {
        curl, "-sS", "--cacert", dir + "/ca.pem", "-o", "/dev/null", "-w", "%{http_code}", url};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ChildProcess p(argv);
    p.Wait(30s);
    return p.Stdout();
  };
  EXPECT_EQ(http({}), "401");
  EXPECT_EQ(http({"-H", "Authorization: Bearer secret-token"}), "200");

  // A second router whose HTTP front wants client certificates (mutual TLS over HTTPS).
  Service strict = Start({RunfilePath("services/router/skein-router"), "--pipeline",
                          worker.ready["grpc"], "--tokenizer", tokenizer.ready["grpc"],
                          "--http-listen", "127.0.0.1:0", "--http-client-ca", dir + "/ca.pem"},
                         dir, "strict-router");
  ASSERT_FALSE(strict.ready.is_null());
  const std::string strict_url =
      "https://" + strict.ready["http"].get<std::string>() + "/v1/models";
  auto strict_http = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {curl,        "-sS", "--cacert",     dir + "/ca.pem", "-o",
                                     "/dev/null", "-w",  "%{http_code}", strict_url};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ChildProcess p(argv);
    p.Wait(30s);
    return p.Stdout();
  };
  EXPECT_NE(strict_http({}), "200");  // the handshake fails without a certificate
  for (int i = 0;
       i < 100 && strict_http({"--cert", dir + "/cert.pem", "--key", dir + "/key.pem"}) != "200";
       ++i) {
    std::this_thread::sleep_for(100ms);  // until it has seen its replica
  }
  EXPECT_EQ(strict_http({"--cert", dir + "/cert.pem", "--key", dir + "/key.pem"}), "200");
  strict.process->Signal(SIGTERM);
  strict.process->Wait(30s);

  // An internal service with a certificate but no CA would take any peer: it refuses to start.
  {
    ChildProcess lax({RunfilePath("services/state_store/skein-state-store"), "--backend", "memory",
                      "--listen", "127.0.0.1:0", "--metrics-port", "0", "--tls-cert",
                      dir + "/cert.pem", "--tls-key", dir + "/key.pem"});
    EXPECT_NE(lax.Wait(30s).value_or(0), 0);
    EXPECT_NE(lax.Stderr().find("--tls-ca"), std::string::npos) << lax.Stderr();
  }

  for (Service* s : {&router, &worker, &store, &tokenizer}) {
    s->process->Signal(SIGTERM);
    s->process->Wait(30s);
  }
}

}  // namespace
}  // namespace skein
