#include "kernels/cuda/cuda_graph.h"

#include "kernels/cuda/cuda_status.h"

namespace tpserve::cuda {

CudaGraph::~CudaGraph() {
  if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
}

absl::Status CudaGraph::Capture(cudaStream_t stream,
                                const std::function<absl::Status()>& enqueue) {
  if (stream == nullptr) {
    // The legacy default stream cannot be captured.
    return absl::InvalidArgumentError("CudaGraph: capture needs a stream");
  }
  // Thread-local mode: other threads (other ranks' backends) may keep
  // making unrelated CUDA calls while this thread captures.
  TP_CUDA_RETURN_IF_ERROR(
      cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  absl::Status body = enqueue();
  cudaGraph_t graph = nullptr;
  // End the capture whatever happened, so the stream is usable again.
  const cudaError_t end = cudaStreamEndCapture(stream, &graph);
  if (!body.ok()) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();
    return body;
  }
  TP_CUDA_RETURN_IF_ERROR(end);
  size_t nodes = 0;
  absl::Status s = CudaStatus(cudaGraphGetNodes(graph, nullptr, &nodes),
                              "cudaGraphGetNodes");
  if (s.ok() && exec_ != nullptr) {
    // Same topology (the usual case: the same step shape with other
    // pointers or sizes) updates the executable in place, cheaply.
    cudaGraphExecUpdateResultInfo info;
    if (cudaGraphExecUpdate(exec_, graph, &info) != cudaSuccess) {
      cudaGetLastError();
      cudaGraphExecDestroy(exec_);
      exec_ = nullptr;
    }
  }
  if (s.ok() && exec_ == nullptr) {
    s = CudaStatus(cudaGraphInstantiate(&exec_, graph, 0),
                   "cudaGraphInstantiate");
  }
  cudaGraphDestroy(graph);
  if (s.ok()) num_nodes_ = nodes;
  return s;
}

absl::Status CudaGraph::Replay(cudaStream_t stream) {
  if (exec_ == nullptr) {
    return absl::FailedPreconditionError("CudaGraph: nothing captured");
  }
  return CudaStatus(cudaGraphLaunch(exec_, stream), "cudaGraphLaunch");
}

}  // namespace tpserve::cuda
