// The one place where absl::Status (used inside Skein) meets grpc::Status (on the wire).
#ifndef SKEIN_SERVICES_COMMON_STATUS_H_
#define SKEIN_SERVICES_COMMON_STATUS_H_

#include <string_view>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace skein {

// Same code and message. absl and gRPC share the canonical code numbering.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// The canonical upper-case name of a gRPC code ("OK", "NOT_FOUND", ...), as used in metric
// labels; "UNKNOWN_CODE_<n>" for numbers outside the canonical set.
std::string_view GrpcCodeName(grpc::StatusCode code);

}  // namespace skein

#endif  // SKEIN_SERVICES_COMMON_STATUS_H_
