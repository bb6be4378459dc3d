// Collectives between tensor-parallel CPU ranks over Gloo's TCP transport.
//
// Rendezvous goes through a gloo::rendezvous::Store the caller owns (a
// HashStore for threads of one process, a FileStore for processes of one
// machine, later a store the coordinator serves over gRPC). Every key is
// prefixed with `prefix`, so a broken group can be rebuilt on the same store
// under a new generation ("tp/gen7/") without reading stale addresses.
//
// Speed: building a Gloo algorithm or options object costs a handshake with
// the peers (milliseconds), running one costs ~0.15 ms for 8K floats on
// loopback. So every collective runs over persistent, registered buffers and
// objects that are built on first use and reused; callers' data is copied in
// and out (a memcpy is far cheaper than a rebuild).
//
// Failure model (design.md): a dead or hung peer surfaces as an error status
// within `GlooOptions::timeout`, never a hang. The first failed collective
// marks the communicator broken; later calls return FailedPrecondition until
// the coordinator rebuilds the group. Nothing throws out of this class.
//
// Not thread-safe across calls by design of the protocol (every rank issues
// the same collectives in the same order); a mutex still serializes calls so
// misuse cannot corrupt the shared buffers.
#ifndef TPSERVE_WORKER_GLOO_COMMUNICATOR_H_
#define TPSERVE_WORKER_GLOO_COMMUNICATOR_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "gloo/rendezvous/store.h"
#include "worker/communicator.h"

namespace tpserve {

struct GlooOptions {
  // Address this rank listens on and advertises to its peers. The loopback
  // default suits groups on one machine; multi-host groups pass a routable
  // hostname or address.
  std::string hostname = "127.0.0.1";
  // Network interface to bind instead of `hostname` ("eth0"); wins when set.
  std::string interface;
  // Bound on rendezvous (waiting for every rank's address and connecting)
  // and on every collective.
  std::chrono::milliseconds timeout{30000};
};

class GlooCommunicator final : public Communicator {
 public:
  // Joins the group as `rank` of `world` (blocks until every rank has joined
  // or `options.timeout` passes). `store` is used only during Create.
  // Errors: InvalidArgument (bad rank/world/address), DeadlineExceeded (a
  // rank did not show up in time), Unavailable (connection failures).
  static absl::StatusOr<std::unique_ptr<GlooCommunicator>> Create(
      gloo::rendezvous::Store& store, const std::string& prefix, int rank,
      int world, const GlooOptions& options);

  ~GlooCommunicator() override;
  GlooCommunicator(const GlooCommunicator&) = delete;
  GlooCommunicator& operator=(const GlooCommunicator&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  absl::Status AllReduceSum(float* data, size_t count) override;
  absl::Status AllGatherV(const float* in, absl::Span<const size_t> counts,
                          float* out) override;
  absl::Status Broadcast(void* data, size_t count, int root) override;

  // True once a collective has failed; the group must be rebuilt.
  bool broken() const;

 private:
  struct State;  // Gloo objects; kept out of the header.

  GlooCommunicator(int rank, int world, std::chrono::milliseconds timeout,
                   std::unique_ptr<State> state);

  const int rank_;
  const int world_;
  const std::chrono::milliseconds timeout_;
  std::unique_ptr<State> state_;  // Null when world_ == 1.
};

}  // namespace tpserve

#endif  // TPSERVE_WORKER_GLOO_COMMUNICATOR_H_
