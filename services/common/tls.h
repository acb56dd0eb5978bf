// TLS for Skein's own gRPC calls between services: the PEM material a process was started
// with (--tls-cert, --tls-key, --tls-ca), kept once per process so that every client channel
// it opens (client_channel.h) speaks TLS, presents its certificate (mutual TLS) and verifies
// the peer against the CA. Without it channels are plaintext. Thread-safe after SetClientTls.
#ifndef SKEIN_SERVICES_COMMON_TLS_H_
#define SKEIN_SERVICES_COMMON_TLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace skein {

struct TlsPem {
  std::string cert;  // this process's certificate chain
  std::string key;   // its private key
  std::string ca;    // the CA that signs every Skein peer
  bool enabled() const { return !cert.empty() && !key.empty(); }
};

// Reads the PEM files; all empty means "no TLS". INVALID_ARGUMENT when only some are given
// or a file cannot be read.
absl::StatusOr<TlsPem> LoadTlsPem(const std::string& cert_file, const std::string& key_file,
                                  const std::string& ca_file);

// Makes every later CreateClientChannel use `pem` (call once, at start-up).
void SetClientTls(const TlsPem& pem);
// What SetClientTls installed, as a copy (a reference would outlive the lock that guards it).
TlsPem ClientTls();

// Credentials for a client channel: TLS with this process's certificate and CA, or insecure.
std::shared_ptr<grpc::ChannelCredentials> ClientCredentials();

// Credentials for a server: TLS with `pem` (peers must present a certificate the CA signed
// unless `client_certificate_optional`), or insecure when `pem` is not enabled.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TlsPem& pem,
                                                           bool client_certificate_optional);

}  // namespace skein

#endif  // SKEIN_SERVICES_COMMON_TLS_H_
