#include "common/net/channel_security.h"

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/client_interceptor.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tpserve {
namespace {}  // namespace

absl::StatusOr<std::string> ReadSecretFile(const std::string& path,
                                           const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the ", what, " file ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

// Adds fixed metadata to every call on the channel.
class MetadataInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit MetadataInterceptor(
      const std::vector<std::pair<std::string, std::string>>* metadata)
      : metadata_(metadata) {}
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::
                PRE_SEND_INITIAL_METADATA)) {
      auto* md = methods->GetSendInitialMetadata();
      for (const auto& [k, v] : *metadata_) md->emplace(k, v);
    }
    methods->Proceed();
  }

 private:
  const std::vector<std::pair<std::string, std::string>>* metadata_;
};

class MetadataInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit MetadataInterceptorFactory(
      std::vector<std::pair<std::string, std::string>> metadata)
      : metadata_(std::move(metadata)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new MetadataInterceptor(&metadata_);
  }

 private:
  // Lives as long as the channel (which owns the factory).
  const std::vector<std::pair<std::string, std::string>> metadata_;
};

}  // namespace

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

std::string RandomHex128() {
  std::random_device rd;
  uint64_t hi = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  uint64_t lo = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return absl::StrFormat("%016x%016x", hi, lo);
}

absl::StatusOr<ChannelSecurity> LoadChannelSecurity(
    const std::string& token_file, const std::string& cert_file,
    const std::string& key_file, const std::string& ca_file) {
  ChannelSecurity s;
  if (!token_file.empty()) {
    absl::StatusOr<std::string> t = ReadSecretFile(token_file, "token");
    if (!t.ok()) return t.status();
    s.token = std::string(absl::StripAsciiWhitespace(*t));
    if (s.token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the token file ", token_file, " is empty"));
    }
  } else if (const char* env = std::getenv("TPSERVE_WORKER_TOKEN")) {
    s.token = std::string(absl::StripAsciiWhitespace(env));
  }
  const bool any_tls =
      !cert_file.empty() || !key_file.empty() || !ca_file.empty();
  if (any_tls) {
    if (cert_file.empty() || key_file.empty() || ca_file.empty()) {
      return absl::InvalidArgumentError(
          "mutual TLS needs a certificate, its key and the CA (--tls-cert, "
          "--tls-key, --tls-ca)");
    }
    absl::StatusOr<std::string> cert = ReadSecretFile(cert_file, "certificate");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadSecretFile(key_file, "key");
    if (!key.ok()) return key.status();
    absl::StatusOr<std::string> ca = ReadSecretFile(ca_file, "CA");
    if (!ca.ok()) return ca.status();
    s.tls_cert = *std::move(cert);
    s.tls_key = *std::move(key);
    s.tls_ca = *std::move(ca);
  }
  return s;
}

std::shared_ptr<grpc::Channel> SecureChannel(
    const std::string& address, const ChannelSecurity& security,
    std::vector<std::pair<std::string, std::string>> metadata,
    grpc::ChannelArguments args) {
  if (!security.token.empty()) {
    metadata.emplace_back("authorization",
                          absl::StrCat("Bearer ", security.token));
  }
  std::shared_ptr<grpc::ChannelCredentials> creds =
      grpc::InsecureChannelCredentials();
  if (security.tls()) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = security.tls_ca;
    o.pem_private_key = security.tls_key;
    o.pem_cert_chain = security.tls_cert;
    creds = grpc::SslCredentials(o);
    if (!security.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(security.tls_server_name);
    }
  }
  std::vector<
      std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
      interceptors;
  if (!metadata.empty()) {
    interceptors.push_back(
        std::make_unique<MetadataInterceptorFactory>(std::move(metadata)));
  }
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address, creds, args, std::move(interceptors));
}

std::shared_ptr<grpc::ServerCredentials> SecureServerCredentials(
    const ChannelSecurity& security) {
  if (!security.tls()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions o(
      GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  o.pem_root_certs = security.tls_ca;
  o.pem_key_cert_pairs.push_back({security.tls_key, security.tls_cert});
  return grpc::SslServerCredentials(o);
}

std::string ClientMetadata(const grpc::ServerContextBase& context,
                           absl::string_view key) {
  const auto& md = context.client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

grpc::Status Authenticate(const grpc::ServerContextBase& context,
                          const ChannelSecurity& security) {
  if (security.tls()) {
    std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
    if (auth == nullptr || !auth->IsPeerAuthenticated()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "a client certificate signed by the cluster CA is "
                          "required");
    }
  }
  if (!security.token.empty()) {
    const std::string got = ClientMetadata(context, "authorization");
    if (!ConstantTimeEquals(got, absl::StrCat("Bearer ", security.token))) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "missing or wrong worker token");
    }
  }
  return grpc::Status::OK;
}

grpc::Status CheckApiKey(const grpc::ServerContextBase& context,
                         const std::vector<std::string>& keys) {
  if (keys.empty()) return grpc::Status::OK;
  const std::string got = ClientMetadata(context, "authorization");
  bool ok = false;
  // Compare against every key (no early exit) so timing does not tell
  // which key was close.
  for (const std::string& k : keys) {
    ok |= ConstantTimeEquals(got, absl::StrCat("Bearer ", k));
  }
  if (!ok) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing or unknown API key: send the metadata "
                        "'authorization: Bearer KEY'");
  }
  return grpc::Status::OK;
}

}  // namespace tpserve
