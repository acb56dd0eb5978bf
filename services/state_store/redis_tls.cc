#include "services/state_store/redis_tls.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace skein::state_store {
namespace {

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  if (e == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisTlsBridge>> RedisTlsBridge::Connect(
    const std::string& host, int port, const RedisTlsOptions& options, absl::Duration timeout,
    int* local_fd) {
  auto bridge = std::unique_ptr<RedisTlsBridge>(new RedisTlsBridge());
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) {
    return absl::UnavailableError(absl::StrCat("redis TLS: cannot resolve ", host));
  }
  for (addrinfo* a = found; a != nullptr && bridge->tcp_fd_ < 0; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    timeval tv{static_cast<time_t>(absl::ToInt64Seconds(timeout)), 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      bridge->tcp_fd_ = fd;
    } else {
      close(fd);
    }
  }
  freeaddrinfo(found);
  if (bridge->tcp_fd_ < 0) {
    return absl::UnavailableError(absl::StrCat("redis TLS: cannot connect to ", host, ":", port));
  }
  bridge->ctx_ = SSL_CTX_new(TLS_client_method());
  if (bridge->ctx_ == nullptr ||
      SSL_CTX_load_verify_locations(bridge->ctx_, options.ca_file.c_str(), nullptr) != 1) {
    return absl::UnavailableError(
        absl::StrCat("redis TLS: cannot load the CA ", options.ca_file, ": ", OpenSslError()));
  }
  SSL_CTX_set_verify(bridge->ctx_, SSL_VERIFY_PEER, nullptr);
  if (!options.cert_file.empty() &&
      (SSL_CTX_use_certificate_chain_file(bridge->ctx_, options.cert_file.c_str()) != 1 ||
       SSL_CTX_use_PrivateKey_file(bridge->ctx_, options.key_file.c_str(), SSL_FILETYPE_PEM) !=
           1)) {
    return absl::UnavailableError(
        absl::StrCat("redis TLS: cannot load the client certificate: ", OpenSslError()));
  }
  bridge->ssl_ = SSL_new(bridge->ctx_);
  SSL_set_fd(bridge->ssl_, bridge->tcp_fd_);
  // Verify the server by the address we dialled: an IP address or a DNS name.
  in6_addr ip6;
  in_addr ip4;
  X509_VERIFY_PARAM* param = SSL_get0_param(bridge->ssl_);
  if (inet_pton(AF_INET, host.c_str(), &ip4) == 1 || inet_pton(AF_INET6, host.c_str(), &ip6) == 1) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    SSL_set_tlsext_host_name(bridge->ssl_, host.c_str());
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
  }
  if (SSL_connect(bridge->ssl_) != 1) {
    return absl::UnavailableError(
        absl::StrCat("redis TLS: handshake with ", host, ":", port, " failed: ", OpenSslError()));
  }
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) {
    return absl::UnavailableError("redis TLS: socketpair failed");
  }
  bridge->bridge_fd_ = pair[1];
  *local_fd = pair[0];
  RedisTlsBridge* raw = bridge.get();
  bridge->thread_ = std::thread([raw] { raw->Pump(); });
  return bridge;
}

void RedisTlsBridge::Pump() {
  char buf[64 << 10];
  // Redis speaks request then reply, so blocking reads in one thread never wait on each other
  // for long: a reply's TLS record completes once the server has written it.
  while (true) {
    if (SSL_pending(ssl_) == 0) {
      pollfd fds[2] = {{bridge_fd_, POLLIN, 0}, {tcp_fd_, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) break;
      if (fds[0].revents != 0) {
        const ssize_t n = read(bridge_fd_, buf, sizeof(buf));
        if (n <= 0) break;  // hiredis closed its side
        if (SSL_write(ssl_, buf, static_cast<int>(n)) <= 0) break;
        continue;
      }
      if (fds[1].revents == 0) continue;
    }
    const int n = SSL_read(ssl_, buf, sizeof(buf));
    if (n <= 0) {
      const int error = SSL_get_error(ssl_, n);
      if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) continue;
      break;  // the server closed or failed
    }
    if (!WriteAll(bridge_fd_, buf, static_cast<size_t>(n))) break;
  }
  // Either side gone: close ours so that the other sees the end too.
  shutdown(bridge_fd_, SHUT_RDWR);
}

RedisTlsBridge::~RedisTlsBridge() {
  if (tcp_fd_ >= 0) shutdown(tcp_fd_, SHUT_RDWR);  // wakes the pump if the server is quiet
  if (thread_.joinable()) thread_.join();
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  if (bridge_fd_ >= 0) close(bridge_fd_);
  if (tcp_fd_ >= 0) close(tcp_fd_);
}

}  // namespace skein::state_store
