// What every build of the NCCL link shares: the check of an OpenNcclLink request.
#include "absl/strings/str_cat.h"
#include "services/worker/link/nccl_stage_link.h"

namespace skein::link {

absl::Status CheckOpenNcclLinkRequest(const v1::OpenNcclLinkRequest& request, uint32_t width) {
  if (request.unique_id().size() != kNcclIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("unique_id must be ", kNcclIdBytes,
                                                   " bytes, not ", request.unique_id().size()));
  }
  if (request.world() != 2 || request.rank() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("a stage link is a communicator of world 2 where the receiving stage is rank "
                     "1; asked for rank ",
                     request.rank(), " of ", request.world()));
  }
  if (request.link_id() == 0) return absl::InvalidArgumentError("link_id must not be 0");
  if (request.dtype() != v1::ACTIVATION_DTYPE_UNSPECIFIED &&
      request.dtype() != v1::ACTIVATION_DTYPE_FP32 &&
      request.dtype() != v1::ACTIVATION_DTYPE_BF16) {
    return absl::InvalidArgumentError(absl::StrCat("unknown activation dtype ", request.dtype()));
  }
  if (request.width() != width) {
    return absl::InvalidArgumentError(absl::StrCat("rows of width ", request.width(),
                                                   " do not fit this stage (n_embd ", width, ")"));
  }
  return absl::OkStatus();
}

}  // namespace skein::link
