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

absl::StatusOr<v1::SessionStateInfo> WorkerClient::LoadState(const v1::LoadStateRequest& request,
                                                             absl::Duration timeout) {
  grpc::ClientContext context;
  SetTimeout(&context, timeout);
  v1::SessionStateInfo info;
  grpc::Status s = stub_->LoadState(&context, request, &info);
  if (!s.ok()) return FromGrpcStatus(s);
  return info;
}

absl::StatusOr<v1::SaveStateResponse> WorkerClient::SaveState(const v1::SaveStateRequest& request,
                                                              absl::Duration timeout) {
  grpc::ClientContext context;
  SetTimeout(&context, timeout);
  v1::SaveStateResponse response;
  grpc::Status s = stub_->SaveState(&context, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response;
}

absl::StatusOr<bool> WorkerClient::DropState(const std::string& session_id,
                                             absl::Duration timeout) {
  grpc::ClientContext context;
  SetTimeout(&context, timeout);
  v1::DropStateRequest request;
  request.set_session_id(session_id);
  v1::DropStateResponse response;
  grpc::Status s = stub_->DropState(&context, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response.existed();
}

}  // namespace skein::router
