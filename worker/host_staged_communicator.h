// A Communicator for ranks whose activations live in device memory but
// whose collectives run on the host (Gloo over TCP): how TP=2 runs on one
// GPU, or GPU ranks without NCCL. AllReduceSum copies the backend's buffer
// to host memory, all-reduces it with the inner communicator, and copies
// it back, through the backend's own copy functions (so the copies are
// ordered after the kernels that produced the data). AllGatherV and
// Broadcast take host buffers (worker/communicator.h) and pass through.
#ifndef TPSERVE_WORKER_HOST_STAGED_COMMUNICATOR_H_
#define TPSERVE_WORKER_HOST_STAGED_COMMUNICATOR_H_

#include <cstddef>
#include <vector>

#include "kernels/backend.h"
#include "worker/communicator.h"

namespace tpserve {

class HostStagedCommunicator final : public Communicator {
 public:
  // Neither is owned; both must outlive this object.
  HostStagedCommunicator(Communicator* inner, Backend* backend)
      : inner_(inner), backend_(backend) {}

  int rank() const override { return inner_->rank(); }
  int world_size() const override { return inner_->world_size(); }

  absl::Status AllReduceSum(float* data, size_t count) override;
  absl::Status AllGatherV(const float* in, absl::Span<const size_t> counts,
                          float* out) override {
    return inner_->AllGatherV(in, counts, out);
  }
  absl::Status Broadcast(void* data, size_t count, int root) override {
    return inner_->Broadcast(data, count, root);
  }

 private:
  Communicator* inner_;
  Backend* backend_;
  std::vector<float> host_;  // Grows to the largest all-reduce; reused.
};

}  // namespace tpserve

#endif  // TPSERVE_WORKER_HOST_STAGED_COMMUNICATOR_H_
