// Collectives between the tensor-parallel ranks of one worker group.
// Implementations: Gloo over TCP (CPU ranks, and GPU ranks staged through
// host memory), NCCL (GPU ranks). Every rank calls the same collectives in
// the same order; a failed or timed-out collective breaks the group (the
// coordinator rebuilds it), so errors are returned, never retried here.
//
// Memory: AllReduceSum's data is in the memory of the rank's backend (host
// for CPU ranks, device for GPU ranks: NcclCommunicator works on it in
// place, HostStagedCommunicator copies it through host memory for Gloo);
// AllGatherV's and Broadcast's buffers are host memory (logits and sampled
// tokens), which every implementation accepts.
#ifndef TPSERVE_WORKER_COMMUNICATOR_H_
#define TPSERVE_WORKER_COMMUNICATOR_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace tpserve {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // In-place element-wise sum of `count` floats across all ranks.
  virtual absl::Status AllReduceSum(float* data, size_t count) = 0;

  // Rank r contributes counts[r] floats from `in`; every rank receives the
  // concatenation in rank order into `out` (sum of counts floats).
  virtual absl::Status AllGatherV(const float* in,
                                  absl::Span<const size_t> counts,
                                  float* out) = 0;

  // Copies `count` bytes from rank `root` to every rank.
  virtual absl::Status Broadcast(void* data, size_t count, int root) = 0;
};

}  // namespace tpserve

#endif  // TPSERVE_WORKER_COMMUNICATOR_H_
