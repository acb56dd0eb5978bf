// A typed client of one pipeline stage (skein.v1.WorkerService): batched steps (stage 0),
// stage descriptions, and a session's state slice to and from the state store, with
// absl::Status errors. Thread-safe (gRPC stubs are).
#ifndef SKEIN_SERVICES_ROUTER_WORKER_CLIENT_H_
#define SKEIN_SERVICES_ROUTER_WORKER_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "skein/v1/worker.grpc.pb.h"

namespace skein::router {

class WorkerClient {
 public:
  explicit WorkerClient(std::string address);

  const std::string& address() const { return address_; }

  // Runs one step through the pipeline. Errors: the worker's (see worker.proto);
  // UNAVAILABLE when the stage cannot be reached; DEADLINE_EXCEEDED after `timeout`.
  absl::StatusOr<v1::StepResult> Step(const v1::StepRequest& request, absl::Duration timeout);
  // Describes the stage. UNAVAILABLE while it loads or cannot be reached.
  absl::StatusOr<v1::StageInfo> Info(absl::Duration timeout);
  // See LoadState, SaveState and DropState in worker.proto.
  absl::StatusOr<v1::SessionStateInfo> LoadState(const v1::LoadStateRequest& request,
                                                 absl::Duration timeout);
  absl::StatusOr<v1::SaveStateResponse> SaveState(const v1::SaveStateRequest& request,
                                                  absl::Duration timeout);
  absl::StatusOr<bool> DropState(const std::string& session_id, absl::Duration timeout);

 private:
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
};

}  // namespace skein::router

#endif  // SKEIN_SERVICES_ROUTER_WORKER_CLIENT_H_
