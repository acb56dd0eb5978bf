// TLS to Redis for a hiredis that has none (Debian 12 ships hiredis 0.14, before hiredis_ssl):
// a TLS connection made with OpenSSL, bridged to a local socket pair that hiredis reads and
// writes as if it were the server (redisConnectFd). One thread per connection copies bytes
// both ways; it ends when either side closes. The server is verified against the CA (and by
// name or IP); a client certificate is presented when given.
#ifndef SKEIN_SERVICES_STATE_STORE_REDIS_TLS_H_
#define SKEIN_SERVICES_STATE_STORE_REDIS_TLS_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace skein::state_store {

struct RedisTlsOptions {
  std::string ca_file;    // PEM CA that signed the server's certificate (required)
  std::string cert_file;  // client certificate (optional, for servers that ask for one)
  std::string key_file;
};

class RedisTlsBridge {
 public:
  // Connects to host:port over TLS. On success `*local_fd` is the socket hiredis should use
  // (its ownership passes to the caller, e.g. to redisConnectFd). Errors: UNAVAILABLE
  // (connect or handshake failed, certificate not trusted).
  static absl::StatusOr<std::unique_ptr<RedisTlsBridge>> Connect(const std::string& host, int port,
                                                                 const RedisTlsOptions& options,
                                                                 absl::Duration timeout,
                                                                 int* local_fd);
  // Waits for the copying thread, which ends once the caller closed its side.
  ~RedisTlsBridge();

 private:
  RedisTlsBridge() = default;
  void Pump();

  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int tcp_fd_ = -1;
  int bridge_fd_ = -1;  // our end of the pair
  std::thread thread_;
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_REDIS_TLS_H_
