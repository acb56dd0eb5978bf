#include "services/common/client_channel.h"

#include <chrono>

#include "services/common/tls.h"

namespace skein {

std::shared_ptr<grpc::Channel> CreateClientChannel(const std::string& address,
                                                   int max_message_bytes) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message_bytes);
  args.SetMaxSendMessageSize(max_message_bytes);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  if (address.find(',') == std::string::npos) {
    return grpc::CreateCustomChannel(address, ClientCredentials(), args);
  }
  // Several interchangeable servers (e.g. state stores sharing one Redis Cluster): calls are
  // spread over the ones that answer, and a server that goes away is skipped.
  args.SetLoadBalancingPolicyName("round_robin");
  return grpc::CreateCustomChannel("ipv4:" + address, ClientCredentials(), args);
}

void SetTimeout(grpc::ClientContext* context, absl::Duration timeout) {
  if (timeout > absl::ZeroDuration()) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::microseconds(absl::ToInt64Microseconds(timeout)));
  }
}

}  // namespace skein
