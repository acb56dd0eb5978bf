// Bounds on the resources a gRPC server gives its clients, from ServerOptions.
#ifndef SKEIN_SERVICES_COMMON_SERVER_LIMITS_H_
#define SKEIN_SERVICES_COMMON_SERVER_LIMITS_H_

#include "grpcpp/server_builder.h"
#include "services/common/server_options.h"

namespace skein {

// Sets the thread and memory quota, the per-connection stream limit and the keepalive policy
// of `options` on `builder` (before BuildAndStart). With the thread quota spent, gRPC answers
// a new call RESOURCE_EXHAUSTED itself.
void ApplyLimits(const ServerOptions& options, grpc::ServerBuilder* builder);

}  // namespace skein

#endif  // SKEIN_SERVICES_COMMON_SERVER_LIMITS_H_
