// Security of the channels, with real processes: API keys and TLS on the
// public port; the worker channel's shared token and mutual TLS; workers
// that accept group calls only from the coordinator that formed the group.
// A rejected caller gets UNAUTHENTICATED (or PERMISSION_DENIED) and the
// running group is untouched.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "tests/server_process.h"
#include "tests/test_paths.h"
#include "tpserve/v1/inference.grpc.pb.h"
#include "tpserve/worker/v1/worker.grpc.pb.h"

namespace tpserve {
namespace {

namespace wv1 = worker::v1;

std::string Read(const std::string& path) {
  return testing::ReadFileOrEmpty(path);
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// A throwaway CA and one certificate it signed (for localhost and
// 127.0.0.1, usable by servers and clients), made with the openssl tool.
class Certificates {
 public:
  Certificates() : dir_(::testing::TempDir() + "/tpserve_auth_certs") {
    const std::string d = "'" + dir_ + "'";
    const std::string cmd =
        "(rm -rf " + d + " && mkdir -p " + d + " && cd " + d +
        " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key"
        " -out ca.pem -days 2 -subj /CN=tpserve-test-ca"
        " && openssl req -newkey rsa:2048 -nodes -keyout node.key"
        " -out node.csr -subj /CN=localhost"
        " && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n"
        "extendedKeyUsage=serverAuth,clientAuth\\n' > ext.cnf"
        " && openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key"
        " -CAcreateserial -out node.pem -days 2 -extfile ext.cnf)"
        " >/dev/null 2>&1";
    ok_ = std::system(cmd.c_str()) == 0;
  }
  bool ok() const { return ok_; }
  std::string ca() const { return dir_ + "/ca.pem"; }
  std::string cert() const { return dir_ + "/node.pem"; }
  std::string key() const { return dir_ + "/node.key"; }

 private:
  std::string dir_;
  bool ok_ = false;
};

grpc::Status Health(const std::string& address,
                    std::shared_ptr<grpc::ChannelCredentials> creds,
                    const std::string& token) {
  auto stub = wv1::Worker::NewStub(grpc::CreateChannel(address, creds));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  wv1::HealthResponse resp;
  return stub->Health(&ctx, wv1::HealthRequest(), &resp);
}

grpc::Status Generate(v1::Inference::Stub* stub, const std::string& key) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  if (!key.empty()) ctx.AddMetadata("authorization", "Bearer " + key);
  v1::GenerateRequest r;
  r.set_text("The capital of France is");
  r.mutable_sampling()->set_temperature(0);
  r.set_max_tokens(4);
  v1::GenerateResponse resp;
  return stub->Generate(&ctx, r, &resp);
}

TEST(AuthTest, WorkerTokenApiKeysAndGroupOwnership) {
  const std::string dir = ::testing::TempDir();
  Write(dir + "/worker.token", "s3cret-worker-token\n");
  Write(dir + "/api.keys", "# one per line\nkey-one\nkey-two\n");
  testing::ServerProcess server(
      {"--model", testing::DefaultModelPath(), "--tp", "3", "--listen",
       "127.0.0.1:0", "--threads", "1", "--worker-token-file",
       dir + "/worker.token", "--api-keys-file", dir + "/api.keys"});
  ASSERT_FALSE(server.address().empty()) << testing::kModelHint;
  auto stub = v1::Inference::NewStub(grpc::CreateChannel(
      server.address(), grpc::InsecureChannelCredentials()));

  // Public API keys.
  EXPECT_EQ(Generate(stub.get(), "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Generate(stub.get(), "key-three").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(Generate(stub.get(), "key-two").ok());

  // The worker channel: no token or a wrong one is refused.
  const std::string worker = server.WorkerAddress(1);
  const pid_t worker_pid = server.WorkerPid(1);
  ASSERT_FALSE(worker.empty()) << server.output();
  auto insecure = grpc::InsecureChannelCredentials();
  EXPECT_EQ(Health(worker, insecure, "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Health(worker, insecure, "wrong").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(Health(worker, insecure, "s3cret-worker-token").ok());

  // With the token but not the group's key, a caller cannot drive the
  // group: steps and loads are refused.
  {
    auto w = wv1::Worker::NewStub(grpc::CreateChannel(worker, insecure));
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer s3cret-worker-token");
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    auto step = w->Step(&ctx);
    wv1::StepRequest req;
    req.set_step_id(1);
    step->Write(req);
    step->WritesDone();
    wv1::StepResponse resp;
    while (step->Read(&resp)) {
    }
    EXPECT_EQ(step->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    auto w = wv1::Worker::NewStub(grpc::CreateChannel(worker, insecure));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    ctx.AddMetadata("authorization", "Bearer wrong");
    wv1::InitGroupRequest req;
    req.set_rank(0);
    req.set_world_size(1);
    wv1::InitGroupResponse resp;
    EXPECT_EQ(w->InitGroup(&ctx, req, &resp).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  // The group is untouched: the same worker serves the next request.
  EXPECT_TRUE(Generate(stub.get(), "key-one").ok());
  EXPECT_EQ(server.WorkerPid(1), worker_pid);
  EXPECT_EQ(server.Stop(), 0);
}

TEST(AuthTest, MutualTlsOnTheWorkerChannelAndTlsOnThePublicPort) {
  Certificates certs;
  ASSERT_TRUE(certs.ok()) << "openssl could not make test certificates";
  testing::ServerProcess server(
      {"--model", testing::DefaultModelPath(), "--tp", "3", "--listen",
       "127.0.0.1:0", "--threads", "1", "--worker-tls-cert", certs.cert(),
       "--worker-tls-key", certs.key(), "--worker-tls-ca", certs.ca(),
       "--tls-cert", certs.cert(), "--tls-key", certs.key()});
  ASSERT_FALSE(server.address().empty()) << testing::kModelHint;

  // The public port speaks TLS.
  grpc::SslCredentialsOptions public_tls;
  public_tls.pem_root_certs = Read(certs.ca());
  auto stub = v1::Inference::NewStub(
      grpc::CreateChannel(server.address(), grpc::SslCredentials(public_tls)));
  EXPECT_TRUE(Generate(stub.get(), "").ok());

  // A worker refuses a TLS client without a certificate, and a plaintext
  // one cannot talk to it at all.
  const std::string worker = server.WorkerAddress(2);
  const pid_t worker_pid = server.WorkerPid(2);
  ASSERT_FALSE(worker.empty()) << server.output();
  grpc::SslCredentialsOptions no_cert;
  no_cert.pem_root_certs = Read(certs.ca());
  EXPECT_EQ(Health(worker, grpc::SslCredentials(no_cert), "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(Health(worker, grpc::InsecureChannelCredentials(), "").error_code(),
            grpc::StatusCode::OK);
  // With the cluster's certificate (and the token `serve` made, which we do
  // not have) it is still refused.
  grpc::SslCredentialsOptions with_cert = no_cert;
  with_cert.pem_cert_chain = Read(certs.cert());
  with_cert.pem_private_key = Read(certs.key());
  EXPECT_EQ(Health(worker, grpc::SslCredentials(with_cert), "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  EXPECT_TRUE(Generate(stub.get(), "").ok());
  EXPECT_EQ(server.WorkerPid(2), worker_pid);
  EXPECT_EQ(server.Stop(), 0);
}

}  // namespace
}  // namespace tpserve
