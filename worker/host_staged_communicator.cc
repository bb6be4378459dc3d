#include "worker/host_staged_communicator.h"

#include "common/status_macros.h"

namespace tpserve {

absl::Status HostStagedCommunicator::AllReduceSum(float* data, size_t count) {
  if (count == 0) return absl::OkStatus();
  if (data == nullptr) {
    return absl::InvalidArgumentError("AllReduceSum: null data");
  }
  if (host_.size() < count) host_.resize(count);
  // CopyToHost waits for the backend's queued work and the copy itself.
  TP_RETURN_IF_ERROR(backend_->CopyToHost(data, host_.data(), count));
  TP_RETURN_IF_ERROR(inner_->AllReduceSum(host_.data(), count));
  return backend_->CopyFromHost(host_.data(), data, count);
}

}  // namespace tpserve
