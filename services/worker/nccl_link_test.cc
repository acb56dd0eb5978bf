// The NCCL stage link as the worker sees it. Everywhere: OpenNcclLink's argument and
// precondition errors on a CPU stage, a Relay frame naming a link that is not open failing its
// step and ending the stream, and `skein-worker --link nccl` refusing a stage without a GPU. With
// two GPUs: two in-process stages over NcclStageLink give the logits of one stage.
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "services/worker/engine/stage_engine.h"
#include "services/worker/link/activation_frames.h"
#include "services/worker/link/nccl_stage_link.h"
#include "services/worker/worker_service.h"
#include "skein/v1/worker.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/test_data.h"

namespace skein::worker {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr char kModel[] = "golden/rwkv7/small-l4-c256-v1024.pth";

// One stage of the model served in this process.
class InProcessStage {
 public:
  // Layers [first, last) on `device`; `next` is the link to the next stage (null: last stage).
  static std::unique_ptr<InProcessStage> Start(const std::string& model, int first, int last,
                                               model::DeviceSpec device, int stage, int stages,
                                               std::unique_ptr<link::StageLink> next = nullptr) {
    engine::StageEngineOptions options;
    options.run_dtype = model::DType::kF32;
    options.first_layer = first;
    options.last_layer = last;
    options.threads = 1;
    options.device = device;
    absl::StatusOr<std::unique_ptr<engine::StageEngine>> engine =
        engine::StageEngine::Load(model, options);
    EXPECT_TRUE(engine.ok()) << engine.status();
    if (!engine.ok()) return nullptr;
    auto s = std::unique_ptr<InProcessStage>(new InProcessStage);
    s->n_embd = static_cast<uint32_t>((*engine)->config().n_embd);
    WorkerConfig config;
    config.model_name = "small";
    config.stage_index = static_cast<uint32_t>(stage);
    config.stage_count = static_cast<uint32_t>(stages);
    config.measure_bandwidth = false;
    s->service = std::make_unique<WorkerService>(config, s->registry);
    s->service->SetEngine(*std::move(engine), std::move(next), nullptr);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(s->service.get());
    s->server = builder.BuildAndStart();
    s->address = absl::StrCat("127.0.0.1:", port);
    s->stub = v1::WorkerService::NewStub(
        grpc::CreateChannel(s->address, grpc::InsecureChannelCredentials()));
    return s;
  }
  ~InProcessStage() {
    if (server != nullptr) server->Shutdown(std::chrono::system_clock::now() + 5s);
  }

  prometheus::Registry registry;
  std::unique_ptr<WorkerService> service;
  std::unique_ptr<grpc::Server> server;
  std::string address;
  std::unique_ptr<v1::WorkerService::Stub> stub;
  uint32_t n_embd = 0;

 private:
  InProcessStage() = default;
};

v1::OpenNcclLinkRequest OpenRequest(uint32_t width) {
  v1::OpenNcclLinkRequest r;
  r.set_unique_id(std::string(link::kNcclIdBytes, '\x01'));
  r.set_world(2);
  r.set_rank(1);
  r.set_link_id(7);
  r.set_dtype(v1::ACTIVATION_DTYPE_FP32);
  r.set_width(width);
  return r;
}

// A step of session `id` feeding `tokens` from position 0, asking for every token's logits.
v1::StepRequest FirstStep(uint64_t step_id, const std::string& id,
                          const std::vector<uint32_t>& tokens) {
  v1::StepRequest req;
  req.set_step_id(step_id);
  v1::SequenceInput* s = req.add_sequences();
  s->set_session_id(id);
  for (uint32_t t : tokens) s->add_tokens(t);
  s->set_reset(true);
  s->set_logits(v1::SequenceInput::LOGITS_MODE_ALL);
  return req;
}

class NcclLinkWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    model_ = ::skein::testing::FindTestData(kModel, &why);
    if (model_.empty()) SKEIN_MISSING_PREREQUISITE() << "test data: " << why;
  }
  std::string model_;
};

TEST_F(NcclLinkWorkerTest, OpenNcclLinkOnACpuStageIsRefused) {
  std::unique_ptr<InProcessStage> stage =
      InProcessStage::Start(model_, 2, 4, model::DeviceSpec{}, 1, 2);
  ASSERT_NE(stage, nullptr);
  v1::OpenNcclLinkResponse response;
  {
    grpc::ClientContext ctx;
    const grpc::Status st = stage->stub->OpenNcclLink(&ctx, OpenRequest(stage->n_embd), &response);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
    EXPECT_THAT(st.error_message(), HasSubstr("--device cuda"));
  }
  {
    v1::OpenNcclLinkRequest bad = OpenRequest(stage->n_embd);
    bad.set_unique_id("too short");
    grpc::ClientContext ctx;
    const grpc::Status st = stage->stub->OpenNcclLink(&ctx, bad, &response);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_THAT(st.error_message(), HasSubstr("128 bytes"));
  }
}

TEST_F(NcclLinkWorkerTest, AFrameNamingNoOpenLinkFailsItsStepAndEndsTheStream) {
  std::unique_ptr<InProcessStage> stage =
      InProcessStage::Start(model_, 2, 4, model::DeviceSpec{}, 1, 2);
  ASSERT_NE(stage, nullptr);
  grpc::ClientContext ctx;
  auto stream = stage->stub->Relay(&ctx);
  model::StageActivations rows;
  rows.rows = 1;
  rows.width = stage->n_embd;
  rows.hidden.assign(stage->n_embd, 0.25f);
  rows.v_first.assign(stage->n_embd, -0.5f);
  ASSERT_TRUE(stream->Write(
      link::EncodeNcclFrame(FirstStep(1, "a", {5}), rows, v1::ACTIVATION_DTYPE_FP32, 9)));
  v1::StepResult result;
  ASSERT_TRUE(stream->Read(&result));
  EXPECT_EQ(result.step_id(), 1u);
  EXPECT_EQ(result.error_code(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION))
      << result.error_message();
  EXPECT_THAT(result.error_message(), HasSubstr("NCCL link 9"));
  // The rows sent for it can never be received here: the stream ends, so that the sender
  // opens a new link.
  EXPECT_FALSE(stream->Read(&result));
  const grpc::Status end = stream->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE) << end.error_message();

  // The stage is unharmed: the same rows in the frame compute on a new stream.
  grpc::ClientContext ctx2;
  auto again = stage->stub->Relay(&ctx2);
  for (v1::ActivationFrame& f :
       link::EncodeFrames(FirstStep(2, "a", {5}), rows, v1::ACTIVATION_DTYPE_FP32)) {
    ASSERT_TRUE(again->Write(f));
  }
  ASSERT_TRUE(again->Read(&result));
  EXPECT_EQ(result.step_id(), 2u);
  EXPECT_EQ(result.error_code(), 0) << result.error_message();
  ASSERT_EQ(result.outputs_size(), 1);
  EXPECT_EQ(result.outputs(0).position(), 1u);
  again->WritesDone();
  EXPECT_TRUE(again->Finish().ok());
}

TEST_F(NcclLinkWorkerTest, WorkerWithNcclLinkNeedsACudaDevice) {
  ::skein::testing::ChildProcess p({::skein::testing::RunfilePath("services/worker/skein-worker"),
                                    "--model", model_, "--link", "nccl", "--listen", "127.0.0.1:0",
                                    "--metrics-port", "0"});
  const std::optional<int> code = p.Wait(60s);
  ASSERT_TRUE(code.has_value()) << "still running: " << p.Stderr();
  EXPECT_NE(*code, 0);
  EXPECT_THAT(p.Stderr(), HasSubstr("--link nccl"));
  // A build with NCCL names the device; one without says it has no NCCL.
  EXPECT_THAT(p.Stderr(), HasSubstr(link::NcclLinkBuilt() ? "--device cuda:N" : "no NCCL"));
}

TEST_F(NcclLinkWorkerTest, TwoStagesOverNcclGiveTheLogitsOfOneStage) {
  std::string why;
  const int devices = link::NcclUsableDevices(&why);
  if (devices < 2) {
    GTEST_SKIP() << "needs two GPUs and NCCL: "
                 << (devices == 0 ? why : std::string("only one GPU"));
  }
  const model::DeviceSpec gpu0{model::DeviceKind::kCuda, 0}, gpu1{model::DeviceKind::kCuda, 1};
  std::unique_ptr<InProcessStage> whole = InProcessStage::Start(model_, 0, 4, gpu0, 0, 1);
  std::unique_ptr<InProcessStage> second = InProcessStage::Start(model_, 2, 4, gpu1, 1, 2);
  ASSERT_NE(whole, nullptr);
  ASSERT_NE(second, nullptr);
  link::NcclStageLinkOptions options;
  options.target = second->address;
  options.cuda_device = 0;
  options.width = second->n_embd;
  options.open_timeout = absl::Seconds(60);
  absl::StatusOr<std::unique_ptr<link::StageLink>> nccl = link::OpenNcclStageLink(options);
  ASSERT_TRUE(nccl.ok()) << nccl.status();
  std::unique_ptr<InProcessStage> first =
      InProcessStage::Start(model_, 0, 2, gpu0, 0, 2, *std::move(nccl));
  ASSERT_NE(first, nullptr);

  // A prefill, then a decode step, so that two transfers follow each other on the link.
  const std::vector<std::vector<uint32_t>> feeds = {{131, 636, 668, 433, 656}, {403}};
  uint64_t position = 0;
  for (size_t i = 0; i < feeds.size(); ++i) {
    v1::StepRequest req = FirstStep(i + 1, "s", feeds[i]);
    if (i > 0) {
      req.mutable_sequences(0)->set_reset(false);
      req.mutable_sequences(0)->set_expected_position(position);
    }
    v1::StepResult want, got;
    grpc::ClientContext c1, c2;
    const grpc::Status st1 = whole->stub->Step(&c1, req, &want);
    const grpc::Status st2 = first->stub->Step(&c2, req, &got);
    ASSERT_TRUE(st1.ok()) << st1.error_message();
    ASSERT_TRUE(st2.ok()) << st2.error_message();
    position += feeds[i].size();
    ASSERT_EQ(got.outputs(0).position(), position);
    const std::string& a = want.outputs(0).logits();
    const std::string& b = got.outputs(0).logits();
    ASSERT_EQ(a.size(), b.size());
    ASSERT_GT(a.size(), 0u);
    const auto* fa = reinterpret_cast<const float*>(a.data());
    const auto* fb = reinterpret_cast<const float*>(b.data());
    for (size_t j = 0; j < a.size() / sizeof(float); ++j) {
      ASSERT_NEAR(fa[j], fb[j], 1e-3f + 1e-3f * std::abs(fa[j])) << "step " << i << " logit " << j;
    }
  }
  // Graceful teardown: the sender's link goes before the receiving stage.
  first.reset();
  second.reset();
}

}  // namespace
}  // namespace skein::worker
