// Capture and replay of a stream's work as a CUDA graph: the decode step's
// ~15 kernels per layer cost a few microseconds each to launch, which for a
// small model is most of the step; a graph launches them all at once.
//
// Usage (docs/cuda.md has how LlamaShard would use it):
//   CudaGraph g;
//   TP_RETURN_IF_ERROR(g.Capture(stream, [&] { return EnqueueStep(); }));
//   ... write the next step's inputs into the buffers the graph reads ...
//   TP_RETURN_IF_ERROR(g.Replay(stream));
// A graph replays the exact kernels, pointers and copy sources captured:
// inputs must change in place (same device buffers, same pinned staging
// buffers), and shapes (batch size, tile counts, attention splits) must be
// those of the capture; a change of shape needs a new capture (Capture
// again: the executable is updated in place when the topology allows).
// Nothing captured may synchronize with the host.
#ifndef TPSERVE_KERNELS_CUDA_CUDA_GRAPH_H_
#define TPSERVE_KERNELS_CUDA_CUDA_GRAPH_H_

#include <cuda_runtime.h>

#include <functional>

#include "absl/status/status.h"

namespace tpserve::cuda {

class CudaGraph {
 public:
  CudaGraph() = default;
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Records what `enqueue` puts on `stream` (nothing runs) and makes it
  // replayable. `enqueue`'s error, or a capture error (e.g. a synchronizing
  // call inside), is returned and the stream is left out of capture mode.
  absl::Status Capture(cudaStream_t stream,
                       const std::function<absl::Status()>& enqueue);

  // Launches the captured work on `stream` (asynchronously).
  absl::Status Replay(cudaStream_t stream);

  bool captured() const { return exec_ != nullptr; }
  // Kernel, copy and other nodes of the last capture.
  size_t num_nodes() const { return num_nodes_; }

 private:
  cudaGraphExec_t exec_ = nullptr;
  size_t num_nodes_ = 0;
};

}  // namespace tpserve::cuda

#endif  // TPSERVE_KERNELS_CUDA_CUDA_GRAPH_H_
