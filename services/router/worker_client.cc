#include "services/router/worker_client.h"

#include <utility>

#include "services/common/client_channel.h"
#include "services/common/status.h"

namespace skein::router {
WorkerClient::WorkerClient(std::string address) : address_(std::move(address)) {
  channel_ = CreateClientChannel(address_);
  stub_ = v1::WorkerService::NewStub(channel_);
}

absl::StatusOr<v1::StepResult> WorkerClient::Step(const v1::StepRequest& request,
                                                  absl::Duration timeout) {
  grpc::ClientContext context;
  SetTimeout(&context, timeout);
  v1::StepResult result;
  grpc::Status s = stub_->Step(&context, request, &result);
  if (!s.ok()) return FromGrpcStatus(s);
  return result;
}

absl::StatusOr<v1::StageInfo> WorkerClient::Info(absl::Duration timeout) {
  grpc::ClientContext context;
  SetTimeout(&context, timeout);
  v1::StageInfo info;
  grpc::Status s = stub_->GetStageInfo(&context, v1::GetStageInfoRequest(), &info);
  if (!s.ok()) return FromGrpcStatus(s);
  return info;
}

}  // namespace skein::router
