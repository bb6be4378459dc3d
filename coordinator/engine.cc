#include "coordinator/engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tpserve {
namespace {

namespace wv1 = worker::v1;
using Clock = std::chrono::steady_clock;

void ToProto(const SamplingParams& p, wv1::Sampling* out) {
  out->set_temperature(p.temperature);
  out->set_top_k(p.top_k);
  out->set_top_p(p.top_p);
  out->set_min_p(p.min_p);
  out->set_repetition_penalty(p.repetition_penalty);
  out->set_presence_penalty(p.presence_penalty);
  out->set_frequency_penalty(p.frequency_penalty);
  for (const auto& [id, bias] : p.logit_bias) {
    (*out->mutable_logit_bias())[id] += bias;
  }
  out->set_seed(p.seed);
  out->set_top_logprobs(p.top_logprobs);
}

}  // namespace

Engine::Engine(WorkerGroup* group, const Tokenizer* tokenizer,
               const SchedulerConfig& config)
    : group_(group),
      tokenizer_(tokenizer),
      capacity_tokens_(config.num_blocks * config.block_size),
      scheduler_(config) {
  loop_ = std::thread([this] { Loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  loop_.join();
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> ids;
  for (const auto& [id, a] : active_) ids.push_back(id);
  for (uint64_t id : ids) {
    FinishLocked(id,
                 grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "the server is shutting down; retry elsewhere"),
                 v1::FINISH_REASON_UNSPECIFIED, "");
  }
}

absl::Status Engine::Submit(const std::shared_ptr<Generation>& generation) {
  const PreparedRequest& r = generation->request();
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return absl::UnavailableError("the server is shutting down");
  if (!broken_.ok()) return broken_;
  const uint64_t id = next_id_++;
  absl::Status s = scheduler_.Add(
      id, r.prompt, static_cast<int64_t>(r.prompt.size()) + r.max_tokens);
  if (!s.ok()) return s;
  generation->set_id(id);
  Active a;
  a.generation = generation;
  a.text = std::make_unique<OutputText>(*tokenizer_, r.stop, r.render_special);
  a.admitted = Clock::now();
  active_.emplace(id, std::move(a));
  cv_.notify_all();
  return absl::OkStatus();
}

void Engine::Cancel(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancels_.push_back(id);
  }
  cv_.notify_all();
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  EngineStats s = stats_;
  s.waiting = scheduler_.num_waiting();
  s.running = scheduler_.num_running();
  return s;
}

void Engine::FinishLocked(uint64_t id, grpc::Status status,
                          v1::FinishReason reason, std::string matched_stop) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  Active& a = it->second;
  const bool was_running = scheduler_.IsRunning(id);
  scheduler_.Remove(id);
  // The workers hold sampler state only for sequences that have run.
  if (was_running || a.generated > 0) frees_.push_back(id);
  if (status.ok()) a.generation->AppendText(a.text->Finish());
  v1::Usage usage;
  usage.set_prompt_tokens(
      static_cast<int32_t>(a.generation->request().prompt.size()));
  usage.set_completion_tokens(a.generated);
  usage.set_time_to_first_token_ms(std::max(a.ttft_ms, 0.0));
  usage.set_preemptions(a.preemptions);
  usage.set_max_step_sequences(a.max_step_sequences);
  a.generation->Finish(std::move(status), reason, std::move(matched_stop),
                       usage);
  active_.erase(it);
}

wv1::StepRequest Engine::BuildStep(const Scheduler::Step& plan) {
  wv1::StepRequest req;
  req.set_step_id(next_step_++);
  for (uint64_t id : frees_) req.add_free_seq_ids(id);
  frees_.clear();
  for (uint64_t id : plan.preempted) {
    req.add_free_seq_ids(id);
    auto it = active_.find(id);
    if (it != active_.end()) ++it->second.preemptions;
    ++stats_.preemptions;
  }
  const int32_t n = static_cast<int32_t>(plan.chunks.size());
  for (const Scheduler::Chunk& c : plan.chunks) {
    wv1::SequenceStep* s = req.add_sequences();
    s->set_seq_id(c.id);
    s->mutable_tokens()->Add(c.tokens.begin(), c.tokens.end());
    s->set_position(c.position);
    s->mutable_block_table()->Add(c.block_table.begin(), c.block_table.end());
    s->set_sample(c.sample);
    auto it = active_.find(c.id);
    if (it == active_.end()) continue;  // Cannot happen: removed ones leave.
    if (c.first_chunk) {
      ToProto(it->second.generation->request().sampling, s->mutable_sampling());
    }
    it->second.max_step_sequences = std::max(it->second.max_step_sequences, n);
  }
  stats_.max_step_sequences = std::max(stats_.max_step_sequences, n);
  return req;
}

void Engine::HandleToken(const wv1::SampledToken& t) {
  auto it = active_.find(t.seq_id());
  if (it == active_.end()) return;  // Cancelled while the step ran.
  Active& a = it->second;
  const PreparedRequest& r = a.generation->request();
  ++a.generated;
  ++stats_.tokens_generated;
  if (a.ttft_ms < 0) {
    a.ttft_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - a.admitted)
            .count();
  }
  const int32_t token = t.token_id();
  if (std::find(r.stop_ids.begin(), r.stop_ids.end(), token) !=
      r.stop_ids.end()) {
    FinishLocked(t.seq_id(), grpc::Status::OK, v1::FINISH_REASON_STOP,
                 tokenizer_->TokenBytes(token, /*render_special=*/true));
    return;
  }
  scheduler_.AppendToken(t.seq_id(), token);
  OutputText::Delta delta = a.text->Push(token);
  v1::TokenLogprob lp;
  if (r.logprobs) {
    lp.set_token_id(token);
    lp.set_logprob(t.logprob());
    for (int i = 0; i < t.top_ids_size() && i < t.top_logprobs_size(); ++i) {
      v1::TopLogprob* top = lp.add_top();
      top->set_token_id(t.top_ids(i));
      top->set_logprob(t.top_logprobs(i));
    }
  }
  a.generation->Append(delta.text, token, r.logprobs ? &lp : nullptr);
  if (delta.stopped) {
    FinishLocked(t.seq_id(), grpc::Status::OK, v1::FINISH_REASON_STOP,
                 delta.matched_stop);
  } else if (a.generated >= r.max_tokens) {
    FinishLocked(t.seq_id(), grpc::Status::OK, v1::FINISH_REASON_LENGTH, "");
  }
}

void Engine::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    // Wake at least every 50 ms while work exists so deadlines are noticed
    // even when no step can run.
    cv_.wait_for(lock, std::chrono::milliseconds(50), [&] {
      return stop_ || !cancels_.empty() ||
             (broken_.ok() &&
              scheduler_.num_waiting() + scheduler_.num_running() > 0);
    });
    if (stop_) return;
    for (uint64_t id : cancels_) {
      FinishLocked(id,
                   grpc::Status(grpc::StatusCode::CANCELLED,
                                "the request was cancelled"),
                   v1::FINISH_REASON_UNSPECIFIED, "");
    }
    cancels_.clear();
    const auto now = std::chrono::system_clock::now();
    std::vector<uint64_t> expired;
    for (const auto& [id, a] : active_) {
      if (a.generation->deadline() <= now) expired.push_back(id);
    }
    for (uint64_t id : expired) {
      FinishLocked(id,
                   grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                "the request's deadline passed"),
                   v1::FINISH_REASON_UNSPECIFIED, "");
    }
    if (!broken_.ok()) continue;
    Scheduler::Step plan = scheduler_.Schedule();
    if (plan.empty()) {
      // Preemptions without a step: the workers drop those samplers with
      // the next step that runs.
      for (uint64_t id : plan.preempted) {
        frees_.push_back(id);
        auto it = active_.find(id);
        if (it != active_.end()) ++it->second.preemptions;
        ++stats_.preemptions;
      }
      continue;
    }
    wv1::StepRequest request = BuildStep(plan);
    lock.unlock();
    wv1::StepResponse response;
    absl::Status s = group_->Step(request, &response);
    lock.lock();
    ++stats_.steps;
    if (!s.ok()) {
      broken_ = absl::UnavailableError(absl::StrCat(
          "the worker group failed and is not serving: ", s.message()));
      std::vector<uint64_t> ids;
      for (const auto& [id, a] : active_) ids.push_back(id);
      for (uint64_t id : ids) {
        FinishLocked(id, ToGrpc(broken_), v1::FINISH_REASON_UNSPECIFIED, "");
      }
      frees_.clear();
      continue;
    }
    for (const wv1::SampledToken& t : response.tokens()) HandleToken(t);
  }
}

}  // namespace tpserve
