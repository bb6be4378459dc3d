// The coordinator's side of one worker group: N tensor-parallel worker
// processes driven in lockstep over tpserve.worker.v1.
//
// Start() runs the group's life in the protocol's order: Info, InitGroup on
// every rank at once (they rendezvous with each other through the
// coordinator's Rendezvous service), LoadModel (progress streamed back),
// Warmup (KV capacity: the minimum over ranks), then opens one Step stream
// per rank. Step() sends the same step to every rank and waits for all of
// them; a rank that fails, disconnects or takes longer than the step timeout
// breaks the group (DESIGN.md: a step completes on all ranks or none).
#ifndef TPSERVE_COORDINATOR_WORKER_GROUP_H_
#define TPSERVE_COORDINATOR_WORKER_GROUP_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/net/channel_security.h"
#include "common/net/grpc_status.h"
#include "coordinator/step_executor.h"
#include "tpserve/worker/v1/worker.grpc.pb.h"

namespace tpserve {

struct WorkerGroupOptions {
  std::vector<std::string> addresses;  // host:port of each rank, rank order.
  std::string rendezvous_address;      // The coordinator, as ranks reach it.
  std::string group_id = "group-0";    // Rendezvous key prefix (unique).
  std::string model_path;              // As the workers see it.
  std::string backend = "cpu";
  int32_t threads = 0;  // Compute threads per rank (0: the worker decides).
  int32_t block_size = 16;
  uint64_t kv_cache_bytes = 0;  // Per rank.
  int32_t max_step_tokens = 512;
  int32_t max_step_sequences = 64;
  // Bound on connecting and on the rendezvous.
  std::chrono::milliseconds connect_timeout{60000};
  // Bound on loading the model.
  std::chrono::milliseconds load_timeout{600000};
  // A step taking longer than this breaks the group (a hung rank).
  std::chrono::milliseconds step_timeout{60000};
  // Bound on each collective inside a rank (a peer that died or hangs).
  std::chrono::milliseconds collective_timeout{10000};
  // How this coordinator authenticates to its workers (token, mTLS).
  ChannelSecurity security;
  // The Rendezvous service (the coordinator's port) is served over TLS.
  bool rendezvous_tls = false;
};

// Progress of one rank's load, for the command line.
using LoadProgressFn =
    std::function<void(int rank, const worker::v1::LoadModelProgress&)>;

class WorkerGroup final : public StepExecutor {
 public:
  static absl::StatusOr<std::unique_ptr<WorkerGroup>> Start(
      const WorkerGroupOptions& options, const LoadProgressFn& progress);
  ~WorkerGroup() override;  // Closes the step streams.
  WorkerGroup(const WorkerGroup&) = delete;
  WorkerGroup& operator=(const WorkerGroup&) = delete;

  int world_size() const { return static_cast<int>(ranks_.size()); }
  int64_t kv_blocks() const override { return kv_blocks_; }
  bool broken() const;
  void MarkBroken(const std::string& reason) override;
  std::string Probe(std::chrono::milliseconds deadline) const override;

  // Translates `step` to the worker protocol, sends the same request to
  // every rank and waits for all of them; a rank that fails, disconnects or
  // outlives the step timeout breaks the group (Unavailable from then on).
  absl::Status Step(const StepWork& step,
                    std::vector<SampledToken>* sampled) override;

 private:
  struct Rank {
    std::string address;
    std::unique_ptr<worker::v1::Worker::Stub> stub;
    std::unique_ptr<grpc::ClientContext> step_context;
    std::unique_ptr<grpc::ClientReaderWriter<worker::v1::StepRequest,
                                             worker::v1::StepResponse>>
        step_stream;
  };

  explicit WorkerGroup(const WorkerGroupOptions& options);
  absl::Status Connect();
  absl::Status InitGroup();
  absl::Status Load(const LoadProgressFn& progress);
  absl::Status Warmup();
  absl::Status OpenStepStreams();
  absl::Status Break(int rank, const std::string& what);
  absl::Status StepProto(const worker::v1::StepRequest& request,
                         worker::v1::StepResponse* rank0);
  // Cancels every step stream if a step outlives options_.step_timeout.
  void Watchdog();

  const WorkerGroupOptions options_;
  // Sent with every call: binds the workers to this group (worker.proto).
  const std::string group_key_ = RandomHex128();
  std::vector<Rank> ranks_;
  int64_t kv_blocks_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool broken_ = false;                                  // Guarded by mu_.
  std::string broken_reason_;                            // Guarded by mu_.
  bool stopping_ = false;                                // Guarded by mu_.
  bool step_running_ = false;                            // Guarded by mu_.
  std::chrono::steady_clock::time_point step_deadline_;  // Guarded by mu_.
  std::thread watchdog_;
};

}  // namespace tpserve

#endif  // TPSERVE_COORDINATOR_WORKER_GROUP_H_
