#include "services/common/server_limits.h"

#include <cmath>

#include "grpc/grpc.h"
#include "grpcpp/resource_quota.h"

namespace skein {
namespace {

int Millis(double seconds) { return static_cast<int>(std::lround(seconds * 1000)); }

}  // namespace

void ApplyLimits(const ServerOptions& options, grpc::ServerBuilder* builder) {
  grpc::ResourceQuota quota(options.service_name.empty() ? "skein" : options.service_name);
  quota.SetMaxThreads(options.max_rpc_threads);
  if (options.max_grpc_memory_bytes > 0) {
    quota.Resize(static_cast<size_t>(options.max_grpc_memory_bytes));
  }
  builder->SetResourceQuota(quota);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  if (options.keepalive_seconds > 0) {
    builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, Millis(options.keepalive_seconds));
    builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                                Millis(options.keepalive_timeout_seconds));
  }
  // Clients (our own channels included) may ping this often, even with no call open.
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                              Millis(options.min_client_ping_seconds));
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  if (options.max_connection_idle_seconds > 0) {
    builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                                Millis(options.max_connection_idle_seconds));
  }
}

}  // namespace skein
