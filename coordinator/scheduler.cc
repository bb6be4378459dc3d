#include "coordinator/scheduler.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace tpserve {
namespace {

constexpr int64_t kMaxTokens = std::numeric_limits<int32_t>::max();

// Invariants that break only through a scheduler or caller bug abort
// loudly (TP_CHECK) rather than hand one KV block to two sequences.

}  // namespace

absl::Status ValidateSchedulerConfig(const SchedulerConfig& config) {
  if (config.block_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_size must be >= 1, got ", config.block_size));
  }
  if (config.num_blocks < 0 ||
      config.num_blocks > int64_t{std::numeric_limits<int32_t>::max()} + 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_blocks must be in [0, 2^31], got ", config.num_blocks));
  }
  if (config.max_step_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_step_tokens must be >= 1, got ", config.max_step_tokens));
  }
  if (config.max_step_sequences < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_step_sequences must be >= 1, got ", config.max_step_sequences));
  }
  if (config.max_queue < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_queue must be >= 0, got ", config.max_queue));
  }
  return absl::OkStatus();
}

namespace {

const SchedulerConfig& ValidOrDie(const SchedulerConfig& config) {
  const absl::Status s = ValidateSchedulerConfig(config);
  TP_CHECK(s.ok()) << "Scheduler: " << s;
  return config;
}

}  // namespace

Scheduler::Scheduler(SchedulerConfig config)
    : config_(ValidOrDie(config)),
      max_running_(static_cast<size_t>(
          std::min(config.max_step_sequences, config.max_step_tokens))),
      allocator_(config.num_blocks) {}

int64_t Scheduler::BlocksFor(int64_t tokens) const {
  return (tokens + config_.block_size - 1) / config_.block_size;
}

absl::Status Scheduler::Add(uint64_t id, std::vector<int32_t> prompt,
                            int64_t max_total_tokens) {
  if (prompt.empty()) {
    return absl::InvalidArgumentError("the prompt has no tokens");
  }
  const int64_t prompt_size = static_cast<int64_t>(prompt.size());
  if (max_total_tokens < prompt_size || max_total_tokens > kMaxTokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_total_tokens ", max_total_tokens, " must be in [",
                     prompt_size, " (the prompt), ", kMaxTokens, "]"));
  }
  if (BlocksFor(max_total_tokens) > config_.num_blocks) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the sequence can reach ", max_total_tokens, " tokens (",
        BlocksFor(max_total_tokens), " KV blocks of ", config_.block_size,
        ") but the whole KV cache holds ", config_.num_blocks, " blocks (",
        config_.num_blocks * config_.block_size,
        " tokens): shorten the prompt or the maximum output"));
  }
  if (seqs_.contains(id)) {
    return absl::AlreadyExistsError(
        absl::StrCat("sequence ", id, " is already scheduled"));
  }
  if (waiting_.size() >= static_cast<size_t>(config_.max_queue)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "admission queue full (", waiting_.size(), " waiting); retry later"));
  }
  auto seq = std::make_unique<Sequence>();
  seq->id = id;
  seq->arrival = next_arrival_++;
  seq->tokens = std::move(prompt);
  seq->max_total_tokens = max_total_tokens;
  // The newest sequence of all: the back keeps waiting_ sorted by arrival.
  waiting_.push_back(seq.get());
  seqs_.emplace(id, std::move(seq));
  return absl::OkStatus();
}

void Scheduler::Unlink(Sequence* seq) {
  if (seq->running) {
    running_.erase(std::find(running_.begin(), running_.end(), seq));
  } else {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), seq));
  }
}

void Scheduler::Remove(uint64_t id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  Sequence* seq = it->second.get();
  allocator_.Free(seq->blocks);
  Unlink(seq);
  seqs_.erase(it);
}

void Scheduler::AppendToken(uint64_t id, int32_t token) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  Sequence& seq = *it->second;
  TP_CHECK(static_cast<int64_t>(seq.tokens.size()) < seq.max_total_tokens)
      << "Scheduler: AppendToken beyond max_total_tokens "
      << seq.max_total_tokens << " for sequence " << id;
  seq.tokens.push_back(token);
}

void Scheduler::PlanChunk(Sequence* seq, int32_t n, Plan* plan) {
  seq->planned = n;
  plan->budget -= n;
  plan->seqs.push_back(seq);
}

Scheduler::Sequence* Scheduler::PreemptNewest(Plan* plan) {
  Sequence* victim = running_.back();
  running_.pop_back();
  if (victim->planned > 0) {
    plan->budget += victim->planned;
    victim->planned = 0;
    plan->seqs.erase(std::find(plan->seqs.begin(), plan->seqs.end(), victim));
  }
  allocator_.Free(victim->blocks);
  victim->blocks.clear();
  victim->num_computed = 0;
  victim->running = false;
  ++victim->preemptions;
  // Newer than every other running sequence, older than every waiting one.
  waiting_.push_front(victim);
  plan->step->preempted.push_back(victim->id);
  return victim;
}

void Scheduler::ScheduleDecodes(Plan* plan) {
  // Index loop: preemption pops running_.back(), which is never behind i.
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence* seq = running_[i];
    if (static_cast<int64_t>(seq->tokens.size()) - seq->num_computed != 1) {
      continue;
    }
    if (plan->budget == 0 ||
        plan->seqs.size() >= static_cast<size_t>(config_.max_step_sequences)) {
      return;  // Unreachable while running_.size() <= max_running_.
    }
    const int64_t needed = BlocksFor(seq->num_computed + 1) -
                           static_cast<int64_t>(seq->blocks.size());
    bool preempted_self = false;
    while (!allocator_.Allocate(needed, &seq->blocks)) {
      if (PreemptNewest(plan) == seq) {
        preempted_self = true;
        break;
      }
    }
    if (preempted_self) return;  // seq was the last running sequence.
    PlanChunk(seq, 1, plan);
  }
}

void Scheduler::ScheduleContinuations(Plan* plan) {
  const int64_t block_size = config_.block_size;
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence* seq = running_[i];
    const int64_t uncomputed =
        static_cast<int64_t>(seq->tokens.size()) - seq->num_computed;
    if (uncomputed <= 1) continue;  // Decodes (planned or not) and idle ones.
    if (plan->budget == 0 ||
        plan->seqs.size() >= static_cast<size_t>(config_.max_step_sequences)) {
      return;
    }
    int64_t n = std::min<int64_t>(uncomputed, plan->budget);
    // Tokens the sequence's blocks plus every free block could hold.
    auto coverable = [&] {
      return (static_cast<int64_t>(seq->blocks.size()) +
              allocator_.num_free()) *
                 block_size -
             seq->num_computed;
    };
    while (coverable() <= 0 && running_.back() != seq) {
      PreemptNewest(plan);
    }
    // The newest sequence does not preempt itself here: it keeps its
    // blocks, and older ones take them by preemption when they need them.
    if (coverable() <= 0) continue;
    n = std::min(n, coverable());
    const int64_t needed = BlocksFor(seq->num_computed + n) -
                           static_cast<int64_t>(seq->blocks.size());
    const bool allocated = allocator_.Allocate(needed, &seq->blocks);
    // coverable() counted them.
    TP_CHECK(allocated) << "Scheduler: continuation blocks vanished";
    PlanChunk(seq, static_cast<int32_t>(n), plan);
  }
}

void Scheduler::Admit(Plan* plan) {
  while (!waiting_.empty() && plan->budget > 0 &&
         plan->seqs.size() < static_cast<size_t>(config_.max_step_sequences) &&
         running_.size() < max_running_) {
    Sequence* seq = waiting_.front();
    const int64_t n = std::min<int64_t>(
        static_cast<int64_t>(seq->tokens.size()), plan->budget);
    // All-or-nothing: a shortened first chunk would only be preempted again.
    if (!allocator_.Allocate(BlocksFor(n), &seq->blocks)) return;
    waiting_.pop_front();
    seq->running = true;
    running_.push_back(seq);  // Older than every waiting one: stays sorted.
    PlanChunk(seq, static_cast<int32_t>(n), plan);
  }
}

Scheduler::Step Scheduler::Schedule() {
  Step step;
  Plan plan;
  plan.budget = config_.max_step_tokens;
  plan.step = &step;
  ScheduleDecodes(&plan);
  ScheduleContinuations(&plan);
  if (step.preempted.empty()) Admit(&plan);

  step.chunks.reserve(plan.seqs.size());
  for (Sequence* seq : plan.seqs) {
    const int64_t position = seq->num_computed;
    const int64_t end = position + seq->planned;
    Chunk chunk;
    chunk.id = seq->id;
    chunk.position = static_cast<int32_t>(position);
    chunk.tokens.assign(seq->tokens.begin() + position,
                        seq->tokens.begin() + end);
    chunk.block_table = seq->blocks;
    chunk.sample = end == static_cast<int64_t>(seq->tokens.size());
    chunk.first_chunk = position == 0;
    step.chunks.push_back(std::move(chunk));
    seq->num_computed = end;
    seq->planned = 0;
  }
#ifndef NDEBUG
  const absl::Status invariants = CheckInvariants();
  TP_CHECK(invariants.ok()) << "Scheduler: " << invariants;
#endif
  return step;
}

void Scheduler::ResetAll() {
  // Pushing the newest first leaves them at the front in arrival order.
  for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
    Sequence* seq = *it;
    allocator_.Free(seq->blocks);
    seq->blocks.clear();
    seq->num_computed = 0;
    seq->running = false;
    waiting_.push_front(seq);
  }
  running_.clear();
}

int32_t Scheduler::preemptions(uint64_t id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? 0 : it->second->preemptions;
}

bool Scheduler::IsRunning(uint64_t id) const {
  auto it = seqs_.find(id);
  return it != seqs_.end() && it->second->running;
}

absl::Status Scheduler::CheckInvariants() const {
  if (running_.size() + waiting_.size() != seqs_.size()) {
    return absl::InternalError(
        absl::StrCat(running_.size(), " running + ", waiting_.size(),
                     " waiting != ", seqs_.size(), " sequences"));
  }
  if (running_.size() > max_running_) {
    return absl::InternalError(absl::StrCat(
        running_.size(), " running sequences, limit ", max_running_));
  }
  std::vector<bool> owned(static_cast<size_t>(config_.num_blocks), false);
  int64_t used = 0;
  const Sequence* previous = nullptr;
  for (const Sequence* seq : running_) {
    const std::string name = absl::StrCat("running sequence ", seq->id);
    if (!seq->running || seq->planned != 0) {
      return absl::InternalError(absl::StrCat(name, ": bad flags"));
    }
    if (previous != nullptr && previous->arrival >= seq->arrival) {
      return absl::InternalError(absl::StrCat(name, ": out of arrival order"));
    }
    previous = seq;
    if (seq->num_computed < 1 ||
        seq->num_computed > static_cast<int64_t>(seq->tokens.size())) {
      return absl::InternalError(absl::StrCat(name, ": num_computed ",
                                              seq->num_computed, " of ",
                                              seq->tokens.size(), " tokens"));
    }
    if (static_cast<int64_t>(seq->blocks.size()) !=
        BlocksFor(seq->num_computed)) {
      return absl::InternalError(absl::StrCat(name, ": ", seq->blocks.size(),
                                              " blocks for ", seq->num_computed,
                                              " computed tokens"));
    }
    for (int32_t block : seq->blocks) {
      if (block < 0 || block >= config_.num_blocks ||
          owned[static_cast<size_t>(block)] || allocator_.IsFree(block)) {
        return absl::InternalError(absl::StrCat(
            name, ": block ", block, " is out of range, shared or free"));
      }
      owned[static_cast<size_t>(block)] = true;
      ++used;
    }
  }
  for (const Sequence* seq : waiting_) {
    const std::string name = absl::StrCat("waiting sequence ", seq->id);
    if (seq->running || seq->planned != 0 || seq->num_computed != 0 ||
        !seq->blocks.empty()) {
      return absl::InternalError(absl::StrCat(name, ": holds KV state"));
    }
    // The first waiting one is also compared with the newest running one.
    if (previous != nullptr && previous->arrival >= seq->arrival) {
      return absl::InternalError(absl::StrCat(name, ": out of arrival order"));
    }
    previous = seq;
  }
  if (used + allocator_.num_free() != config_.num_blocks) {
    return absl::InternalError(
        absl::StrCat(used, " used + ", allocator_.num_free(),
                     " free != ", config_.num_blocks, " blocks"));
  }
  return absl::OkStatus();
}

}  // namespace tpserve
