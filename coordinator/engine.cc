#include "coordinator/engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"

namespace tpserve {
namespace {

// The metrics label of how a request ended.
std::string Outcome(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "ok";
    case absl::StatusCode::kCancelled:
      return "cancelled";
    case absl::StatusCode::kDeadlineExceeded:
      return "deadline_exceeded";
    case absl::StatusCode::kInvalidArgument:
      return "invalid_argument";
    case absl::StatusCode::kResourceExhausted:
      return "resource_exhausted";
    case absl::StatusCode::kUnavailable:
      return "unavailable";
    default:
      return "error";
  }
}
using Clock = std::chrono::steady_clock;

}  // namespace

Engine::Engine(std::unique_ptr<StepExecutor> executor, ExecutorFactory rebuild,
               const Tokenizer* tokenizer, EngineOptions options)
    : rebuild_(std::move(rebuild)),
      tokenizer_(tokenizer),
      options_(std::move(options)),
      capacity_tokens_(options_.scheduler.num_blocks *
                       options_.scheduler.block_size),
      executor_(std::move(executor)),
      scheduler_(options_.scheduler) {
  if (options_.metrics != nullptr) options_.metrics->SetGroupState("ready");
  loop_ = std::thread([this] { Loop(); });
  monitor_ = std::thread([this] { Monitor(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  stop_cv_.notify_all();
  // A step in flight or a rebuild ends sooner when its group is broken.
  if (std::shared_ptr<StepExecutor> g = executor()) {
    g->MarkBroken("the coordinator is shutting down");
  }
  monitor_.join();
  loop_.join();
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> ids;
  for (const auto& [id, a] : active_) ids.push_back(id);
  for (uint64_t id : ids) {
    FinishLocked(
        id,
        absl::UnavailableError("the server is shutting down; retry elsewhere"),
        FinishReason::kNone, "");
  }
}

std::shared_ptr<StepExecutor> Engine::executor() const {
  std::lock_guard<std::mutex> lock(executor_mu_);
  return executor_;
}

absl::Status Engine::readiness() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return absl::UnavailableError("the server is shutting down");
  if (!broken_.ok()) return broken_;
  if (!ready_) return absl::UnavailableError(not_ready_why_);
  return absl::OkStatus();
}

void Engine::SetReadyLocked(bool ready, const std::string& why) {
  ready_ = ready;
  not_ready_why_ = why;
  if (options_.on_readiness) options_.on_readiness(ready, why);
}

void Engine::Monitor() {
  int failed_probes = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    stop_cv_.wait_for(lock, options_.health_interval);
    if (stop_) break;
    if (!ready_ || !broken_.ok()) continue;  // Rebuilding or given up.
    lock.unlock();
    std::shared_ptr<StepExecutor> g = executor();
    std::string reason =
        options_.exited_probe ? options_.exited_probe() : std::string();
    if (reason.empty() && g != nullptr) {
      std::string probe = g->Probe(options_.health_deadline);
      failed_probes = probe.empty() ? 0 : failed_probes + 1;
      // One late answer on a busy machine is not a failure; two are.
      if (failed_probes >= 2) reason = probe;
    }
    if (!reason.empty() && g != nullptr) {
      failed_probes = 0;
      TP_LOG(WARNING) << reason;
      g->MarkBroken(reason);
    }
    lock.lock();
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
  if (!s.ok()) {
    if (options_.metrics != nullptr) {
      options_.metrics->RequestFinished(Outcome(s.code()));
    }
    return s;
  }
  generation->set_id(id);
  Active a;
  a.generation = generation;
  a.text = std::make_unique<OutputText>(*tokenizer_, r.prompt, r.stop,
                                        r.render_special);
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

void Engine::RecordRejected(const absl::Status& status) {
  if (options_.metrics != nullptr) {
    options_.metrics->RequestFinished(Outcome(status.code()));
  }
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  EngineStats s = stats_;
  s.waiting = scheduler_.num_waiting();
  s.running = scheduler_.num_running();
  return s;
}

bool Engine::WaitIdle(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_until(lock, deadline,
                             [this] { return active_.empty(); });
}

void Engine::FinishLocked(uint64_t id, absl::Status status, FinishReason reason,
                          std::string matched_stop) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  Active& a = it->second;
  const bool was_running = scheduler_.IsRunning(id);
  scheduler_.Remove(id);
  // The workers hold sampler state only for sequences that have run.
  if (was_running || a.generated > 0) frees_.push_back(id);
  if (status.ok()) a.generation->AppendText(a.text->Finish());
  GenerationUsage usage;
  usage.prompt_tokens =
      static_cast<int32_t>(a.generation->request().prompt.size());
  usage.completion_tokens = a.generated;
  usage.time_to_first_token_ms = std::max(a.ttft_ms, 0.0);
  usage.preemptions = a.preemptions;
  usage.max_step_sequences = a.max_step_sequences;
  if (options_.metrics != nullptr) {
    options_.metrics->RequestFinished(Outcome(status.code()));
  }
  a.generation->Finish(std::move(status), reason, std::move(matched_stop),
                       usage);
  active_.erase(it);
  if (active_.empty()) idle_cv_.notify_all();
}

StepWork Engine::BuildStep(const Scheduler::Step& plan) {
  StepWork req;
  req.step_id = next_step_++;
  req.free_seq_ids = std::move(frees_);
  frees_.clear();
  if (options_.metrics != nullptr && !plan.preempted.empty()) {
    options_.metrics->Preempted(static_cast<int64_t>(plan.preempted.size()));
  }
  for (uint64_t id : plan.preempted) {
    req.free_seq_ids.push_back(id);
    auto it = active_.find(id);
    if (it != active_.end()) ++it->second.preemptions;
    ++stats_.preemptions;
  }
  const int32_t n = static_cast<int32_t>(plan.chunks.size());
  for (const Scheduler::Chunk& c : plan.chunks) {
    auto it = active_.find(c.id);
    if (it == active_.end()) continue;  // Cannot happen: removed ones leave.
    SequenceWork& s = req.sequences.emplace_back();
    s.seq_id = c.id;
    s.tokens = c.tokens;
    s.position = c.position;
    s.block_table = c.block_table;
    s.sample = c.sample;
    s.prompt_tokens =
        static_cast<int32_t>(it->second.generation->request().prompt.size());
    if (c.first_chunk) s.sampling = it->second.generation->request().sampling;
    it->second.max_step_sequences = std::max(it->second.max_step_sequences, n);
  }
  stats_.max_step_sequences = std::max(stats_.max_step_sequences, n);
  return req;
}

void Engine::HandleToken(const SampledToken& t) {
  auto it = active_.find(t.seq_id);
  if (it == active_.end()) return;  // Cancelled while the step ran.
  Active& a = it->second;
  const PreparedRequest& r = a.generation->request();
  ++a.generated;
  ++stats_.tokens_generated;
  const auto now = Clock::now();
  if (a.ttft_ms < 0) {
    a.ttft_ms =
        std::chrono::duration<double, std::milli>(now - a.admitted).count();
    if (options_.metrics != nullptr) {
      options_.metrics->TimeToFirstToken(a.ttft_ms / 1000);
    }
  } else if (options_.metrics != nullptr) {
    options_.metrics->InterTokenLatency(
        std::chrono::duration<double>(now - a.last_token).count());
  }
  a.last_token = now;
  const int32_t token = t.token_id;
  if (std::find(r.stop_ids.begin(), r.stop_ids.end(), token) !=
      r.stop_ids.end()) {
    FinishLocked(t.seq_id, absl::OkStatus(), FinishReason::kStop,
                 tokenizer_->TokenBytes(token, /*render_special=*/true));
    return;
  }
  scheduler_.AppendToken(t.seq_id, token);
  OutputText::Delta delta = a.text->Push(token);
  TokenLogprob lp;
  if (r.logprobs) {
    lp.token_id = token;
    lp.logprob = t.logprob;
    for (size_t i = 0; i < t.top_ids.size() && i < t.top_logprobs.size(); ++i) {
      lp.top.emplace_back(t.top_ids[i], t.top_logprobs[i]);
    }
  }
  a.generation->Append(delta.text, token, r.logprobs ? &lp : nullptr);
  if (delta.stopped) {
    FinishLocked(t.seq_id, absl::OkStatus(), FinishReason::kStop,
                 delta.matched_stop);
  } else if (a.generated >= r.max_tokens) {
    FinishLocked(t.seq_id, absl::OkStatus(), FinishReason::kLength, "");
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
      FinishLocked(id, absl::CancelledError("the request was cancelled"),
                   FinishReason::kNone, "");
    }
    cancels_.clear();
    const auto now = std::chrono::system_clock::now();
    std::vector<uint64_t> expired;
    for (const auto& [id, a] : active_) {
      if (a.generation->deadline() <= now) expired.push_back(id);
    }
    for (uint64_t id : expired) {
      FinishLocked(id,
                   absl::DeadlineExceededError("the request's deadline passed"),
                   FinishReason::kNone, "");
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
    StepWork request = BuildStep(plan);
    lock.unlock();
    std::vector<SampledToken> sampled;
    const auto step_start = Clock::now();
    std::shared_ptr<StepExecutor> g = executor();
    absl::Status s = g != nullptr ? g->Step(request, &sampled)
                                  : absl::UnavailableError("no worker group");
    lock.lock();
    ++stats_.steps;
    if (!s.ok()) {
      Recover(s, lock);
      continue;
    }
    consecutive_failures_ = 0;
    last_success_ = Clock::now();
    if (options_.metrics != nullptr) {
      int prefill = 0, decode = 0;
      for (const Scheduler::Chunk& c : plan.chunks) {
        // A one-token chunk after position 0 is a decode.
        if (c.tokens.size() == 1 && !c.first_chunk) {
          ++decode;
        } else {
          prefill += static_cast<int>(c.tokens.size());
        }
      }
      options_.metrics->Step(
          std::chrono::duration<double>(Clock::now() - step_start).count(),
          static_cast<int>(plan.chunks.size()), prefill, decode);
      options_.metrics->TokensGenerated(static_cast<int>(sampled.size()));
    }
    for (const SampledToken& t : sampled) HandleToken(t);
    if (options_.metrics != nullptr) {
      options_.metrics->SetQueue(
          static_cast<int64_t>(scheduler_.num_waiting()),
          static_cast<int64_t>(scheduler_.num_running()));
      const int64_t free = scheduler_.num_free_blocks();
      options_.metrics->SetKvBlocks(options_.scheduler.num_blocks - free, free);
    }
  }
}

void Engine::Recover(const absl::Status& failure,
                     std::unique_lock<std::mutex>& lock) {
  ++stats_.group_failures;
  ++consecutive_failures_;
  // Every running sequence loses its KV cache with the group; it goes back
  // to the queue with all its tokens and is re-prefilled by the new group.
  scheduler_.ResetAll();
  frees_.clear();
  const std::string why =
      absl::StrCat("recovering from a worker failure: ", failure.message());
  TP_LOG(WARNING) << why;
  SetReadyLocked(false, why);
  if (options_.metrics != nullptr) {
    options_.metrics->GroupFailed();
    options_.metrics->SetGroupState("recovering");
  }
  lock.unlock();
  {
    std::shared_ptr<StepExecutor> old;
    {
      std::lock_guard<std::mutex> g(executor_mu_);
      old = std::move(executor_);
    }
    old.reset();  // Closes the old streams before the workers are replaced.
  }
  absl::Status last = failure;
  const auto started = std::chrono::steady_clock::now();
  // Give up only when failures keep coming (more than max_rebuild_attempts
  // in a row) AND nothing has run for give_up_after: workers killed faster
  // than a rebuild takes are survived; a crash loop is not retried forever.
  const auto keep_trying = [&] {
    return consecutive_failures_ <= options_.max_rebuild_attempts ||
           Clock::now() - last_success_ < options_.give_up_after;
  };
  while (keep_trying()) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) break;
    }
    absl::StatusOr<std::unique_ptr<StepExecutor>> g = rebuild_(++epoch_);
    if (g.ok() && (*g)->kv_blocks() < options_.scheduler.num_blocks) {
      g = absl::ResourceExhaustedError(absl::StrCat(
          "the rebuilt group has ", (*g)->kv_blocks(),
          " KV blocks, fewer than the ", options_.scheduler.num_blocks,
          " the scheduler plans with"));
    }
    if (g.ok()) {
      {
        std::lock_guard<std::mutex> l(executor_mu_);
        executor_ = std::move(*g);
      }
      lock.lock();
      ++stats_.recoveries;
      TP_LOG(INFO) << absl::StrFormat(
          "worker group %d ready after %.1f s; re-prefilling %d "
          "sequences",
          epoch_,
          std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                        started)
              .count(),
          static_cast<int>(scheduler_.num_waiting()));
      SetReadyLocked(true, "");
      if (options_.metrics != nullptr) options_.metrics->SetGroupState("ready");
      return;
    }
    last = g.status();
    TP_LOG(WARNING) << "rebuilding the worker group failed: " << last.message();
    ++consecutive_failures_;
    std::unique_lock<std::mutex> l(mu_);
    stop_cv_.wait_for(l, options_.rebuild_pause, [&] { return stop_; });
  }
  lock.lock();
  if (stop_) return;
  broken_ = absl::UnavailableError(absl::StrCat(
      "the worker group failed ", consecutive_failures_,
      " times in a row with no step completed for ",
      std::chrono::duration_cast<std::chrono::seconds>(Clock::now() -
                                                       last_success_)
          .count(),
      " s, and is no longer rebuilt (last error: ", last.message(),
      "); restart the server"));
  TP_LOG(ERROR) << broken_.message();
  SetReadyLocked(false, std::string(broken_.message()));
  if (options_.metrics != nullptr) options_.metrics->SetGroupState("failed");
  std::vector<uint64_t> ids;
  for (const auto& [id, a] : active_) ids.push_back(id);
  for (uint64_t id : ids) {
    FinishLocked(id, broken_, FinishReason::kNone, "");
  }
  frees_.clear();
}

}  // namespace tpserve
