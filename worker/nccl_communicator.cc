#include "worker/nccl_communicator.h"

#include <cstring>
#include <numeric>
#include <thread>

#include "absl/strings/str_cat.h"

namespace tpserve {
namespace {

absl::Status NcclStatus(ncclResult_t r, const char* what) {
  if (r == ncclSuccess || r == ncclInProgress) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("NCCL error in ", what, ": ", ncclGetErrorString(r)));
}

absl::Status CudaCall(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("CUDA error in ", what, ": ", cudaGetErrorString(err)));
}

// Whether `p` is device (or managed) memory; host memory, registered or
// not, is staged by the caller.
bool IsDevicePointer(const void* p) {
  cudaPointerAttributes attr;
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeDevice ||
         attr.type == cudaMemoryTypeManaged;
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
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  for (int spins = 0;; ++spins) {
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
          "NCCL ", what, " did not finish within ", options_.timeout.count(),
          " ms; a peer rank is probably dead or hung"));
    }
    // Spin briefly (a collective between ranks in step takes microseconds),
    // then back off so a long wait does not burn a core.
    if (spins < 2000) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
}

absl::Status NcclCommunicator::WaitStream(cudaStream_t stream,
                                          const char* what) {
  cudaError_t last = cudaSuccess;
  absl::Status s = WaitFor(
      [&] {
        last = cudaStreamQuery(stream);
        return last != cudaErrorNotReady;
      },
      what);
  if (!s.ok()) return s;
  if (last != cudaSuccess) {
    // A failed kernel or copy leaves the group unusable too.
    Abort();
    return absl::InternalError(absl::StrCat("CUDA error during NCCL ", what,
                                            ": ", cudaGetErrorString(last)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(
    const std::string& unique_id, int rank, int world,
    const NcclOptions& options) {
  if (unique_id.size() != sizeof(ncclUniqueId::internal)) {
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL unique id must be ", sizeof(ncclUniqueId::internal),
                     " bytes, got ", unique_id.size()));
  }
  if (world < 1 || rank < 0 || rank >= world) {
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL: rank ", rank, " of world ", world, " is invalid"));
  }
  if (options.timeout.count() <= 0) {
    return absl::InvalidArgumentError("NCCL: the timeout must be positive");
  }
  if (absl::Status s = CudaCall(cudaSetDevice(options.device), "cudaSetDevice");
      !s.ok()) {
    return s;
  }
  ncclUniqueId id;
  std::memcpy(id.internal, unique_id.data(), sizeof(id.internal));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // Lets us bound init and collectives by a deadline.
  ncclComm_t comm = nullptr;
  absl::Status s =
      NcclStatus(ncclCommInitRankConfig(&comm, world, id, rank, &config),
                 "ncclCommInitRankConfig");
  if (!s.ok()) {
    if (comm != nullptr) ncclCommAbort(comm);
    return s;
  }
  std::unique_ptr<NcclCommunicator> c(
      new NcclCommunicator(comm, rank, world, options));
  s = c->WaitFor([] { return true; }, "communicator init");
  if (!s.ok()) return s;
  return c;
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(
    const std::string& unique_id, int rank, int world,
    std::chrono::milliseconds timeout) {
  NcclOptions options;
  options.timeout = timeout;
  if (absl::Status s =
          CudaCall(cudaGetDevice(&options.device), "cudaGetDevice");
      !s.ok()) {
    return s;
  }
  return Create(unique_id, rank, world, options);
}

absl::Status NcclCommunicator::Usable() {
  if (aborted_) {
    return absl::FailedPreconditionError(
        "NCCL communicator was aborted after an earlier failure; the group "
        "must be rebuilt");
  }
  return CudaCall(cudaSetDevice(options_.device), "cudaSetDevice");
}

absl::Status NcclCommunicator::Staging(size_t bytes) {
  if (bytes <= staging_bytes_) return absl::OkStatus();
  if (staging_ != nullptr) {
    // The previous collective finished (every staged call waits).
    cudaFree(staging_);
    staging_ = nullptr;
    staging_bytes_ = 0;
  }
  if (absl::Status s = CudaCall(cudaMalloc(&staging_, bytes), "cudaMalloc");
      !s.ok()) {
    return s;
  }
  staging_bytes_ = bytes;
  return absl::OkStatus();
}

absl::Status NcclCommunicator::AllReduceSum(float* data, size_t count) {
  return AllReduceSum(data, count, options_.stream);
}

absl::Status NcclCommunicator::AllReduceSum(float* data, size_t count,
                                            cudaStream_t stream) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  if (count == 0) return absl::OkStatus();
  if (data == nullptr) {
    return absl::InvalidArgumentError("AllReduceSum: null data");
  }
  const bool host = !IsDevicePointer(data);
  float* buf = data;
  if (host) {
    if (absl::Status s = Staging(count * sizeof(float)); !s.ok()) return s;
    buf = static_cast<float*>(staging_);
    if (absl::Status s =
            CudaCall(cudaMemcpyAsync(buf, data, count * sizeof(float),
                                     cudaMemcpyHostToDevice, stream),
                     "cudaMemcpyAsync");
        !s.ok()) {
      return s;
    }
  }
  absl::Status s = NcclStatus(
      ncclAllReduce(buf, buf, count, ncclFloat32, ncclSum, comm_, stream),
      "ncclAllReduce");
  if (!s.ok()) {
    Abort();
    return s;
  }
  if (host) {
    s = CudaCall(cudaMemcpyAsync(data, buf, count * sizeof(float),
                                 cudaMemcpyDeviceToHost, stream),
                 "cudaMemcpyAsync");
    if (!s.ok()) return s;
  }
  if (host || options_.wait_each_collective) {
    return WaitStream(stream, "all-reduce");
  }
  // Enqueued; in non-blocking mode the call may still be in progress: wait
  // only for NCCL to accept it (no GPU wait), as NCCL requires before the
  // next call on this communicator.
  return WaitFor([] { return true; }, "all-reduce enqueue");
}

absl::Status NcclCommunicator::AllGatherV(const float* in,
                                          absl::Span<const size_t> counts,
                                          float* out) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  if (counts.size() != static_cast<size_t>(world_)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AllGatherV: ", counts.size(), " counts for a world of ", world_));
  }
  const size_t total = std::accumulate(counts.begin(), counts.end(), size_t{0});
  const size_t mine = counts[rank_];
  if ((mine > 0 && in == nullptr) || (total > 0 && out == nullptr)) {
    return absl::InvalidArgumentError("AllGatherV: null buffer");
  }
  if (total == 0) return absl::OkStatus();
  cudaStream_t stream = options_.stream;
  const bool in_host = mine > 0 && !IsDevicePointer(in);
  const bool out_host = !IsDevicePointer(out);
  const size_t staged = (out_host ? total : 0) + (in_host ? mine : 0);
  if (absl::Status s = Staging(staged * sizeof(float)); !s.ok()) return s;
  float* dout = out_host ? static_cast<float*>(staging_) : out;
  const float* din = in;
  if (in_host) {
    float* d = static_cast<float*>(staging_) + (out_host ? total : 0);
    if (absl::Status s =
            CudaCall(cudaMemcpyAsync(d, in, mine * sizeof(float),
                                     cudaMemcpyHostToDevice, stream),
                     "cudaMemcpyAsync");
        !s.ok()) {
      return s;
    }
    din = d;
  }
  // Variable counts: one broadcast per rank, fused into one NCCL group.
  absl::Status s = NcclStatus(ncclGroupStart(), "ncclGroupStart");
  size_t offset = 0;
  for (int r = 0; r < world_ && s.ok(); ++r) {
    if (counts[r] > 0) {
      s = NcclStatus(
          ncclBroadcast(r == rank_ ? din : dout + offset, dout + offset,
                        counts[r], ncclFloat32, r, comm_, stream),
          "ncclBroadcast");
    }
    offset += counts[r];
  }
  absl::Status end = NcclStatus(ncclGroupEnd(), "ncclGroupEnd");
  if (!s.ok() || !end.ok()) {
    Abort();
    return s.ok() ? end : s;
  }
  if (out_host) {
    s = CudaCall(cudaMemcpyAsync(out, dout, total * sizeof(float),
                                 cudaMemcpyDeviceToHost, stream),
                 "cudaMemcpyAsync");
    if (!s.ok()) return s;
  }
  return WaitStream(stream, "all-gather");
}

absl::Status NcclCommunicator::Broadcast(void* data, size_t count, int root) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  if (root < 0 || root >= world_) {
    return absl::InvalidArgumentError(
        absl::StrCat("Broadcast: root ", root, " of world ", world_));
  }
  if (count == 0) return absl::OkStatus();
  if (data == nullptr) {
    return absl::InvalidArgumentError("Broadcast: null data");
  }
  cudaStream_t stream = options_.stream;
  const bool host = !IsDevicePointer(data);
  void* buf = data;
  if (host) {
    if (absl::Status s = Staging(count); !s.ok()) return s;
    buf = staging_;
    if (rank_ == root) {
      if (absl::Status s = CudaCall(
              cudaMemcpyAsync(buf, data, count, cudaMemcpyHostToDevice, stream),
              "cudaMemcpyAsync");
          !s.ok()) {
        return s;
      }
    }
  }
  absl::Status s =
      NcclStatus(ncclBroadcast(buf, buf, count, ncclUint8, root, comm_, stream),
                 "ncclBroadcast");
  if (!s.ok()) {
    Abort();
    return s;
  }
  if (host) {
    s = CudaCall(
        cudaMemcpyAsync(data, buf, count, cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync");
    if (!s.ok()) return s;
  }
  return WaitStream(stream, "broadcast");
}

absl::Status NcclCommunicator::Wait() {
  if (absl::Status s = Usable(); !s.ok()) return s;
  return WaitStream(options_.stream, "wait");
}

void NcclCommunicator::Abort() {
  if (!aborted_ && comm_ != nullptr) ncclCommAbort(comm_);
  aborted_ = true;
}

NcclCommunicator::~NcclCommunicator() {
  // Abort, not Destroy: Destroy waits for peers and can block forever.
  Abort();
  if (staging_ != nullptr) {
    cudaSetDevice(options_.device);
    cudaFree(staging_);
  }
}

}  // namespace tpserve
