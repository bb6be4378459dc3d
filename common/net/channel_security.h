// Authentication of the internal channel between a coordinator and its
// workers (DESIGN.md: the worker channel is authenticated; shared token or
// mTLS), and helpers for the public API's keys.
//
// - Shared token: every call carries "authorization: Bearer TOKEN"; the
//   receiver compares it in constant time. From a file (--token-file,
//   --worker-token-file) or $TPSERVE_WORKER_TOKEN. `tpserve serve` makes a
//   random one for the workers it spawns.
// - mTLS: both sides present certificates signed by one CA (--tls-ca). The
//   worker asks for a client certificate and verifies it; a call without a
//   verified certificate is UNAUTHENTICATED (the TLS handshake itself
//   accepts it, so the caller gets a status, not a connection error).
// A client interceptor adds the metadata, so every stub on a channel from
// WorkerChannel carries it without per-call code.
#ifndef TPSERVE_COMMON_NET_CHANNEL_SECURITY_H_
#define TPSERVE_COMMON_NET_CHANNEL_SECURITY_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tpserve {

struct ChannelSecurity {
  std::string token;  // Shared secret; "" = none.
  // PEM contents; mTLS when ca is set (cert and key then required).
  std::string tls_cert, tls_key, tls_ca;
  // Name the peer's certificate is checked against, when it is not the
  // host of the address (e.g. "localhost" for 127.0.0.1 in tests).
  std::string tls_server_name;

  bool tls() const { return !tls_ca.empty(); }
};

// Reads the token file (or $TPSERVE_WORKER_TOKEN when `token_file` is
// empty) and the PEM files ("" = not used). InvalidArgument naming the file
// on errors; cert and key must come together with a CA.
absl::StatusOr<ChannelSecurity> LoadChannelSecurity(
    const std::string& token_file, const std::string& cert_file,
    const std::string& key_file, const std::string& ca_file);

// The contents of a PEM, key or token file; InvalidArgument naming it.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path,
                                           const char* what);

// A channel to `address` whose every call carries the token and `metadata`,
// over mTLS when configured.
std::shared_ptr<grpc::Channel> SecureChannel(
    const std::string& address, const ChannelSecurity& security,
    std::vector<std::pair<std::string, std::string>> metadata = {},
    grpc::ChannelArguments args = grpc::ChannelArguments());

// Credentials for a server that the other side reaches with SecureChannel.
std::shared_ptr<grpc::ServerCredentials> SecureServerCredentials(
    const ChannelSecurity& security);

// OK when the call carries the token (if one is set) and, with mTLS, came
// with a verified client certificate; UNAUTHENTICATED otherwise.
grpc::Status Authenticate(const grpc::ServerContextBase& context,
                          const ChannelSecurity& security);

// "authorization: Bearer KEY" against any of `keys` (none = open).
grpc::Status CheckApiKey(const grpc::ServerContextBase& context,
                         const std::vector<std::string>& keys);

// The value of request metadata `key` ("" if absent).
std::string ClientMetadata(const grpc::ServerContextBase& context,
                           absl::string_view key);

// Equal strings, in time that depends only on their lengths.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// 128 random bits as 32 hex digits (tokens, group keys).
std::string RandomHex128();

}  // namespace tpserve

#endif  // TPSERVE_COMMON_NET_CHANNEL_SECURITY_H_
