// A typed client of one pipeline replica's stage 0 (skein.v1.WorkerService): batched steps
// and stage descriptions, with absl::Status errors. Thread-safe (gRPC stubs are).
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

 private:
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
};

}  // namespace skein::router

#endif  // SKEIN_SERVICES_ROUTER_WORKER_CLIENT_H_
