// A Gloo rendezvous store backed by the coordinator's
// tpserve.worker.v1.Rendezvous service, so the ranks of a worker group find
// each other without a shared filesystem (DESIGN.md: the coordinator hands
// out the rendezvous).
//
// Gloo's Store interface reports failure by throwing; this one throws
// gloo::IoException (as Gloo's own HashStore and FileStore do) with the
// service's status in the message, and "timed out" in it for deadlines, so
// GlooCommunicator::Create turns a missing rank into DeadlineExceeded and
// anything else into Unavailable. Never waits without bound: Gloo's "no
// timeout" (zero) means this store's default timeout.
//
// Thread-safe (gRPC stubs are); Gloo calls it from one thread anyway.
#ifndef TPSERVE_WORKER_GRPC_STORE_H_
#define TPSERVE_WORKER_GRPC_STORE_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gloo/rendezvous/store.h"
#include "tpserve/worker/v1/worker.grpc.pb.h"

namespace tpserve {

class GrpcStore final : public gloo::rendezvous::Store {
 public:
  // `channel` reaches the Rendezvous service; `timeout` bounds get() and
  // the timeout-less wait() (and every set()).
  GrpcStore(std::shared_ptr<grpc::ChannelInterface> channel,
            std::chrono::milliseconds timeout);
  ~GrpcStore() override = default;

  void set(const std::string& key, const std::vector<char>& data) override;
  // Waits (up to the default timeout) for `key`, then returns its value.
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override;

 private:
  // Fetches every key, waiting up to `timeout` for the missing ones.
  std::vector<std::string> GetAll(const std::vector<std::string>& keys,
                                  std::chrono::milliseconds timeout);

  std::unique_ptr<worker::v1::Rendezvous::Stub> stub_;
  const std::chrono::milliseconds timeout_;
};

}  // namespace tpserve

#endif  // TPSERVE_WORKER_GRPC_STORE_H_
