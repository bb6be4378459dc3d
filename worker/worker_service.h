// The worker side of the internal protocol (protos/tpserve/worker/v1/
// worker.proto): one tensor-parallel rank of a worker group, driven by the
// coordinator through Info -> InitGroup -> LoadModel -> Warmup -> Step.
//
// Sync gRPC API on purpose: a worker runs one step at a time, Step is one
// long-lived stream whose handler thread simply loops read -> forward ->
// write, and the other RPCs are rare; the callback API would add state
// machines and buy nothing here.
//
// Locking: `engine_mu_` serializes everything that touches the engine
// (group, model, KV cache, forward passes: InitGroup, LoadModel, Warmup and
// each step); `mu_` guards the small status fields, so Health and Info
// answer at once even in the middle of a step or a rendezvous. Order:
// engine_mu_ before mu_, never the reverse.
//
// Lockstep: every rank must receive the same InitGroup world, Warmup and
// StepRequests. A step is validated completely (from the request and state
// built from earlier requests only, identical on every rank) before any
// collective runs, so a bad step is refused by every rank alike
// (INVALID_ARGUMENT) and the group stays usable; a failed forward pass or
// collective ends the stream with its status and marks the worker "broken"
// until the next InitGroup.
//
// Sequence state (sampler, token history) lives in the Step stream: a new
// stream starts with none, so after a reconnect the coordinator re-prefills
// from position 0 (it owns every sequence's tokens).
#ifndef TPSERVE_WORKER_WORKER_SERVICE_H_
#define TPSERVE_WORKER_WORKER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "common/model_weights.h"
#include "common/net/channel_security.h"
#include "kernels/backend.h"
#include "tpserve/worker/v1/worker.grpc.pb.h"
#include "worker/gloo_communicator.h"
#include "worker/llama_shard.h"
#include "worker/tp_plan.h"

namespace tpserve {

struct WorkerServiceOptions {
  // CPU compute threads when LoadModel asks for 0; 0 = one per core.
  int threads = 0;
  // Address this rank advertises to its peers for collectives (Gloo).
  // Loopback suits groups on one machine; multi-host groups need a
  // routable one.
  std::string collective_host = "127.0.0.1";
  // Who may call this worker (token, mTLS); see channel_security.h.
  ChannelSecurity security;
  // The GPU a "cuda" LoadModel uses.
  int cuda_device = 0;
};

class WorkerService final : public worker::v1::Worker::Service {
 public:
  explicit WorkerService(WorkerServiceOptions options = WorkerServiceOptions());
  ~WorkerService() override;
  WorkerService(const WorkerService&) = delete;
  WorkerService& operator=(const WorkerService&) = delete;

  grpc::Status Info(grpc::ServerContext* context,
                    const worker::v1::InfoRequest* request,
                    worker::v1::InfoResponse* response) override;
  // Rendezvous keys live under `group_id` + "/" (Gloo's PrefixStore adds
  // the slash); the coordinator clears them with that prefix.
  grpc::Status InitGroup(grpc::ServerContext* context,
                         const worker::v1::InitGroupRequest* request,
                         worker::v1::InitGroupResponse* response) override;
  grpc::Status LoadModel(
      grpc::ServerContext* context, const worker::v1::LoadModelRequest* request,
      grpc::ServerWriter<worker::v1::LoadModelProgress>* writer) override;
  grpc::Status Warmup(grpc::ServerContext* context,
                      const worker::v1::WarmupRequest* request,
                      worker::v1::WarmupResponse* response) override;
  grpc::Status Step(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<worker::v1::StepResponse,
                               worker::v1::StepRequest>* stream) override;
  grpc::Status Health(grpc::ServerContext* context,
                      const worker::v1::HealthRequest* request,
                      worker::v1::HealthResponse* response) override;

 private:
  enum class State { kIdle, kGrouped, kLoaded, kReady, kBroken };
  struct StreamState;  // Per Step stream: sequences' samplers and history.
  struct Prepared;     // A validated step, ready to run.

  static const char* StateName(State state);

  // Drops the engine down to (and including) the model. Requires
  // engine_mu_.
  void ResetModel();
  // Checks that the worker is in one of `allowed` states and, when so,
  // bumps the generation (an open Step stream then ends with ABORTED at its
  // next step, as the engine under it is being replaced). Requires
  // engine_mu_.
  absl::Status BeginChange(const char* rpc,
                           std::initializer_list<State> allowed);
  void SetState(State state);
  // UNAUTHENTICATED for callers without the token / certificate;
  // PERMISSION_DENIED (when `group_call`) for a caller that is not the
  // coordinator which formed the current group.
  grpc::Status Admit(const grpc::ServerContext& context, bool group_call);
  // Sets "broken" and returns `status` saying so.
  absl::Status Broken(const absl::Status& status);

  absl::Status DoInitGroup(const worker::v1::InitGroupRequest& request);
  absl::Status DoLoadModel(
      const worker::v1::LoadModelRequest& request,
      grpc::ServerWriter<worker::v1::LoadModelProgress>* writer);
  absl::Status DoWarmup(const worker::v1::WarmupRequest& request,
                        worker::v1::WarmupResponse* response);
  // One step of a stream opened at `generation`.
  absl::Status RunStep(uint64_t generation,
                       const worker::v1::StepRequest& request,
                       StreamState& stream, worker::v1::StepResponse* response);
  // Validates `request` against the engine and `stream` without changing
  // either. Requires engine_mu_.
  absl::Status PrepareStep(const worker::v1::StepRequest& request,
                           const StreamState& stream, Prepared* out) const;

  const WorkerServiceOptions options_;

  // The engine. Guarded by engine_mu_. Declared so that destruction (and
  // ResetModel) runs shard -> backend -> model -> communicator: the shard
  // frees through the backend and views the model's mappings.
  std::mutex engine_mu_;
  std::unique_ptr<GlooCommunicator> comm_;  // Null when world == 1.
  std::unique_ptr<ModelWeights> model_;
  TpPlan plan_;
  std::unique_ptr<Backend> backend_;
  // Gloo through host memory for device activations (CUDA ranks).
  std::unique_ptr<Communicator> staged_comm_;
  std::unique_ptr<LlamaShard> shard_;
  int64_t kv_blocks_ = 0;
  int64_t block_size_ = 0;
  int64_t max_step_tokens_ = 0;
  int64_t max_step_sequences_ = 0;

  // Status. Guarded by mu_.
  mutable std::mutex mu_;
  State state_ = State::kIdle;
  int rank_ = 0;
  int world_ = 0;
  uint64_t steps_ = 0;
  bool step_open_ = false;   // A Step stream is being served.
  std::string group_key_;    // From the InitGroup that formed the group.
  uint64_t generation_ = 0;  // Bumped whenever the engine is replaced.
};

}  // namespace tpserve

#endif  // TPSERVE_WORKER_WORKER_SERVICE_H_
