#include "services/router/worker_client.h"

#include <utility>

#include "services/common/status.h"

namespace skein::router {
namespace {

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
}

}  // namespace

WorkerClient::WorkerClient(std::string address) : address_(std::move(address)) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  // Reconnect quickly after a worker restarts (the default backoff grows to minutes).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  channel_ = grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
  stub_ = v1::WorkerService::NewStub(channel_);
}

absl::StatusOr<v1::StepResult> WorkerClient::Step(const v1::StepRequest& request,
                                                  absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(context, timeout);
  v1::StepResult result;
  grpc::Status s = stub_->Step(&context, request, &result);
  if (!s.ok()) return FromGrpcStatus(s);
  return result;
}

absl::StatusOr<v1::StageInfo> WorkerClient::Info(absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(context, timeout);
  v1::StageInfo info;
  grpc::Status s = stub_->GetStageInfo(&context, v1::GetStageInfoRequest(), &info);
  if (!s.ok()) return FromGrpcStatus(s);
  return info;
}

}  // namespace skein::router
