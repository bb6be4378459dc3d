#include "worker/nccl_communicator.h"

#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"

namespace tpserve {
namespace {

absl::Status NcclStatus(ncclResult_t r, const char* what) {
  if (r == ncclSuccess || r == ncclInProgress) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("NCCL error in ", what, ": ", ncclGetErrorString(r)));
}

}  // namespace

int NcclCommunicator::Version() {
  int version = 0;
  if (ncclGetVersion(&version) != ncclSuccess) return 0;
  return version;
}

absl::StatusOr<std::string> NcclCommunicator::NewUniqueId() {
  ncclUniqueId id;
  absl::Status s = NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId");
  if (!s.ok()) return s;
  return std::string(id.internal, sizeof(id.internal));
}

template <typename Done>
absl::Status NcclCommunicator::WaitFor(Done done, const char* what) {
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (true) {
    ncclResult_t async = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(comm_, &async);
    if (r != ncclSuccess || (async != ncclSuccess && async != ncclInProgress)) {
      Abort();
      return NcclStatus(r != ncclSuccess ? r : async, what);
    }
    if (async == ncclSuccess && done()) return absl::OkStatus();
    if (std::chrono::steady_clock::now() > deadline) {
      Abort();
      return absl::DeadlineExceededError(absl::StrCat(
          "NCCL ", what, " did not finish within ", timeout_.count(),
          " ms; a peer rank is probably dead or hung"));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(
    const std::string& unique_id, int rank, int world,
    std::chrono::milliseconds timeout) {
  if (unique_id.size() != sizeof(ncclUniqueId::internal)) {
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL unique id must be ", sizeof(ncclUniqueId::internal),
                     " bytes, got ", unique_id.size()));
  }
  if (world < 1 || rank < 0 || rank >= world) {
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL: rank ", rank, " of world ", world, " is invalid"));
  }
  ncclUniqueId id;
  std::memcpy(id.internal, unique_id.data(), sizeof(id.internal));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // Lets us bound init and collectives by a deadline.
  ncclComm_t comm = nullptr;
  absl::Status s =
      NcclStatus(ncclCommInitRankConfig(&comm, world, id, rank, &config),
                 "ncclCommInitRankConfig");
  if (!s.ok()) return s;
  std::unique_ptr<NcclCommunicator> c(new NcclCommunicator(comm, timeout));
  s = c->WaitFor([] { return true; }, "communicator init");
  if (!s.ok()) return s;
  return c;
}

absl::Status NcclCommunicator::AllReduceSum(float* data, size_t count,
                                            cudaStream_t stream) {
  if (aborted_) {
    return absl::FailedPreconditionError(
        "NCCL communicator was aborted after an earlier failure; the group "
        "must be rebuilt");
  }
  absl::Status s = NcclStatus(
      ncclAllReduce(data, data, count, ncclFloat32, ncclSum, comm_, stream),
      "ncclAllReduce");
  if (!s.ok()) {
    Abort();
    return s;
  }
  cudaError_t last = cudaSuccess;
  s = WaitFor(
      [&] {
        last = cudaStreamQuery(stream);
        return last != cudaErrorNotReady;
      },
      "all-reduce");
  if (!s.ok()) return s;
  if (last != cudaSuccess) {
    return absl::InternalError(absl::StrCat("CUDA error after all-reduce: ",
                                            cudaGetErrorString(last)));
  }
  return absl::OkStatus();
}

void NcclCommunicator::Abort() {
  if (!aborted_ && comm_ != nullptr) ncclCommAbort(comm_);
  aborted_ = true;
}

NcclCommunicator::~NcclCommunicator() {
  // Abort, not Destroy: Destroy waits for peers and can block forever.
  Abort();
}

}  // namespace tpserve
