// The coordinator's tpserve.worker.v1.Rendezvous service: the key-value
// store through which the ranks of a worker group exchange their collective
// addresses (Gloo's Store; worker/grpc_store.h is the client), so no shared
// filesystem is needed (DESIGN.md).
//
// An in-memory map, bounded (key count, key and value sizes, total bytes,
// waiting calls: RESOURCE_EXHAUSTED past them). Get waits for missing keys
// without holding a gRPC thread: it uses the callback API, and a waiting
// call is completed by the Set that supplies its last key, by a timer
// thread at its deadline (DEADLINE_EXCEEDED naming the missing keys), or by
// the client's cancellation, whichever comes first. Waits are capped at
// RendezvousLimits::max_wait whatever the client asks.
//
// Keys of one worker-group generation share a prefix (the group_id the
// coordinator sends in InitGroup); Clear(prefix) drops a dead group's keys.
// Thread-safe.
#ifndef TPSERVE_COORDINATOR_RENDEZVOUS_SERVICE_H_
#define TPSERVE_COORDINATOR_RENDEZVOUS_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "tpserve/worker/v1/worker.grpc.pb.h"

namespace tpserve {

struct RendezvousLimits {
  size_t max_keys = 65536;
  size_t max_key_bytes = 1024;
  size_t max_value_bytes = size_t{1} << 20;
  size_t max_total_bytes = size_t{64} << 20;  // Keys plus values.
  size_t max_keys_per_get = 1024;
  size_t max_waiting_gets = 4096;
  std::chrono::milliseconds max_wait = std::chrono::minutes(5);
  // Workers must present "authorization: Bearer TOKEN" ("" = open): the
  // store decides where ranks connect, so only workers may write it.
  std::string token;
};

class RendezvousService final : public worker::v1::Rendezvous::CallbackService {
 public:
  explicit RendezvousService(RendezvousLimits limits = RendezvousLimits());
  // The gRPC server must be shut down first (as for every service); any Get
  // still waiting then is finished with UNAVAILABLE.
  ~RendezvousService() override;
  RendezvousService(const RendezvousService&) = delete;
  RendezvousService& operator=(const RendezvousService&) = delete;

  // Stores (or replaces) a key; completes the Gets it was the last key of.
  grpc::ServerUnaryReactor* Set(
      grpc::CallbackServerContext* context,
      const worker::v1::RendezvousSetRequest* request,
      worker::v1::RendezvousSetResponse* response) override;

  // Returns the values of all keys, in order, once every key exists;
  // timeout_ms = 0 only looks (no wait).
  grpc::ServerUnaryReactor* Get(
      grpc::CallbackServerContext* context,
      const worker::v1::RendezvousGetRequest* request,
      worker::v1::RendezvousGetResponse* response) override;

  // Drops every key that starts with `prefix` (a dead group's generation).
  // Waiting Gets are left to their deadlines.
  void Clear(const std::string& prefix);

  // Keys stored now (tests, metrics).
  size_t key_count() const;

  // Until at least `n` Gets are waiting for keys, or `timeout`; true if
  // they are. A test's sync point: a Get is known to wait before the Set
  // that completes it.
  bool WaitForWaitingGets(size_t n, std::chrono::milliseconds timeout) const;

 private:
  class GetReactor;
  using Clock = std::chrono::steady_clock;

  // Called by a GetReactor's OnCancel: finishes it unless already finished.
  void Cancel(GetReactor* reactor);
  // True when every key of `reactor` exists; then fills its response.
  // Requires mu_.
  bool TryFill(GetReactor* reactor);
  // The missing keys of `reactor`, for the timeout message. Requires mu_.
  std::string MissingKeys(const GetReactor& reactor) const;
  void TimerLoop();
  grpc::Status CheckToken(const grpc::ServerContextBase& context) const;

  const RendezvousLimits limits_;

  mutable std::mutex mu_;
  // Also told when a Get starts waiting (WaitForWaitingGets).
  mutable std::condition_variable timer_cv_;
  absl::flat_hash_map<std::string, std::string> values_;  // Guarded by mu_.
  size_t total_bytes_ = 0;                                // Guarded by mu_.
  // Gets waiting for keys. Invariant: a reactor is finished exactly once,
  // by whoever removes it from this set (Set, the timer, Cancel or the
  // destructor), and never touched after its Finish.
  absl::flat_hash_set<GetReactor*> waiting_;  // Guarded by mu_.
  bool stop_ = false;                         // Guarded by mu_.
  std::thread timer_;  // Last: starts after everything above exists.
};

}  // namespace tpserve

#endif  // TPSERVE_COORDINATOR_RENDEZVOUS_SERVICE_H_
