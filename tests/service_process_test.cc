// Starts each service binary as a real process on loopback and checks what every Skein
// service promises: gRPC health, reflection, an implemented RPC answering as documented,
// per-RPC metrics on /metrics, a graceful drain on SIGTERM, and one-line errors for bad start-up
// input.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/common/status.h"
#include "skein/v1/router.grpc.pb.h"
#include "skein/v1/state_store.grpc.pb.h"
#include "skein/v1/tokenizer.grpc.pb.h"
#include "skein/v1/worker.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/prerequisite.h"
#include "tests/support/test_data.h"

namespace skein {
namespace {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::skein::testing::ChildProcess;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

struct ServiceCase {
  std::string binary;        // workspace-relative path
  std::string service_name;  // proto full name
  // A method to call, and the code it must answer with the binary's minimal setup.
  std::string method;
  grpc::StatusCode expected_code;
  std::function<grpc::Status(std::shared_ptr<grpc::Channel>)> call;
  // Test data the binary needs, passed as `--flag PATH` (empty: none).
  std::string data_flag = "";
  std::string data_path = "";
  // Other flags it needs to start.
  std::vector<std::string> fixed_args = {};
};

std::string PrintCase(const ::testing::TestParamInfo<ServiceCase>& info) {
  std::string name = info.param.binary.substr(info.param.binary.rfind('/') + 1);
  for (char& c : name) {
    if (c == '-') c = '_';
  }
  return name;
}

std::vector<ServiceCase> Cases() {
  return {
      {"services/tokenizer/skein-tokenizer", "skein.v1.TokenizerService",
       "/skein.v1.TokenizerService/Decode", grpc::StatusCode::INVALID_ARGUMENT,
       [](std::shared_ptr<grpc::Channel> ch) {
         grpc::ClientContext ctx;
         v1::DecodeRequest req;
         req.add_ids(1000000);
         v1::DecodeResponse out;
         return v1::TokenizerService::NewStub(ch)->Decode(&ctx, req, &out);
       },
       "--vocab", "data/rwkv_vocab_v20230424.txt"},
      {"services/worker/skein-worker",
       "skein.v1.WorkerService",
       // A step for a session the stage does not hold.
       "/skein.v1.WorkerService/Step",
       grpc::StatusCode::NOT_FOUND,
       [](std::shared_ptr<grpc::Channel> ch) {
         grpc::ClientContext ctx;
         v1::StepRequest req;
         v1::SequenceInput* s = req.add_sequences();
         s->set_session_id("nobody");
         s->add_tokens(1);
         s->set_expected_position(3);
         v1::StepResult out;
         return v1::WorkerService::NewStub(ch)->Step(&ctx, req, &out);
       },
       "--model",
       "golden/rwkv7/tiny-l2-c128-v256.pth",
       {"--threads", "1"}},
      {"services/state_store/skein-state-store", "skein.v1.StateStoreService",
       // Implemented: an unknown key is NOT_FOUND (the default backend, RocksDB in a fresh
       // temporary directory, holds nothing).
       "/skein.v1.StateStoreService/Stat", grpc::StatusCode::NOT_FOUND,
       [](std::shared_ptr<grpc::Channel> ch) {
         grpc::ClientContext ctx;
         v1::StatRequest req;
         req.set_key("k");
         v1::EntryInfo out;
         return v1::StateStoreService::NewStub(ch)->Stat(&ctx, req, &out);
       }},
      {"services/router/skein-router",
       "skein.v1.RouterService",
       // Sessions need a state store, and this router has none.
       "/skein.v1.RouterService/GetSession",
       grpc::StatusCode::FAILED_PRECONDITION,
       [](std::shared_ptr<grpc::Channel> ch) {
         grpc::ClientContext ctx;
         v1::GetSessionRequest req;
         req.set_session_id("s");
         v1::Session out;
         return v1::RouterService::NewStub(ch)->GetSession(&ctx, req, &out);
       },
       "",
       "",
       {"--pipeline", "127.0.0.1:1", "--require-pipeline=false"}},
  };
}

// A started service and what its ready file said.
struct Running {
  std::unique_ptr<ChildProcess> process;
  std::string grpc_address;
  int metrics_port = 0;
  std::shared_ptr<grpc::Channel> channel;
  int startup_checks = 0;  // health checks made while waiting for SERVING
};

class ServiceProcessTest : public ::testing::TestWithParam<ServiceCase> {
 protected:
  void SetUp() override {
    if (!GetParam().data_flag.empty()) {
      std::string why;
      data_path_ = testing::FindTestData(GetParam().data_path, &why);
      if (data_path_.empty()) SKEIN_MISSING_PREREQUISITE() << "test data not found: " << why;
    }
  }

  std::string Binary() {
    std::string path = testing::RunfilePath(GetParam().binary);
    EXPECT_FALSE(path.empty()) << GetParam().binary << " not in runfiles";
    return path;
  }

  // The binary and the flags it needs to start at all.
  std::vector<std::string> Command(std::vector<std::string> args) {
    std::vector<std::string> argv = {Binary()};
    if (!GetParam().data_flag.empty()) {
      argv.push_back(GetParam().data_flag);
      argv.push_back(data_path_);
    }
    argv.insert(argv.end(), GetParam().fixed_args.begin(), GetParam().fixed_args.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  std::string data_path_;

  Running Start(std::vector<std::string> extra_args = {}) {
    Running r;
    std::string dir = testing::MakeTempDir("svc");
    std::string ready = dir + "/ready.json";
    std::vector<std::string> argv = Command({"--listen", "127.0.0.1:0", "--metrics-port", "0",
                                             "--ready-file", ready, "--drain-seconds", "2"});
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    r.process = std::make_unique<ChildProcess>(argv);
    std::string content = testing::WaitForFile(ready, 20s);
    if (content.empty()) {
      ADD_FAILURE() << "no ready file; stderr:\n" << r.process->Stderr();
      return r;
    }
    auto json = nlohmann::json::parse(content);
    r.grpc_address = json["grpc"];
    r.metrics_port = json["metrics_port"];
    r.channel = grpc::CreateChannel(r.grpc_address, grpc::InsecureChannelCredentials());
    r.startup_checks = WaitUntilServing(r.channel);
    return r;
  }

  // A worker answers (NOT_SERVING) while it loads its model; wait for the end of that.
  // Returns the number of checks it made.
  static int WaitUntilServing(const std::shared_ptr<grpc::Channel>& channel) {
    const auto until = std::chrono::steady_clock::now() + 20s;
    int checks = 0;
    while (std::chrono::steady_clock::now() < until) {
      ++checks;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 2s);
      HealthCheckResponse resp;
      if (grpc::health::v1::Health::NewStub(channel)
              ->Check(&ctx, HealthCheckRequest(), &resp)
              .ok() &&
          resp.status() == HealthCheckResponse::SERVING) {
        return checks;
      }
      std::this_thread::sleep_for(20ms);
    }
    return checks;
  }
};

HealthCheckResponse::ServingStatus Health(std::shared_ptr<grpc::Channel> channel,
                                          const std::string& service, grpc::Status* status) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  HealthCheckRequest req;
  req.set_service(service);
  HealthCheckResponse resp;
  *status = grpc::health::v1::Health::NewStub(channel)->Check(&ctx, req, &resp);
  return resp.status();
}

TEST_P(ServiceProcessTest, ServesHealthReflectionAndMetricsThenDrainsOnSigterm) {
  Running r = Start();
  ASSERT_TRUE(r.channel);

  grpc::Status status;
  EXPECT_EQ(Health(r.channel, "", &status), HealthCheckResponse::SERVING);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Health(r.channel, GetParam().service_name, &status), HealthCheckResponse::SERVING);
  EXPECT_TRUE(status.ok());
  Health(r.channel, "no.such.Service", &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);

  // Reflection lists the service.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    auto stream =
        grpc::reflection::v1alpha::ServerReflection::NewStub(r.channel)->ServerReflectionInfo(&ctx);
    grpc::reflection::v1alpha::ServerReflectionRequest req;
    req.set_list_services("");
    ASSERT_TRUE(stream->Write(req));
    stream->WritesDone();
    grpc::reflection::v1alpha::ServerReflectionResponse resp;
    ASSERT_TRUE(stream->Read(&resp));
    std::vector<std::string> names;
    for (const auto& s : resp.list_services_response().service()) names.push_back(s.name());
    EXPECT_THAT(names, ::testing::Contains(GetParam().service_name));
    EXPECT_THAT(names, ::testing::Contains("grpc.health.v1.Health"));
    EXPECT_TRUE(stream->Finish().ok());
  }

  EXPECT_EQ(GetParam().call(r.channel).error_code(), GetParam().expected_code);

  auto body = testing::HttpGet(r.metrics_port, "/metrics");
  ASSERT_TRUE(body.has_value());
  // The test's own two checks, plus those made while waiting for the service to serve.
  EXPECT_THAT(*body, HasSubstr("method=\"/grpc.health.v1.Health/Check\"} " +
                               std::to_string(2 + r.startup_checks)));
  EXPECT_THAT(*body, HasSubstr("skein_grpc_server_handled_total{"));
  // The call is counted under its method and code, before its answer reached the client.
  const std::string line_start = "skein_grpc_server_handled_total{";
  bool found_call = false;
  std::istringstream lines(*body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(line_start, 0) == 0 &&
        line.find("code=\"" + std::string(GrpcCodeName(GetParam().expected_code)) + "\"") !=
            std::string::npos &&
        line.find("method=\"" + GetParam().method + "\"") != std::string::npos) {
      found_call = line.substr(line.rfind(' ') + 1) == "1";
    }
  }
  EXPECT_TRUE(found_call) << *body;
  EXPECT_THAT(*body, HasSubstr("skein_grpc_server_handling_seconds_bucket{"));
  EXPECT_THAT(*body, HasSubstr("process_cpu_seconds_total"));
  EXPECT_THAT(*body, HasSubstr("process_resident_memory_bytes"));

  // An open Watch stream sees NOT_SERVING when SIGTERM arrives, and the process exits 0
  // after the drain.
  grpc::ClientContext watch_ctx;
  HealthCheckRequest watch_req;
  auto watch = grpc::health::v1::Health::NewStub(r.channel)->Watch(&watch_ctx, watch_req);
  HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::SERVING);

  r.process->Signal(SIGTERM);
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::NOT_SERVING);
  auto code = r.process->Wait(20s);
  ASSERT_TRUE(code.has_value()) << "did not exit after SIGTERM";
  EXPECT_EQ(*code, 0) << r.process->Stderr();
  EXPECT_THAT(r.process->Stderr(), HasSubstr("\"msg\":\"draining\""));
}

TEST_P(ServiceProcessTest, ReadsFlagsFromConfigFile) {
  std::string dir = testing::MakeTempDir("cfg");
  int port = testing::PickUnusedPort();
  std::string config = dir + "/service.toml";
  std::ofstream(config) << "listen = \"127.0.0.1:" << port << "\"\nlog-level = \"warning\"\n";
  std::string ready = dir + "/ready.json";
  ChildProcess p(Command({"--config", config, "--metrics-port", "0", "--ready-file", ready}));
  std::string content = testing::WaitForFile(ready, 20s);
  ASSERT_FALSE(content.empty()) << p.Stderr();
  EXPECT_EQ(nlohmann::json::parse(content)["grpc"], "127.0.0.1:" + std::to_string(port));
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(20s), 0);
  // log-level warning from the file: the info lines are gone.
  EXPECT_THAT(p.Stderr(), ::testing::Not(HasSubstr("\"msg\":\"serving\"")));
}

// The process fails with the reason on one plain line ("BINARY: error: REASON"); anything
// else it wrote before is structured log lines.
void ExpectOneLineFailure(ChildProcess& p, const std::string& reason) {
  auto code = p.Wait(20s);
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  std::istringstream lines(p.Stderr());
  std::vector<std::string> plain;
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.front() != '{') plain.push_back(line);
  }
  ASSERT_EQ(plain.size(), 1u) << p.Stderr();
  EXPECT_THAT(plain[0], HasSubstr(": error: "));
  EXPECT_THAT(plain[0], HasSubstr(reason));
}

TEST_P(ServiceProcessTest, UnknownFlagFailsWithOneLine) {
  ChildProcess p(Command({"--no-such-flag"}));
  ExpectOneLineFailure(p, "--no-such-flag");
}

TEST_P(ServiceProcessTest, UnreadableConfigFailsWithOneLine) {
  ChildProcess p(Command({"--config", "/nonexistent/skein.toml"}));
  ExpectOneLineFailure(p, "/nonexistent/skein.toml");
}

TEST_P(ServiceProcessTest, MalformedListenAddressFailsWithOneLine) {
  ChildProcess p(Command({"--listen", "localhost", "--metrics-port", "0"}));
  ExpectOneLineFailure(p, "HOST:PORT");
}

TEST_P(ServiceProcessTest, PortInUseFailsWithOneLine) {
  Running first = Start();
  ASSERT_TRUE(first.channel);
  ChildProcess second(Command({"--listen", first.grpc_address, "--metrics-port", "0"}));
  ExpectOneLineFailure(second, "Address already in use");

  int metrics_port = first.metrics_port;
  ChildProcess third(
      Command({"--listen", "127.0.0.1:0", "--metrics-port", std::to_string(metrics_port)}));
  ExpectOneLineFailure(third, "cannot serve metrics");
}

INSTANTIATE_TEST_SUITE_P(AllServices, ServiceProcessTest, ::testing::ValuesIn(Cases()), PrintCase);

}  // namespace
}  // namespace skein
