#include "services/common/tls.h"

#include <fstream>
#include <sstream>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace skein {
namespace {

absl::Mutex& Mutex() {
  static auto* mu = new absl::Mutex();
  return *mu;
}

// The client TLS material SetClientTls installed.
TlsPem& Global() ABSL_EXCLUSIVE_LOCKS_REQUIRED(Mutex()) {
  static auto* pem = new TlsPem();
  return *pem;
}

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  if (path.empty()) return std::string();
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(what, ": cannot read ", path));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

absl::StatusOr<TlsPem> LoadTlsPem(const std::string& cert_file, const std::string& key_file,
                                  const std::string& ca_file) {
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!ca_file.empty() && cert_file.empty()) {
    return absl::InvalidArgumentError("--tls-ca needs --tls-cert and --tls-key");
  }
  TlsPem pem;
  absl::StatusOr<std::string> cert = ReadFile(cert_file, "--tls-cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile(key_file, "--tls-key");
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> ca = ReadFile(ca_file, "--tls-ca");
  if (!ca.ok()) return ca.status();
  pem.cert = *std::move(cert);
  pem.key = *std::move(key);
  pem.ca = *std::move(ca);
  return pem;
}

void SetClientTls(const TlsPem& pem) {
  absl::MutexLock lock(&Mutex());
  Global() = pem;
}

TlsPem ClientTls() {
  absl::MutexLock lock(&Mutex());
  return Global();
}

std::shared_ptr<grpc::ChannelCredentials> ClientCredentials() {
  const TlsPem pem = ClientTls();
  if (!pem.enabled()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = pem.ca;
  options.pem_private_key = pem.key;
  options.pem_cert_chain = pem.cert;
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TlsPem& pem,
                                                           bool client_certificate_optional) {
  if (!pem.enabled()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      pem.ca.empty()                ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
      : client_certificate_optional ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY
                                    : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = pem.ca;
  options.pem_key_cert_pairs.push_back({pem.key, pem.cert});
  return grpc::SslServerCredentials(options);
}

}  // namespace skein
