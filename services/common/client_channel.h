// How Skein's own clients reach another Skein service: one channel setup (large messages,
// quick reconnects after a peer restarts) and one way to set a call's time limit.
// Thread-safe (pure functions).
#ifndef SKEIN_SERVICES_COMMON_CLIENT_CHANNEL_H_
#define SKEIN_SERVICES_COMMON_CLIENT_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace skein {

// A channel to `address` (TLS when the process set it up, tls.h; else plaintext) that sends
// and receives messages up to
// `max_message_bytes`, and retries a lost connection after 0.1 s (at most 1 s apart)
// instead of gRPC's default back-off, which grows to minutes. `address` may list several
// interchangeable servers as IPv4 "HOST:PORT,HOST:PORT": calls then go round-robin over the
// ones that are up.
std::shared_ptr<grpc::Channel> CreateClientChannel(const std::string& address,
                                                   int max_message_bytes = 256 << 20);

// Sets the call's deadline `timeout` from now; zero or less leaves it without one.
void SetTimeout(grpc::ClientContext* context, absl::Duration timeout);

}  // namespace skein

#endif  // SKEIN_SERVICES_COMMON_CLIENT_CHANNEL_H_
