// The coordinator's continuous-batching scheduler: a pure policy object (no
// RPC, no threads, no clock). The engine calls Add / Remove / AppendToken as
// requests arrive, finish and sample, and Schedule() once per step; it sends
// the returned chunks to every worker rank.
//
// State of a sequence: its tokens (prompt + generated, all known to the
// coordinator), num_computed (a prefix of the tokens whose KV is in the
// cache), the KV blocks covering that prefix, its arrival order (the order
// of Add), and how often it was preempted. A sequence is either waiting (no
// blocks, num_computed == 0) or running (blocks cover num_computed >= 1).
//
// Policy of one Schedule() call (the budget starts at max_step_tokens):
//  1. Decodes. Every running sequence with exactly one uncomputed token (the
//     one just sampled and appended), oldest first, gets a one-token chunk.
//     If the token starts a new block and no block is free, the NEWEST
//     running sequence is preempted: its blocks are freed, num_computed = 0,
//     and it goes back to the front of the waiting queue. That repeats until
//     the block is found or the asking sequence itself was the newest (then
//     it is the one preempted and does not run). A sequence is never failed
//     for lack of blocks: preempted ones are recomputed later.
//  2. Prefill continuations. Running sequences with more than one uncomputed
//     token (partially prefilled by chunking, oldest first) get a chunk of
//     min(uncomputed, remaining budget) tokens. When the free blocks cannot
//     cover that chunk it is shortened to what they cover; when they cannot
//     cover even one token, the newest running sequence is preempted, as in
//     1 (and when the asking sequence is itself the newest, it keeps its
//     blocks and waits for a later step). A chunk planned in 1 for a
//     preempted sequence is dropped and its budget returned. (With one
//     AppendToken per sampled token, only the newest running sequence can
//     be mid-prefill, so this preemption needs several tokens appended at
//     once; it is there so that no order of calls can deadlock.)
//  3. Admission, only when this call preempted nothing (what was just freed
//     went to the older sequences that needed it; admitting would only churn).
//     Waiting sequences, strictly FCFS, each get a first chunk of
//     min(all its tokens, remaining budget) and the blocks covering it. The
//     first one whose chunk does not fit stops admission (head of line: no
//     skipping ahead, and no preempting running sequences to admit new ones).
//     A preempted or reset sequence is recomputed from all its tokens
//     (prompt + generated), so its "prompt" is all of them.
// A step never exceeds max_step_tokens tokens (a decode counts 1) or
// max_step_sequences chunks, and at most min(max_step_sequences,
// max_step_tokens) sequences run at once, so every running sequence fits in
// one step and the oldest always gets budget.
//
// Ordering invariant: every waiting sequence arrived after every running one
// (admission is FCFS and preemption takes the newest), so both the running
// list and the waiting queue are sorted by arrival, and a preempted sequence
// goes to the front of the waiting queue.
//
// Liveness: Add rejects a sequence whose max_total_tokens cannot fit in the
// whole cache, so the oldest running sequence can always get its blocks by
// preempting newer ones and never preempts itself; it therefore progresses
// every step until it finishes, then the next oldest does: no deadlock and
// no starvation (at the price of recompute when the cache is oversubscribed;
// there is no watermark).
//
// Not thread-safe: the engine serializes all calls.
#ifndef TPSERVE_COORDINATOR_SCHEDULER_H_
#define TPSERVE_COORDINATOR_SCHEDULER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "coordinator/block_allocator.h"

namespace tpserve {

struct SchedulerConfig {
  int32_t block_size = 16;          // Tokens per KV block.
  int64_t num_blocks = 0;           // KV capacity (from the workers' Warmup).
  int32_t max_step_tokens = 512;    // Token budget of one step.
  int32_t max_step_sequences = 64;  // Sequences in one step.
  int32_t max_queue = 256;  // Waiting requests; beyond: ResourceExhausted.
};

// InvalidArgument naming the field when a value is out of range (block_size,
// max_step_tokens, max_step_sequences >= 1; 0 <= num_blocks <= 2^31;
// max_queue >= 0). Scheduler's constructor aborts on such a config: callers
// that take these values from flags validate first.
absl::Status ValidateSchedulerConfig(const SchedulerConfig& config);

class Scheduler {
 public:
  explicit Scheduler(SchedulerConfig config);

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a new sequence with its prompt tokens. `max_total_tokens` is
  // prompt + max generated tokens. Errors, in this order:
  //  - InvalidArgument: empty prompt, max_total_tokens < prompt size or
  //    above 2^31-1, or ceil(max_total_tokens / block_size) > num_blocks
  //    (could never fit in the whole KV cache);
  //  - AlreadyExists: `id` is already queued or running (an engine bug);
  //  - ResourceExhausted: max_queue sequences are waiting (preempted and
  //    reset ones included), answered at once.
  absl::Status Add(uint64_t id, std::vector<int32_t> prompt,
                   int64_t max_total_tokens);
  // Finished or cancelled: frees its blocks and forgets it, waiting or
  // running. Unknown id: no-op.
  void Remove(uint64_t id);
  // The engine accepted a sampled token for `id` (its KV is not computed
  // yet; it is fed next step). Unknown id: no-op (removed meanwhile). The
  // engine must not append beyond max_total_tokens tokens: that would break
  // the liveness argument above, so it aborts.
  void AppendToken(uint64_t id, int32_t token);

  struct Chunk {
    uint64_t id;
    int32_t position;                  // Of the first token of the chunk.
    std::vector<int32_t> tokens;       // Tokens to run this step.
    std::vector<int32_t> block_table;  // All blocks of the sequence, covering
                                       // [0, position + tokens.size()).
    bool sample;       // Reaches the sequence's last known token: sample one.
    bool first_chunk;  // position == 0 (worker (re)starts the sampler).
  };
  struct Step {
    // Decodes first, then prefill continuations, then admissions; at most
    // one chunk per sequence.
    std::vector<Chunk> chunks;
    // Ids preempted by this call (blocks freed, back to waiting); none of
    // them has a chunk in `chunks`.
    std::vector<uint64_t> preempted;
    bool empty() const { return chunks.empty(); }
  };
  // Plans the next step (policy above) and marks its tokens as computed:
  // the engine either runs the step or calls ResetAll after a failure. A
  // running sequence whose tokens are all computed (sampled, but neither
  // AppendToken nor Remove called yet) is skipped.
  Step Schedule();

  // The worker group was lost: every running sequence loses its KV
  // (num_computed = 0, blocks freed) and goes back to the front of the
  // waiting queue in arrival order, keeping its tokens (prompt + generated)
  // so it is recomputed. Waiting ones stay behind them. Not a preemption
  // (preemptions() does not count it).
  void ResetAll();

  // Introspection for tests, metrics and the engine.
  size_t num_waiting() const { return waiting_.size(); }
  size_t num_running() const { return running_.size(); }
  int64_t num_free_blocks() const { return allocator_.num_free(); }
  int32_t preemptions(uint64_t id) const;  // 0 if unknown.
  bool IsRunning(uint64_t id) const;
  const SchedulerConfig& config() const { return config_; }

  // Internal error describing the first broken invariant, if any: running
  // sequences' blocks are disjoint, allocated, and exactly cover
  // num_computed (>= 1); waiting ones hold none; free + used == num_blocks;
  // both lists sorted by arrival, every waiting one newer than every running
  // one. O(sequences + blocks). Schedule() aborts on a violation in debug
  // builds (without NDEBUG); tests call it after every operation.
  absl::Status CheckInvariants() const;

 private:
  struct Sequence {
    uint64_t id = 0;
    uint64_t arrival = 0;  // Order of Add; smaller = older.
    std::vector<int32_t> tokens;
    int64_t max_total_tokens = 0;
    int64_t num_computed = 0;
    std::vector<int32_t> blocks;
    int32_t preemptions = 0;
    bool running = false;
    // Tokens planned for the step being built by Schedule() (0 = none).
    int32_t planned = 0;
  };
  // What Schedule() has planned so far: chunks are only materialized (and
  // num_computed advanced) once nothing can be preempted any more.
  struct Plan {
    std::vector<Sequence*> seqs;
    int32_t budget = 0;  // Tokens left.
    Step* step = nullptr;
  };

  int64_t BlocksFor(int64_t tokens) const;
  // Adds `n` tokens of `seq` to the plan; its blocks already cover them.
  void PlanChunk(Sequence* seq, int32_t n, Plan* plan);
  // Preempts running_.back() (dropping its planned chunk, if any) and
  // returns it.
  Sequence* PreemptNewest(Plan* plan);
  // Phases 1-3 of the policy; phase 1 and 2 may preempt.
  void ScheduleDecodes(Plan* plan);
  void ScheduleContinuations(Plan* plan);
  void Admit(Plan* plan);
  // Removes `seq` from running_ or waiting_ (not from seqs_).
  void Unlink(Sequence* seq);

  const SchedulerConfig config_;
  // min(max_step_sequences, max_step_tokens).
  const size_t max_running_;
  BlockAllocator allocator_;
  uint64_t next_arrival_ = 0;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Sequence>> seqs_;
  std::vector<Sequence*> running_;  // Sorted by arrival (oldest first).
  std::deque<Sequence*> waiting_;   // Sorted by arrival (oldest first).
};

}  // namespace tpserve

#endif  // TPSERVE_COORDINATOR_SCHEDULER_H_
