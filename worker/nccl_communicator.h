// Collectives between tensor-parallel ranks on GPUs through NCCL.
//
// Failure model (DESIGN.md): a rank that dies or hangs must not hang the
// others forever, so the communicator is created non-blocking, every
// collective is waited on with a deadline, and on failure the communicator
// is aborted (ncclCommAbort), never destroyed (ncclCommDestroy can block).
// After an abort every call returns FailedPrecondition: the group must be
// rebuilt (a new unique id, new communicators).
//
// Memory (the Communicator contract, worker/communicator.h): AllReduceSum
// works on device memory, in place, on the communicator's stream (the
// backend's, so it is ordered after the kernels that produced the data).
// AllGatherV and Broadcast accept host or device buffers: host buffers (what
// LlamaShard and the generator pass) are staged through device scratch.
#ifndef TPSERVE_WORKER_NCCL_COMMUNICATOR_H_
#define TPSERVE_WORKER_NCCL_COMMUNICATOR_H_

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/communicator.h"

namespace tpserve {

struct NcclOptions {
  // Bound on communicator creation and on every wait for a collective.
  std::chrono::milliseconds timeout{30000};
  // CUDA device of this rank (made current for creation and every call).
  int device = 0;
  // Stream the collectives run on; null = the legacy default stream. Pass
  // the backend's (CudaBackendStream) so collectives follow its kernels.
  cudaStream_t stream = nullptr;
  // true: every collective waits (bounded by `timeout`) until it finished,
  // so a hang surfaces at the call that hangs. false: AllReduceSum only
  // enqueues, and the caller must call Wait() before it relies on the
  // result from the host (e.g. once per step); this keeps a decode step
  // free of host synchronization (CUDA graphs, docs/cuda.md).
  bool wait_each_collective = true;
};

class NcclCommunicator final : public Communicator {
 public:
  // The opaque rendezvous blob rank 0 creates and every rank must receive
  // (from the coordinator, or through a store: nccl_rendezvous.h).
  static absl::StatusOr<std::string> NewUniqueId();

  // Joins the group as `rank` of `world` on `options.device`. Blocks until
  // every rank has joined or options.timeout passes (then aborts).
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(
      const std::string& unique_id, int rank, int world,
      const NcclOptions& options);
  // The same on the current device and the default stream (tests).
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(
      const std::string& unique_id, int rank, int world,
      std::chrono::milliseconds timeout);

  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  // In-place sum of `count` floats of device memory across ranks.
  absl::Status AllReduceSum(float* data, size_t count) override;
  // The same on another stream (waits for completion, bounded).
  absl::Status AllReduceSum(float* data, size_t count, cudaStream_t stream);
  absl::Status AllGatherV(const float* in, absl::Span<const size_t> counts,
                          float* out) override;
  absl::Status Broadcast(void* data, size_t count, int root) override;

  // Waits (bounded by the timeout) until everything enqueued on the
  // communicator's stream has finished; aborts the group on error or hang.
  absl::Status Wait();

  void set_stream(cudaStream_t stream) { options_.stream = stream; }
  bool aborted() const { return aborted_; }
  static int Version();

 private:
  NcclCommunicator(ncclComm_t comm, int rank, int world,
                   const NcclOptions& options)
      : comm_(comm), rank_(rank), world_(world), options_(options) {}
  // Polls the communicator's async error until `done()` or the deadline.
  template <typename Done>
  absl::Status WaitFor(Done done, const char* what);
  absl::Status WaitStream(cudaStream_t stream, const char* what);
  absl::Status Usable();
  absl::Status Staging(size_t bytes);
  void Abort();

  ncclComm_t comm_ = nullptr;
  int rank_ = 0, world_ = 1;
  NcclOptions options_;
  bool aborted_ = false;
  void* staging_ = nullptr;  // Device scratch for host buffers.
  size_t staging_bytes_ = 0;
};

}  // namespace tpserve

#endif  // TPSERVE_WORKER_NCCL_COMMUNICATOR_H_
