#include "coordinator/worker_group.h"

#include <algorithm>
#include <future>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/sampling_proto.h"

namespace tpserve {
namespace {

namespace wv1 = worker::v1;
using Clock = std::chrono::steady_clock;

void SetDeadline(grpc::ClientContext* ctx, std::chrono::milliseconds d) {
  ctx->set_deadline(std::chrono::system_clock::now() + d);
}

}  // namespace

WorkerGroup::WorkerGroup(const WorkerGroupOptions& options)
    : options_(options) {}

WorkerGroup::~WorkerGroup() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  for (Rank& r : ranks_) {
    if (r.step_stream == nullptr) continue;
    // Closing our side ends the worker's Step loop; a broken stream is
    // cancelled instead of waiting on a peer that may be gone.
    if (broken()) {
      r.step_context->TryCancel();
    } else {
      r.step_stream->WritesDone();
    }
    r.step_stream->Finish().ok();
  }
}

bool WorkerGroup::broken() const {
  std::lock_guard<std::mutex> lock(mu_);
  return broken_;
}

void WorkerGroup::MarkBroken(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (broken_) return;
  broken_ = true;
  broken_reason_ = reason;
  // Unblocks a Step waiting on a rank that will never answer.
  for (Rank& r : ranks_) {
    if (r.step_context != nullptr) r.step_context->TryCancel();
  }
}

std::string WorkerGroup::Probe(std::chrono::milliseconds deadline) const {
  for (size_t rank = 0; rank < ranks_.size(); ++rank) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, deadline);
    wv1::HealthResponse resp;
    grpc::Status s =
        ranks_[rank].stub->Health(&ctx, wv1::HealthRequest(), &resp);
    if (!s.ok()) {
      return absl::StrCat(
          "rank ", rank, " (", ranks_[rank].address,
          ") did not answer its health probe: ", s.error_message());
    }
    if (resp.state() == "broken") {
      return absl::StrCat("rank ", rank, " (", ranks_[rank].address,
                          ") reports it is broken");
    }
  }
  return "";
}

absl::StatusOr<std::unique_ptr<WorkerGroup>> WorkerGroup::Start(
    const WorkerGroupOptions& options, const LoadProgressFn& progress) {
  if (options.addresses.empty()) {
    return absl::InvalidArgumentError("a worker group needs at least 1 worker");
  }
  std::unique_ptr<WorkerGroup> group(new WorkerGroup(options));
  TP_RETURN_IF_ERROR(group->Connect());
  TP_RETURN_IF_ERROR(group->InitGroup());
  TP_RETURN_IF_ERROR(group->Load(progress));
  TP_RETURN_IF_ERROR(group->Warmup());
  TP_RETURN_IF_ERROR(group->OpenStepStreams());
  group->watchdog_ = std::thread([g = group.get()] { g->Watchdog(); });
  return group;
}

absl::Status WorkerGroup::Connect() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  for (const std::string& address : options_.addresses) {
    Rank r;
    r.address = address;
    auto channel = SecureChannel(address, options_.security,
                                 {{"x-tpserve-group-key", group_key_}}, args);
    r.stub = wv1::Worker::NewStub(channel);
    grpc::ClientContext ctx;
    SetDeadline(&ctx, options_.connect_timeout);
    ctx.set_wait_for_ready(true);  // The worker may still be starting.
    wv1::InfoResponse info;
    grpc::Status s = r.stub->Info(&ctx, wv1::InfoRequest(), &info);
    if (!s.ok()) {
      return absl::UnavailableError(absl::StrCat(
          "worker ", address, " did not answer Info: ", s.error_message(),
          " (is tpserve-worker running there?)"));
    }
    ranks_.push_back(std::move(r));
  }
  return absl::OkStatus();
}

absl::Status WorkerGroup::InitGroup() {
  // Every rank blocks in InitGroup until all have joined, so the calls must
  // be in flight together.
  const int world = world_size();
  std::vector<std::future<grpc::Status>> calls;
  for (int rank = 0; rank < world; ++rank) {
    calls.push_back(std::async(std::launch::async, [this, rank, world] {
      wv1::InitGroupRequest req;
      req.set_rank(rank);
      req.set_world_size(world);
      req.set_rendezvous_address(options_.rendezvous_address);
      req.set_group_id(options_.group_id);
      req.set_rendezvous_tls(options_.rendezvous_tls);
      req.set_timeout_ms(
          static_cast<int32_t>(options_.collective_timeout.count()));
      grpc::ClientContext ctx;
      SetDeadline(&ctx, options_.connect_timeout);
      wv1::InitGroupResponse resp;
      return ranks_[rank].stub->InitGroup(&ctx, req, &resp);
    }));
  }
  absl::Status first;
  for (int rank = 0; rank < world; ++rank) {
    grpc::Status s = calls[rank].get();
    if (!s.ok() && first.ok()) {
      first = absl::Status(
          FromGrpc(s).code(),
          absl::StrCat("InitGroup on rank ", rank, " (", ranks_[rank].address,
                       "): ", s.error_message()));
    }
  }
  return first;
}

absl::Status WorkerGroup::Load(const LoadProgressFn& progress) {
  const int world = world_size();
  std::mutex progress_mu;
  std::vector<std::future<absl::Status>> calls;
  for (int rank = 0; rank < world; ++rank) {
    calls.push_back(std::async(std::launch::async, [&, rank]() -> absl::Status {
      wv1::LoadModelRequest req;
      req.set_model_path(options_.model_path);
      req.set_backend(options_.backend);
      req.set_threads(options_.threads);
      grpc::ClientContext ctx;
      SetDeadline(&ctx, options_.load_timeout);
      auto reader = ranks_[rank].stub->LoadModel(&ctx, req);
      wv1::LoadModelProgress p;
      bool done = false;
      while (reader->Read(&p)) {
        done = done || p.done();
        if (progress) {
          std::lock_guard<std::mutex> lock(progress_mu);
          progress(rank, p);
        }
      }
      grpc::Status s = reader->Finish();
      if (!s.ok()) {
        return absl::Status(FromGrpc(s).code(),
                            absl::StrCat("loading the model on rank ", rank,
                                         ": ", s.error_message()));
      }
      if (!done) {
        return absl::InternalError(absl::StrCat(
            "rank ", rank, " ended LoadModel without reporting done"));
      }
      return absl::OkStatus();
    }));
  }
  absl::Status first;
  for (auto& c : calls) {
    absl::Status s = c.get();
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

absl::Status WorkerGroup::Warmup() {
  const int world = world_size();
  std::vector<std::future<absl::StatusOr<int64_t>>> calls;
  for (int rank = 0; rank < world; ++rank) {
    calls.push_back(std::async(
        std::launch::async, [this, rank]() -> absl::StatusOr<int64_t> {
          wv1::WarmupRequest req;
          req.set_block_size(options_.block_size);
          req.set_kv_cache_bytes(options_.kv_cache_bytes);
          req.set_max_step_tokens(options_.max_step_tokens);
          req.set_max_step_sequences(options_.max_step_sequences);
          grpc::ClientContext ctx;
          SetDeadline(&ctx, options_.load_timeout);
          wv1::WarmupResponse resp;
          grpc::Status s = ranks_[rank].stub->Warmup(&ctx, req, &resp);
          if (!s.ok()) {
            return absl::Status(
                FromGrpc(s).code(),
                absl::StrCat("warmup on rank ", rank, ": ", s.error_message()));
          }
          return resp.kv_blocks();
        }));
  }
  absl::Status first;
  int64_t blocks = -1;
  for (auto& c : calls) {
    absl::StatusOr<int64_t> b = c.get();
    if (!b.ok()) {
      if (first.ok()) first = b.status();
      continue;
    }
    blocks = blocks < 0 ? *b : std::min(blocks, *b);
  }
  TP_RETURN_IF_ERROR(first);
  if (blocks <= 0) {
    return absl::ResourceExhaustedError(
        "the workers have no room for a KV cache; raise --kv-cache-bytes");
  }
  kv_blocks_ = blocks;
  return absl::OkStatus();
}

absl::Status WorkerGroup::OpenStepStreams() {
  for (Rank& r : ranks_) {
    r.step_context = std::make_unique<grpc::ClientContext>();
    r.step_stream = r.stub->Step(r.step_context.get());
    if (r.step_stream == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("could not open the step stream to ", r.address));
    }
  }
  return absl::OkStatus();
}

absl::Status WorkerGroup::Break(int rank, const std::string& what) {
  std::string reason;
  {
    std::lock_guard<std::mutex> lock(mu_);
    broken_ = true;
    step_running_ = false;
    reason = broken_reason_;
  }
  grpc::Status s = grpc::Status::OK;
  Rank& r = ranks_[rank];
  // The stream has failed, so Finish returns at once with the rank's own
  // error (cancelling first would hide it behind CANCELLED).
  s = r.step_stream->Finish();
  r.step_stream.reset();
  // The other ranks are stuck in (or will fail) the collective; cancel them
  // too so nothing waits on a dead peer.
  for (Rank& other : ranks_) {
    if (other.step_context != nullptr) other.step_context->TryCancel();
  }
  // A known cause (watchdog, health monitor) says more than the CANCELLED
  // the stream ended with.
  if (!reason.empty()) {
    return absl::UnavailableError(
        absl::StrCat("worker group broken: ", reason));
  }
  return absl::UnavailableError(
      absl::StrCat("worker group broken: rank ", rank, " (", r.address, ") ",
                   what, s.ok() ? "" : absl::StrCat(": ", s.error_message())));
}

absl::Status WorkerGroup::Step(const StepWork& step,
                               std::vector<SampledToken>* sampled) {
  wv1::StepRequest request;
  request.set_step_id(step.step_id);
  request.mutable_free_seq_ids()->Add(step.free_seq_ids.begin(),
                                      step.free_seq_ids.end());
  for (const SequenceWork& w : step.sequences) {
    wv1::SequenceStep* s = request.add_sequences();
    s->set_seq_id(w.seq_id);
    s->mutable_tokens()->Add(w.tokens.begin(), w.tokens.end());
    s->set_position(w.position);
    s->mutable_block_table()->Add(w.block_table.begin(), w.block_table.end());
    s->set_sample(w.sample);
    s->set_prompt_tokens(w.prompt_tokens);
    if (w.sampling.has_value()) {
      SamplingToProto(*w.sampling, s->mutable_sampling());
    }
  }
  wv1::StepResponse response;
  TP_RETURN_IF_ERROR(StepProto(request, &response));
  sampled->clear();
  sampled->reserve(response.tokens_size());
  for (const wv1::SampledToken& t : response.tokens()) {
    SampledToken& out = sampled->emplace_back();
    out.seq_id = t.seq_id();
    out.token_id = t.token_id();
    out.logprob = t.logprob();
    out.top_ids.assign(t.top_ids().begin(), t.top_ids().end());
    out.top_logprobs.assign(t.top_logprobs().begin(), t.top_logprobs().end());
  }
  return absl::OkStatus();
}

absl::Status WorkerGroup::StepProto(const wv1::StepRequest& request,
                                    wv1::StepResponse* rank0) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (broken_) {
      return absl::UnavailableError(
          absl::StrCat("worker group broken: ", broken_reason_));
    }
    step_running_ = true;
    step_deadline_ = Clock::now() + options_.step_timeout;
  }
  cv_.notify_all();
  for (int rank = 0; rank < world_size(); ++rank) {
    if (!ranks_[rank].step_stream->Write(request)) {
      return Break(rank, "closed its step stream");
    }
  }
  wv1::StepResponse other;
  for (int rank = 0; rank < world_size(); ++rank) {
    wv1::StepResponse* resp = rank == 0 ? rank0 : &other;
    if (!ranks_[rank].step_stream->Read(resp)) {
      return Break(rank, "failed the step");
    }
    if (resp->step_id() != request.step_id()) {
      return Break(rank, absl::StrCat("answered step ", resp->step_id(),
                                      " to step ", request.step_id()));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  step_running_ = false;
  return absl::OkStatus();
}

void WorkerGroup::Watchdog() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (!step_running_) {
      cv_.wait(lock);
      continue;
    }
    const auto deadline = step_deadline_;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout &&
        step_running_ && step_deadline_ == deadline && !stopping_) {
      // A hung rank: cancelling the streams makes the blocked Read fail, so
      // Step returns an error instead of hanging forever.
      broken_reason_ =
          absl::StrCat("a step took longer than ",
                       options_.step_timeout.count(), " ms (a rank hangs)");
      for (Rank& r : ranks_) {
        if (r.step_context != nullptr) r.step_context->TryCancel();
      }
      step_running_ = false;
    }
  }
}

}  // namespace tpserve
