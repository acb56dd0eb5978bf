// skein.v1.WorkerService: one pipeline stage serving batched steps over its sessions.
//
// Step (stage 0) and Relay (later stages) run this stage's layers through the StepExecutor,
// then hand the activations to the next stage's link and answer with the last stage's result
// when it comes back. On a GPU stage, OpenNcclLink lets the previous stage send the rows of its
// Relay frames over NCCL. Computation is serialized by the model, but a step waiting on the
// stages below does not hold the stage: while micro-batch k is downstream, micro-batch k+1
// computes here. State RPCs go through the session table and the state store.
//
// Until SetEngine is called (the model is loading) every RPC answers UNAVAILABLE.
// Thread-safe.
#ifndef SKEIN_SERVICES_WORKER_WORKER_SERVICE_H_
#define SKEIN_SERVICES_WORKER_WORKER_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "services/state_store/client.h"
#include "services/worker/engine/session_table.h"
#include "services/worker/engine/stage_engine.h"
#include "services/worker/engine/step_executor.h"
#include "services/worker/link/activation_frames.h"
#include "services/worker/link/nccl_stage_link.h"
#include "services/worker/link/stage_link.h"
#include "skein/v1/worker.grpc.pb.h"

namespace skein::worker {

struct WorkerConfig {
  std::string model_name;
  uint32_t stage_index = 0;
  uint32_t stage_count = 1;
  size_t max_sessions = 256;
  int64_t max_step_tokens = 4096;
  uint64_t spill_ttl_seconds = 3600;
  v1::ActivationDType link_dtype = v1::ACTIVATION_DTYPE_FP32;
  // Measure the machine's memory read bandwidth at load (about 0.1 s), for the
  // bandwidth-utilisation metrics.
  bool measure_bandwidth = true;
};

class WorkerService final : public v1::WorkerService::Service {
 public:
  // `registry` receives the stage's metrics (docs/metrics.md).
  WorkerService(WorkerConfig config, prometheus::Registry& registry);
  ~WorkerService() override;

  // Makes the stage serve. `next` is null on the last stage; `store` may be null (then
  // evicted sessions are dropped and state RPCs that name the store fail FAILED_PRECONDITION).
  void SetEngine(std::unique_ptr<engine::StageEngine> engine, std::unique_ptr<link::StageLink> next,
                 std::unique_ptr<state_store::StateStoreClient> store);

  grpc::Status GetStageInfo(grpc::ServerContext* context, const v1::GetStageInfoRequest* request,
                            v1::StageInfo* response) override;
  grpc::Status Step(grpc::ServerContext* context, const v1::StepRequest* request,
                    v1::StepResult* response) override;
  grpc::Status Relay(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::StepResult, v1::ActivationFrame>* stream) override;
  grpc::Status OpenNcclLink(grpc::ServerContext* context, const v1::OpenNcclLinkRequest* request,
                            v1::OpenNcclLinkResponse* response) override;
  grpc::Status LoadState(grpc::ServerContext* context, const v1::LoadStateRequest* request,
                         v1::SessionStateInfo* response) override;
  grpc::Status SaveState(grpc::ServerContext* context, const v1::SaveStateRequest* request,
                         v1::SaveStateResponse* response) override;
  grpc::Status ForkState(grpc::ServerContext* context, const v1::ForkStateRequest* request,
                         v1::SessionStateInfo* response) override;
  grpc::Status DropState(grpc::ServerContext* context, const v1::DropStateRequest* request,
                         v1::DropStateResponse* response) override;

  // Drain (SIGTERM): from now on GetStageInfo reports `draining`, so routers stop sending new
  // work here and move this stage's running generations elsewhere (snapshotting them through
  // SaveState, which keeps working). Returns once no step has run for `quiet`, or at
  // `deadline`, whichever comes first. Idempotent.
  void Drain(absl::Duration quiet, absl::Time deadline);

 private:
  using Done = link::StageLink::Done;
  // Computes this stage's share of `request` and forwards it; `done` gets the final result.
  void RunAndForward(const v1::StepRequest& request, const model::StageActivations* input,
                     Done done);
  // Fills in the rows of a step whose frame says they travel over NCCL, from the open inbound
  // link. FAILED_PRECONDITION when the frame names a link that is not open here; the link's
  // Receive errors otherwise.
  absl::Status ReceiveNcclRows(link::FrameAssembler::Step& step) ABSL_LOCKS_EXCLUDED(nccl_mutex_);
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  v1::StateMetadata Metadata(int64_t position, size_t size) const;
  void UpdateGauges();

  const WorkerConfig config_;
  std::unique_ptr<engine::StageEngine> engine_;
  std::unique_ptr<engine::SessionSpill> spill_;
  std::unique_ptr<engine::SessionTable> sessions_;
  std::unique_ptr<engine::StepExecutor> executor_;
  std::unique_ptr<link::StageLink> next_;
  std::unique_ptr<state_store::StateStoreClient> store_;
  std::atomic<bool> ready_{false};
  std::atomic<uint32_t> in_flight_{0};
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> last_step_unix_ns_{0};
  absl::Mutex relay_mutex_;
  // Open Relay streams.
  absl::flat_hash_set<grpc::ServerContext*> relays_ ABSL_GUARDED_BY(relay_mutex_);
  // The receiving side of the NCCL link from the previous stage (OpenNcclLink), if any. Shared
  // with the Relay streams using it, so that a newer link replaces it under them.
  absl::Mutex nccl_mutex_;
  std::shared_ptr<link::NcclInboundLink> nccl_inbound_ ABSL_GUARDED_BY(nccl_mutex_);

  prometheus::Histogram* step_seconds_;
  prometheus::Histogram* step_rows_;
  prometheus::Histogram* downstream_seconds_;
  prometheus::Counter* steps_ok_;
  prometheus::Counter* steps_failed_;
  prometheus::Counter* tokens_;
  prometheus::Counter* link_bytes_;
  prometheus::Gauge* sessions_resident_;
  prometheus::Gauge* steps_in_flight_;
  prometheus::Counter* sessions_spilled_;
  prometheus::Counter* sessions_restored_;
  prometheus::Gauge* weight_bytes_per_step_;
  prometheus::Counter* weight_bytes_read_;
  prometheus::Gauge* read_bandwidth_;
  prometheus::Gauge* device_slots_;
  prometheus::Gauge* device_resident_;
  prometheus::Counter* device_uploads_;
  prometheus::Counter* device_fetches_;
  prometheus::Counter* device_evictions_;
  // What UpdateGauges last saw (the counters grow by the difference).
  absl::Mutex gauge_mutex_;
  uint64_t last_link_bytes_ ABSL_GUARDED_BY(gauge_mutex_) = 0;
  uint64_t last_spilled_ ABSL_GUARDED_BY(gauge_mutex_) = 0;
  uint64_t last_restored_ ABSL_GUARDED_BY(gauge_mutex_) = 0;
  model::DeviceModelStats last_device_ ABSL_GUARDED_BY(gauge_mutex_);
};

}  // namespace skein::worker

#endif  // SKEIN_SERVICES_WORKER_WORKER_SERVICE_H_
