// The NCCL stage link in builds without NCCL: every way in says so.
#include "services/worker/link/nccl_stage_link.h"

namespace skein::link {
namespace {

absl::Status NoNccl() {
  return absl::FailedPreconditionError(
      "this build has no NCCL (no CUDA toolkit with nccl.h at build time): use --link grpc");
}

}  // namespace

bool NcclLinkBuilt() { return false; }

int NcclUsableDevices(std::string* why) {
  if (why != nullptr) *why = std::string(NoNccl().message());
  return 0;
}

absl::StatusOr<std::unique_ptr<StageLink>> OpenNcclStageLink(const NcclStageLinkOptions&) {
  return NoNccl();
}

absl::StatusOr<std::unique_ptr<NcclInboundLink>> AcceptNcclLink(const v1::OpenNcclLinkRequest&,
                                                                int) {
  return NoNccl();
}

}  // namespace skein::link
