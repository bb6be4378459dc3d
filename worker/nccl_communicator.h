// All-reduce between tensor-parallel ranks on GPUs through NCCL.
//
// Failure model (DESIGN.md): a rank that dies or hangs must not hang the
// others forever, so the communicator is created non-blocking, every
// collective is waited on with a deadline, and on failure the communicator
// is aborted (ncclCommAbort), never destroyed (ncclCommDestroy can block).
#ifndef TPSERVE_WORKER_NCCL_COMMUNICATOR_H_
#define TPSERVE_WORKER_NCCL_COMMUNICATOR_H_

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tpserve {

class NcclCommunicator {
 public:
  // The opaque rendezvous blob rank 0 creates and the coordinator hands to
  // every rank.
  static absl::StatusOr<std::string> NewUniqueId();

  // Joins the group as `rank` of `world` on the current CUDA device.
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(
      const std::string& unique_id, int rank, int world,
      std::chrono::milliseconds timeout);

  ~NcclCommunicator();
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  // In-place sum of `count` floats across ranks on `stream`; waits for
  // completion (bounded by the timeout) and aborts the group on failure.
  absl::Status AllReduceSum(float* data, size_t count, cudaStream_t stream);

  static int Version();

 private:
  NcclCommunicator(ncclComm_t comm, std::chrono::milliseconds timeout)
      : comm_(comm), timeout_(timeout) {}
  // Polls the communicator's async error until `done()` or the deadline.
  template <typename Done>
  absl::Status WaitFor(Done done, const char* what);
  void Abort();

  ncclComm_t comm_ = nullptr;
  std::chrono::milliseconds timeout_;
  bool aborted_ = false;
};

}  // namespace tpserve

#endif  // TPSERVE_WORKER_NCCL_COMMUNICATOR_H_
