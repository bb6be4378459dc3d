#include "worker/worker_service.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <limits>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/net/grpc_status.h"
#include "common/sampling.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "kernels/cpu/cpu_backend.h"
#include "worker/backend_factory.h"
#include "worker/grpc_store.h"
#include "worker/host_staged_communicator.h"
#include "worker/sampling_proto.h"

namespace tpserve {

using Clock = std::chrono::steady_clock;

// One sequence of a Step stream that samples (or may): its parameters and
// every token it ran, in position order. Kept on every rank so that step
// validation is identical everywhere; only rank 0 holds the Sampler
// (O(vocab) scratch).
struct SequenceState {
  SamplingParams params;
  std::vector<int32_t> history;  // Tokens of positions [0, size()).
  std::unique_ptr<Sampler> sampler;
};

struct WorkerService::StreamState {
  absl::flat_hash_map<uint64_t, SequenceState> seqs;
};

struct WorkerService::Prepared {
  StepInput input;
  // request.sequences indices of the sequences that sample, in order (the
  // rows of the logits).
  std::vector<int> sampled;
};

namespace {

constexpr int kMaxWorld = 4096;
constexpr size_t kMaxGroupIdBytes = 256;
constexpr int64_t kMaxBlockSize = 4096;
// Bounds on Warmup's step shape: far above any real batch, low enough that
// a bad request cannot ask for absurd scratch memory.
constexpr int64_t kMaxStepTokens = int64_t{1} << 20;
constexpr int64_t kMaxStepSequences = int64_t{1} << 16;
constexpr std::chrono::milliseconds kDefaultTimeout{30000};

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Bytes of the weights rank `plan` views: each tensor's share by the slice
// LlamaShard takes of it (TensorSplitOf: rows or whole-block columns, so
// the shares are exact), norms whole.
uint64_t RankWeightBytes(const ModelWeights& model, const TpPlan& plan) {
  uint64_t total = 0;
  for (const TensorView& t : model.tensors()) {
    const TensorShare share =
        RankShare(model.config(), plan, TensorSplitOf(t.name));
    total += share.whole > 0 ? t.n_bytes / static_cast<uint64_t>(share.whole) *
                                   static_cast<uint64_t>(share.part)
                             : t.n_bytes;
  }
  return total;
}

void Progress(grpc::ServerWriter<worker::v1::LoadModelProgress>* writer,
              const std::string& stage, float fraction, bool done = false,
              uint64_t weight_bytes = 0) {
  worker::v1::LoadModelProgress p;
  p.set_stage(stage);
  p.set_fraction(fraction);
  p.set_done(done);
  p.set_weight_bytes(weight_bytes);
  // A vanished client is noticed by gRPC; loading goes on regardless so a
  // retry finds the worker in a defined state.
  writer->Write(p);
}

}  // namespace

WorkerService::WorkerService(WorkerServiceOptions options)
    : options_(std::move(options)) {}

WorkerService::~WorkerService() {
  std::lock_guard<std::mutex> lock(engine_mu_);
  ResetModel();
  comm_.reset();
}

const char* WorkerService::StateName(State state) {
  switch (state) {
    case State::kIdle:
      return "idle";
    case State::kGrouped:
      return "grouped";
    case State::kLoaded:
      return "loaded";
    case State::kReady:
      return "ready";
    case State::kBroken:
      return "broken";
  }
  return "unknown";
}

void WorkerService::ResetModel() {
  shard_.reset();
  staged_comm_.reset();  // Uses the backend.
  backend_.reset();
  model_.reset();
  plan_ = TpPlan();
  kv_blocks_ = block_size_ = max_step_tokens_ = max_step_sequences_ = 0;
}

absl::Status WorkerService::BeginChange(const char* rpc,
                                        std::initializer_list<State> allowed) {
  std::lock_guard<std::mutex> lock(mu_);
  if (std::find(allowed.begin(), allowed.end(), state_) == allowed.end()) {
    std::string hint;
    if (state_ == State::kBroken) {
      hint = "; InitGroup rebuilds it";
    } else if (state_ == State::kIdle) {
      hint = "; call InitGroup first";
    } else if (state_ == State::kGrouped) {
      hint = "; call LoadModel first";
    } else if (state_ == State::kLoaded) {
      hint = "; call Warmup first";
    }
    return absl::FailedPreconditionError(
        absl::StrCat(rpc, ": the worker is ", StateName(state_), hint));
  }
  ++generation_;
  return absl::OkStatus();
}

void WorkerService::SetState(State state) {
  std::lock_guard<std::mutex> lock(mu_);
  state_ = state;
}

absl::Status WorkerService::Broken(const absl::Status& status) {
  SetState(State::kBroken);
  return absl::Status(
      status.code(),
      absl::StrCat("rank ", plan_.rank, ": ", status.message(),
                   " (worker is now broken; InitGroup rebuilds it)"));
}

grpc::Status WorkerService::Admit(const grpc::ServerContext& context,
                                  bool group_call) {
  grpc::Status auth = Authenticate(context, options_.security);
  if (!auth.ok()) return auth;
  if (!group_call) return grpc::Status::OK;
  const std::string key = ClientMetadata(context, "x-tpserve-group-key");
  std::lock_guard<std::mutex> lock(mu_);
  if (!group_key_.empty() && !ConstantTimeEquals(key, group_key_)) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "this worker belongs to a group formed by another "
                        "coordinator");
  }
  return grpc::Status::OK;
}

grpc::Status WorkerService::Info(grpc::ServerContext* context,
                                 const worker::v1::InfoRequest* /*request*/,
                                 worker::v1::InfoResponse* response) {
  if (grpc::Status s = Admit(*context, false); !s.ok()) return s;
  response->set_version(kVersion);
  response->add_backends("cpu");
  if (CudaBackendCompiled()) response->add_backends("cuda");
  for (int d = 0; d < CudaDevices(); ++d) {
    response->add_devices(absl::StrCat("cuda:", d));
  }
  response->set_cpu_cores(
      static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency())));
  return grpc::Status::OK;
}

grpc::Status WorkerService::InitGroup(
    grpc::ServerContext* context, const worker::v1::InitGroupRequest* request,
    worker::v1::InitGroupResponse* /*response*/) {
  // Any authenticated coordinator may (re)form the group; it then owns it.
  if (grpc::Status s = Admit(*context, false); !s.ok()) return s;
  const std::string key = ClientMetadata(*context, "x-tpserve-group-key");
  grpc::Status s = ToGrpc(DoInitGroup(*request));
  if (s.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    group_key_ = key;
  }
  return s;
}

absl::Status WorkerService::DoInitGroup(
    const worker::v1::InitGroupRequest& request) {
  const int rank = request.rank(), world = request.world_size();
  if (world < 1 || world > kMaxWorld || rank < 0 || rank >= world) {
    return absl::InvalidArgumentError(absl::StrCat(
        "InitGroup: rank ", rank, " of world ", world, " is invalid"));
  }
  if (request.timeout_ms() < 0) {
    return absl::InvalidArgumentError("InitGroup: negative timeout_ms");
  }
  if (world > 1 &&
      (request.rendezvous_address().empty() || request.group_id().empty())) {
    return absl::InvalidArgumentError(
        "InitGroup: a group of more than one rank needs rendezvous_address "
        "and group_id");
  }
  if (request.group_id().size() > kMaxGroupIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "InitGroup: group_id longer than ", kMaxGroupIdBytes, " bytes"));
  }
  const std::chrono::milliseconds timeout =
      request.timeout_ms() > 0 ? std::chrono::milliseconds(request.timeout_ms())
                               : kDefaultTimeout;

  std::lock_guard<std::mutex> engine(engine_mu_);
  {
    // Replaces whatever existed, from any state.
    std::lock_guard<std::mutex> lock(mu_);
    ++generation_;
    state_ = State::kIdle;
    rank_ = rank;
    world_ = world;
    steps_ = 0;
  }
  ResetModel();
  comm_.reset();
  if (world > 1) {
    // The coordinator's Rendezvous takes the same token; TLS when it says
    // its port has it (the worker's CA must have signed its certificate).
    ChannelSecurity rendezvous = options_.security;
    if (!request.rendezvous_tls()) {
      rendezvous.tls_ca.clear();
      rendezvous.tls_cert.clear();
      rendezvous.tls_key.clear();
    }
    GrpcStore store(SecureChannel(request.rendezvous_address(), rendezvous),
                    timeout);
    GlooOptions gloo;
    gloo.hostname = options_.collective_host;
    gloo.timeout = timeout;
    absl::StatusOr<std::unique_ptr<GlooCommunicator>> comm =
        GlooCommunicator::Create(store, request.group_id(), rank, world, gloo);
    if (!comm.ok()) {
      return absl::Status(
          comm.status().code(),
          absl::StrCat("InitGroup of rank ", rank, " of ", world, " (group '",
                       request.group_id(), "'): ", comm.status().message()));
    }
    comm_ = std::move(*comm);
  }
  plan_.rank = rank;
  plan_.world = world;
  SetState(State::kGrouped);
  return absl::OkStatus();
}

grpc::Status WorkerService::LoadModel(
    grpc::ServerContext* context, const worker::v1::LoadModelRequest* request,
    grpc::ServerWriter<worker::v1::LoadModelProgress>* writer) {
  if (grpc::Status s = Admit(*context, true); !s.ok()) return s;
  return ToGrpc(DoLoadModel(*request, writer));
}

absl::Status WorkerService::DoLoadModel(
    const worker::v1::LoadModelRequest& request,
    grpc::ServerWriter<worker::v1::LoadModelProgress>* writer) {
  const std::string backend =
      request.backend().empty() ? "cpu" : request.backend();
  if (backend != "cpu" && backend != "cuda") {
    return absl::InvalidArgumentError(absl::StrCat(
        "LoadModel: unknown backend '", backend, "' (cpu or cuda)"));
  }
  if (request.threads() < 0) {
    return absl::InvalidArgumentError("LoadModel: negative threads");
  }
  if (request.model_path().empty()) {
    return absl::InvalidArgumentError("LoadModel: model_path is empty");
  }
  std::lock_guard<std::mutex> engine(engine_mu_);
  TP_RETURN_IF_ERROR(BeginChange(
      "LoadModel", {State::kGrouped, State::kLoaded, State::kReady}));
  const int rank = plan_.rank, world = plan_.world;
  ResetModel();
  SetState(State::kGrouped);
  plan_.rank = rank;
  plan_.world = world;

  const std::string& path = request.model_path();
  Progress(writer, "opening " + path, 0.0f);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat("LoadModel: rank ", rank,
                                            ": model path '", path,
                                            "' does not exist on this worker"));
  }
  absl::StatusOr<std::unique_ptr<ModelWeights>> model = OpenModel(path);
  if (!model.ok()) {
    return absl::Status(
        model.status().code(),
        absl::StrCat("LoadModel: rank ", rank, ": ", model.status().message()));
  }
  absl::StatusOr<TpPlan> plan =
      MakeTpPlan((*model)->config(), world, rank, LayerRowBlock(**model));
  if (!plan.ok()) {
    return absl::Status(plan.status().code(),
                        absl::StrCat("LoadModel: ", plan.status().message()));
  }
  Progress(writer, "validated", 0.5f);
  const int cores =
      static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int threads = request.threads() > 0 ? request.threads() : options_.threads;
  if (threads <= 0) threads = cores;
  absl::StatusOr<std::unique_ptr<Backend>> made =
      MakeBackend(backend, std::min(threads, 4 * cores), options_.cuda_device);
  if (!made.ok()) {
    return absl::Status(
        made.status().code(),
        absl::StrCat("LoadModel: rank ", rank, ": ", made.status().message()));
  }
  model_ = std::move(*model);
  plan_ = *plan;
  backend_ = *std::move(made);
  // GPU ranks exchange activations through host memory over Gloo (works for
  // any number of ranks per GPU); NCCL is the faster path for one rank per
  // GPU (worker/nccl_rendezvous.h; docs/cuda.md).
  staged_comm_.reset();
  if (backend == "cuda" && comm_ != nullptr) {
    staged_comm_ =
        std::make_unique<HostStagedCommunicator>(comm_.get(), backend_.get());
  }
  SetState(State::kLoaded);
  // Weights are viewed in place (or uploaded) when Warmup creates the shard
  // together with its KV cache.
  Progress(writer, "loaded", 1.0f, /*done=*/true,
           RankWeightBytes(*model_, plan_));
  return absl::OkStatus();
}

grpc::Status WorkerService::Warmup(grpc::ServerContext* context,
                                   const worker::v1::WarmupRequest* request,
                                   worker::v1::WarmupResponse* response) {
  if (grpc::Status s = Admit(*context, true); !s.ok()) return s;
  return ToGrpc(DoWarmup(*request, response));
}

absl::Status WorkerService::DoWarmup(const worker::v1::WarmupRequest& request,
                                     worker::v1::WarmupResponse* response) {
  const int64_t block_size = request.block_size();
  const int64_t max_tokens = request.max_step_tokens();
  const int64_t max_seqs = request.max_step_sequences();
  if (block_size < 1 || block_size > kMaxBlockSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("Warmup: block_size ", block_size, " is outside [1, ",
                     kMaxBlockSize, "]"));
  }
  if (max_tokens < 1 || max_tokens > kMaxStepTokens || max_seqs < 1 ||
      max_seqs > kMaxStepSequences) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Warmup: max_step_tokens must be in [1, ", kMaxStepTokens,
        "] and max_step_sequences in [1, ", kMaxStepSequences, "]"));
  }
  std::lock_guard<std::mutex> engine(engine_mu_);
  TP_RETURN_IF_ERROR(BeginChange("Warmup", {State::kLoaded, State::kReady}));
  const auto start = Clock::now();
  shard_.reset();  // Frees the old KV cache before sizing the new one.
  SetState(State::kLoaded);
  const ModelConfig& c = model_->config();
  const int64_t per_block = LlamaShard::KvBytesPerBlock(
      c, plan_, block_size, backend_->KvCacheType());
  const uint64_t budget = request.kv_cache_bytes();
  // Block ids travel as int32.
  const int64_t blocks = static_cast<int64_t>(
      std::min<uint64_t>(budget / static_cast<uint64_t>(per_block),
                         std::numeric_limits<int32_t>::max()));
  if (blocks < 1) {
    return absl::ResourceExhaustedError(
        absl::StrCat("Warmup: a KV cache of ", budget,
                     " bytes holds no block: one block of ", block_size,
                     " tokens takes ", per_block, " bytes on rank ", plan_.rank,
                     "; raise the coordinator's --kv-cache-mb"));
  }
  absl::StatusOr<std::unique_ptr<LlamaShard>> shard = LlamaShard::Create(
      *model_, plan_, backend_.get(),
      staged_comm_ != nullptr ? staged_comm_.get()
                              : static_cast<Communicator*>(comm_.get()),
      blocks, block_size);
  if (!shard.ok()) {
    return absl::Status(shard.status().code(),
                        absl::StrCat("Warmup: rank ", plan_.rank, ": ",
                                     shard.status().message()));
  }

  // One step of the largest size, so every scratch buffer is allocated now
  // rather than during serving. Tokens are spread over sequences as evenly
  // as possible (none longer than the context); blocks are reused modulo
  // the cache (the cache holds nothing yet, garbage is fine).
  const int64_t context = std::max<int64_t>(c.max_positions, 1);
  const int64_t n_seqs = std::max(std::min(max_seqs, max_tokens),
                                  (max_tokens + context - 1) / context);
  StepInput step;
  step.block_offsets.push_back(0);
  int64_t next_block = 0;
  for (int64_t s = 0; s < n_seqs; ++s) {
    const int64_t len = max_tokens / n_seqs + (s < max_tokens % n_seqs ? 1 : 0);
    for (int64_t i = 0; i < len; ++i) {
      step.tokens.push_back(static_cast<int32_t>((s + i) % c.vocab_size));
      step.positions.push_back(static_cast<int32_t>(i));
      step.seq.push_back(static_cast<int32_t>(s));
    }
    for (int64_t b = 0; b < (len + block_size - 1) / block_size; ++b) {
      step.block_table.push_back(static_cast<int32_t>(next_block++ % blocks));
    }
    step.block_offsets.push_back(static_cast<int32_t>(step.block_table.size()));
    step.prompt_len.push_back(static_cast<int32_t>(len));
    if (s < max_seqs) {
      step.logit_tokens.push_back(static_cast<int32_t>(step.tokens.size() - 1));
    }
  }
  std::vector<float> logits;
  absl::Status s = (*shard)->Forward(step, &logits);
  if (!s.ok()) return Broken(s);
  shard_ = std::move(*shard);
  kv_blocks_ = blocks;
  block_size_ = block_size;
  max_step_tokens_ = max_tokens;
  max_step_sequences_ = max_seqs;
  SetState(State::kReady);
  response->set_kv_blocks(blocks);
  response->set_warmup_ms(Ms(start, Clock::now()));
  return absl::OkStatus();
}

grpc::Status WorkerService::Health(grpc::ServerContext* context,
                                   const worker::v1::HealthRequest* /*request*/,
                                   worker::v1::HealthResponse* response) {
  if (grpc::Status s = Admit(*context, false); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  response->set_state(StateName(state_));
  response->set_rank(rank_);
  response->set_world_size(world_);
  response->set_steps(steps_);
  return grpc::Status::OK;
}

grpc::Status WorkerService::Step(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<worker::v1::StepResponse, worker::v1::StepRequest>*
        stream) {
  if (grpc::Status s = Admit(*context, true); !s.ok()) return s;
  uint64_t generation = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (step_open_) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "Step: another Step stream is open; a worker serves "
                          "one at a time");
    }
    if (state_ != State::kReady) {
      return grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          absl::StrCat("Step: the worker is ", StateName(state_),
                       "; steps need InitGroup, LoadModel and Warmup first"));
    }
    step_open_ = true;
    generation = generation_;
  }
  StreamState state;
  worker::v1::StepRequest request;
  grpc::Status result = grpc::Status::OK;
  while (stream->Read(&request)) {
    worker::v1::StepResponse response;
    absl::Status s = RunStep(generation, request, state, &response);
    if (!s.ok()) {
      result = ToGrpc(s);
      break;
    }
    if (!stream->Write(response)) {
      result = grpc::Status(grpc::StatusCode::CANCELLED,
                            "Step: the client went away");
      break;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  step_open_ = false;
  return result;
}

absl::Status WorkerService::RunStep(uint64_t generation,
                                    const worker::v1::StepRequest& request,
                                    StreamState& stream,
                                    worker::v1::StepResponse* response) {
  std::lock_guard<std::mutex> engine(engine_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (generation_ != generation) {
      return absl::AbortedError(
          "Step: the engine was replaced (InitGroup, LoadModel or Warmup) "
          "while this stream was open");
    }
    if (state_ != State::kReady) {
      return absl::FailedPreconditionError(
          absl::StrCat("Step: the worker is ", StateName(state_)));
    }
  }
  const auto start = Clock::now();
  Prepared prepared;
  TP_RETURN_IF_ERROR(PrepareStep(request, stream, &prepared));

  // Valid: apply the request to the stream's sequences.
  for (uint64_t id : request.free_seq_ids()) stream.seqs.erase(id);
  const bool sampler_here = plan_.rank == 0;
  const int32_t vocab = static_cast<int32_t>(model_->config().vocab_size);
  for (const worker::v1::SequenceStep& seq : request.sequences()) {
    if (seq.position() == 0) {
      stream.seqs.erase(seq.seq_id());
      if (seq.has_sampling()) {
        SequenceState& st = stream.seqs[seq.seq_id()];
        st.params = SamplingFromProto(seq.sampling());
        if (sampler_here)
          st.sampler = std::make_unique<Sampler>(st.params, vocab);
      }
    }
    auto it = stream.seqs.find(seq.seq_id());
    if (it == stream.seqs.end()) continue;  // Runs without sampling state.
    // A re-run of earlier positions (recompute) replaces their tokens.
    std::vector<int32_t>& history = it->second.history;
    history.resize(static_cast<size_t>(seq.position()));
    history.insert(history.end(), seq.tokens().begin(), seq.tokens().end());
  }

  std::vector<float> logits;
  absl::Status s = shard_->Forward(prepared.input, &logits);
  if (!s.ok()) return Broken(s);

  response->set_step_id(request.step_id());
  if (sampler_here) {
    for (size_t row = 0; row < prepared.sampled.size(); ++row) {
      const worker::v1::SequenceStep& seq =
          request.sequences(prepared.sampled[row]);
      SequenceState& st = stream.seqs.at(seq.seq_id());
      // The new token's position (SampleAt: the same draw as
      // local_generator.cc's for it).
      const int64_t position =
          static_cast<int64_t>(seq.position()) + seq.tokens_size();
      Sampler::Result r = st.sampler->SampleAt(
          st.params.seed, position,
          absl::MakeSpan(logits.data() + row * static_cast<size_t>(vocab),
                         static_cast<size_t>(vocab)),
          st.history);
      worker::v1::SampledToken* out = response->add_tokens();
      out->set_seq_id(seq.seq_id());
      out->set_token_id(r.token);
      out->set_logprob(r.logprob);
      for (const auto& [id, logprob] : r.top_logprobs) {
        out->add_top_ids(id);
        out->add_top_logprobs(logprob);
      }
    }
  }
  response->set_compute_ms(Ms(start, Clock::now()));
  std::lock_guard<std::mutex> lock(mu_);
  ++steps_;
  return absl::OkStatus();
}

absl::Status WorkerService::PrepareStep(const worker::v1::StepRequest& request,
                                        const StreamState& stream,
                                        Prepared* out) const {
  const ModelConfig& c = model_->config();
  const int64_t n_seqs = request.sequences_size();
  if (n_seqs == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("step ", request.step_id(), ": no sequences"));
  }
  if (n_seqs > max_step_sequences_) {
    return absl::InvalidArgumentError(
        absl::StrCat("step ", request.step_id(), ": ", n_seqs,
                     " sequences exceed Warmup's max_step_sequences of ",
                     max_step_sequences_));
  }
  int64_t n_tokens = 0;
  for (const worker::v1::SequenceStep& seq : request.sequences()) {
    n_tokens += seq.tokens_size();
  }
  if (n_tokens > max_step_tokens_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step ", request.step_id(), ": ", n_tokens,
        " tokens exceed Warmup's max_step_tokens of ", max_step_tokens_));
  }
  const absl::flat_hash_set<uint64_t> freed(request.free_seq_ids().begin(),
                                            request.free_seq_ids().end());
  absl::flat_hash_set<uint64_t> seen;
  StepInput& in = out->input;
  in.tokens.reserve(static_cast<size_t>(n_tokens));
  in.positions.reserve(static_cast<size_t>(n_tokens));
  in.seq.reserve(static_cast<size_t>(n_tokens));
  in.block_offsets.push_back(0);
  for (int i = 0; i < n_seqs; ++i) {
    const worker::v1::SequenceStep& seq = request.sequences(i);
    auto fail = [&](const std::string& what) {
      return absl::InvalidArgumentError(absl::StrCat(
          "step ", request.step_id(), ", sequence ", seq.seq_id(), ": ", what));
    };
    if (!seen.insert(seq.seq_id()).second) {
      return fail("appears twice in the step");
    }
    const int64_t len = seq.tokens_size();
    const int64_t pos = seq.position();
    if (len == 0) return fail("no tokens");
    if (pos < 0 || pos + len > c.max_positions) {
      return fail(absl::StrCat("positions [", pos, ", ", pos + len,
                               ") are outside the context of ",
                               c.max_positions));
    }
    for (int32_t t : seq.tokens()) {
      if (t < 0 || t >= c.vocab_size) {
        return fail(absl::StrCat("token id ", t,
                                 " is outside the vocabulary [0, ",
                                 c.vocab_size, ")"));
      }
    }
    const int64_t needed = (pos + len + block_size_ - 1) / block_size_;
    if (seq.block_table_size() < needed) {
      return fail(absl::StrCat("block table of ", seq.block_table_size(),
                               " blocks cannot hold positions up to ",
                               pos + len, " (needs ", needed, " of ",
                               block_size_, " tokens)"));
    }
    for (int32_t b : seq.block_table()) {
      if (b < 0 || b >= kv_blocks_) {
        return fail(absl::StrCat(
            "block id ", b, " is outside the KV cache [0, ", kv_blocks_, ")"));
      }
    }
    if (in.block_table.size() + seq.block_table_size() >
        static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
      return fail("block tables too large");
    }
    // Sampling state as it will be once the frees and this chunk apply.
    bool has_state = false;
    if (pos == 0) {
      if (seq.has_sampling()) {
        absl::Status s =
            ValidateSamplingParams(SamplingFromProto(seq.sampling()),
                                   static_cast<int32_t>(c.vocab_size));
        if (!s.ok()) return fail(std::string(s.message()));
        has_state = true;
      }
    } else {
      if (seq.has_sampling()) {
        return fail("sampling is accepted on the position-0 chunk only");
      }
      auto it = stream.seqs.find(seq.seq_id());
      if (it != stream.seqs.end() && !freed.contains(seq.seq_id())) {
        has_state = true;
        if (static_cast<size_t>(pos) > it->second.history.size()) {
          return fail(absl::StrCat("position ", pos,
                                   " skips tokens: ", it->second.history.size(),
                                   " were run so far"));
        }
      }
    }
    if (seq.sample() && !has_state) {
      return fail(
          "sample is set but the sequence has no sampler (send `sampling` "
          "with its position-0 chunk)");
    }
    const int32_t index = static_cast<int32_t>(i);
    for (int64_t t = 0; t < len; ++t) {
      in.tokens.push_back(seq.tokens(static_cast<int>(t)));
      in.positions.push_back(static_cast<int32_t>(pos + t));
      in.seq.push_back(index);
    }
    in.block_table.insert(in.block_table.end(), seq.block_table().begin(),
                          seq.block_table().end());
    in.block_offsets.push_back(static_cast<int32_t>(in.block_table.size()));
    in.prompt_len.push_back(std::max(0, seq.prompt_tokens()));
    if (seq.sample()) {
      in.logit_tokens.push_back(static_cast<int32_t>(in.tokens.size() - 1));
      out->sampled.push_back(i);
    }
  }
  return absl::OkStatus();
}

}  // namespace tpserve
