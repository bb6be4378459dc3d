// Scheduler and BlockAllocator: the batching policy as tables of operations
// with the expected shape of every step, a few explicit scenarios (recompute
// contents, error messages, config validation), and a randomized stress run
// that checks every step against an independent model of the sequences.
#include "coordinator/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/block_allocator.h"

namespace tpserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// ---- BlockAllocator ----

TEST(BlockAllocatorTest, AllocatesAllOrNothing) {
  BlockAllocator allocator(4);
  std::vector<int32_t> blocks;
  ASSERT_TRUE(allocator.Allocate(3, &blocks));
  EXPECT_THAT(blocks, ElementsAre(0, 1, 2));
  EXPECT_EQ(allocator.num_free(), 1);
  EXPECT_FALSE(allocator.Allocate(2, &blocks));  // Only one is free.
  EXPECT_EQ(blocks.size(), 3u);
  EXPECT_EQ(allocator.num_free(), 1);
  EXPECT_TRUE(allocator.Allocate(0, &blocks));
  ASSERT_TRUE(allocator.Allocate(1, &blocks));
  EXPECT_THAT(blocks, ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(allocator.num_free(), 0);
  EXPECT_FALSE(allocator.IsFree(2));
}

TEST(BlockAllocatorTest, ReusesFreedBlocksLastInFirstOut) {
  BlockAllocator allocator(6);
  std::vector<int32_t> a, b;
  ASSERT_TRUE(allocator.Allocate(2, &a));
  ASSERT_TRUE(allocator.Allocate(2, &b));
  allocator.Free(b);
  EXPECT_TRUE(allocator.IsFree(2));
  std::vector<int32_t> c;
  ASSERT_TRUE(allocator.Allocate(2, &c));
  EXPECT_EQ(c, b);  // Same ids, same order.
  EXPECT_EQ(allocator.num_free(), 2);
  EXPECT_EQ(allocator.num_blocks(), 6);
}

TEST(BlockAllocatorDeathTest, DoubleFreeAborts) {
  BlockAllocator allocator(2);
  std::vector<int32_t> blocks;
  ASSERT_TRUE(allocator.Allocate(1, &blocks));
  allocator.Free(blocks);
  EXPECT_DEATH(allocator.Free(blocks), "double free of block");
  EXPECT_DEATH(allocator.Free({7}), "unknown block");
}

// ---- A model of the sequences, checking every step ----

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Token `position` of sequence `id`, prompt and generated alike, so a chunk's
// tokens show which sequence and positions they came from.
int32_t TokenAt(uint64_t id, int64_t position) {
  return static_cast<int32_t>(id * 1000 + position);
}

SchedulerConfig Config(int32_t block_size, int64_t num_blocks,
                       int32_t max_step_tokens, int32_t max_step_sequences = 64,
                       int32_t max_queue = 256) {
  SchedulerConfig config;
  config.block_size = block_size;
  config.num_blocks = num_blocks;
  config.max_step_tokens = max_step_tokens;
  config.max_step_sequences = max_step_sequences;
  config.max_queue = max_queue;
  return config;
}

// Drives a Scheduler and checks each step against what the engine knows:
// the tokens it added and appended, the tokens already run (reset by
// preemption and ResetAll), and the block tables the workers were sent.
class Harness {
 public:
  explicit Harness(const SchedulerConfig& config)
      : config_(config), scheduler_(config) {}

  Scheduler& scheduler() { return scheduler_; }

  absl::Status Add(uint64_t id, int64_t prompt_len, int64_t max_total) {
    std::vector<int32_t> prompt;
    for (int64_t i = 0; i < prompt_len; ++i) prompt.push_back(TokenAt(id, i));
    absl::Status status = scheduler_.Add(id, prompt, max_total);
    if (status.ok()) models_[id] = Model{prompt, 0, {}};
    Verify();
    return status;
  }
  void Append(uint64_t id) {
    Model& model = models_.at(id);
    const int32_t token =
        TokenAt(id, static_cast<int64_t>(model.tokens.size()));
    model.tokens.push_back(token);
    scheduler_.AppendToken(id, token);
    Verify();
  }
  void Remove(uint64_t id) {
    scheduler_.Remove(id);
    models_.erase(id);
    Verify();
  }
  void ResetAll() {
    scheduler_.ResetAll();
    for (auto& [id, model] : models_) {
      model.computed = 0;
      model.blocks.clear();
    }
    Verify();
  }

  Scheduler::Step Schedule() {
    Scheduler::Step step = scheduler_.Schedule();
    EXPECT_LE(step.chunks.size(),
              static_cast<size_t>(config_.max_step_sequences));
    const std::set<uint64_t> preempted(step.preempted.begin(),
                                       step.preempted.end());
    EXPECT_EQ(preempted.size(), step.preempted.size()) << "repeated id";
    for (uint64_t id : step.preempted) {
      EXPECT_FALSE(scheduler_.IsRunning(id)) << id;
      Model& model = models_.at(id);
      model.computed = 0;
      model.blocks.clear();
    }
    int64_t tokens = 0;
    std::set<uint64_t> ids;
    std::set<int32_t> blocks;
    for (const Scheduler::Chunk& chunk : step.chunks) {
      SCOPED_TRACE(testing::Message() << "chunk of sequence " << chunk.id);
      EXPECT_TRUE(ids.insert(chunk.id).second) << "two chunks";
      EXPECT_EQ(preempted.count(chunk.id), 0u) << "preempted yet scheduled";
      EXPECT_TRUE(scheduler_.IsRunning(chunk.id));
      Model& model = models_.at(chunk.id);
      const int64_t position = chunk.position;
      const int64_t end = position + static_cast<int64_t>(chunk.tokens.size());
      EXPECT_EQ(position, model.computed);
      EXPECT_FALSE(chunk.tokens.empty());
      EXPECT_LE(end, static_cast<int64_t>(model.tokens.size()));
      if (chunk.tokens.empty() || position != model.computed ||
          end > static_cast<int64_t>(model.tokens.size())) {
        continue;
      }
      EXPECT_TRUE(std::equal(chunk.tokens.begin(), chunk.tokens.end(),
                             model.tokens.begin() + position));
      EXPECT_EQ(chunk.sample, end == static_cast<int64_t>(model.tokens.size()));
      EXPECT_EQ(chunk.first_chunk, position == 0);
      EXPECT_EQ(static_cast<int64_t>(chunk.block_table.size()),
                CeilDiv(end, config_.block_size));
      // The KV already in the cache stays where it is.
      EXPECT_TRUE(chunk.block_table.size() >= model.blocks.size() &&
                  std::equal(model.blocks.begin(), model.blocks.end(),
                             chunk.block_table.begin()))
          << "block table changed under computed tokens";
      for (int32_t block : chunk.block_table) {
        EXPECT_TRUE(blocks.insert(block).second) << "shared block " << block;
      }
      model.computed = end;
      model.blocks = chunk.block_table;
      tokens += end - position;
    }
    EXPECT_LE(tokens, config_.max_step_tokens);
    Verify();
    return step;
  }

 private:
  struct Model {
    std::vector<int32_t> tokens;
    int64_t computed = 0;
    std::vector<int32_t> blocks;
  };

  // The scheduler's own invariants, and block accounting as seen from here.
  void Verify() {
    EXPECT_EQ(scheduler_.CheckInvariants(), absl::OkStatus());
    std::set<int32_t> used;
    size_t running = 0;
    for (const auto& [id, model] : models_) {
      EXPECT_EQ(scheduler_.IsRunning(id), model.computed > 0) << id;
      running += model.computed > 0;
      for (int32_t block : model.blocks) {
        EXPECT_TRUE(used.insert(block).second) << "shared block " << block;
      }
    }
    EXPECT_EQ(scheduler_.num_running(), running);
    EXPECT_EQ(scheduler_.num_running() + scheduler_.num_waiting(),
              models_.size());
    EXPECT_EQ(static_cast<int64_t>(used.size()) + scheduler_.num_free_blocks(),
              config_.num_blocks);
  }

  const SchedulerConfig config_;
  Scheduler scheduler_;
  std::map<uint64_t, Model> models_;
};

// ---- The policy as tables ----

struct ExpectedChunk {
  uint64_t id;
  int32_t position;
  int32_t num_tokens;
  bool sample;

  bool operator==(const ExpectedChunk& o) const {
    return id == o.id && position == o.position && num_tokens == o.num_tokens &&
           sample == o.sample;
  }
};

std::ostream& operator<<(std::ostream& os, const ExpectedChunk& c) {
  return os << "{" << c.id << " @" << c.position << " +" << c.num_tokens
            << (c.sample ? " sample}" : "}");
}

struct Op {
  enum class Kind { kAdd, kAppend, kRemove, kResetAll, kSchedule, kExpect };
  explicit Op(Kind k) : kind(k) {}

  Kind kind;
  uint64_t id = 0;
  int64_t prompt_len = 0;                         // kAdd
  int64_t max_total = 0;                          // kAdd
  absl::StatusCode code = absl::StatusCode::kOk;  // kAdd
  int times = 1;                                  // kAppend
  std::vector<ExpectedChunk> chunks;              // kSchedule
  std::vector<uint64_t> preempted;                // kSchedule
  int64_t free_blocks = -1;  // kSchedule, kExpect; -1: not checked.
  int64_t running = -1;      // kExpect; -1: not checked.
  int64_t waiting = -1;      // kExpect
  int32_t preemptions = -1;  // kExpect, of `id`
};

Op Add(uint64_t id, int64_t prompt_len, int64_t max_total,
       absl::StatusCode code = absl::StatusCode::kOk) {
  Op op(Op::Kind::kAdd);
  op.id = id;
  op.prompt_len = prompt_len;
  op.max_total = max_total;
  op.code = code;
  return op;
}
Op Append(uint64_t id, int times = 1) {
  Op op(Op::Kind::kAppend);
  op.id = id;
  op.times = times;
  return op;
}
Op Remove(uint64_t id) {
  Op op(Op::Kind::kRemove);
  op.id = id;
  return op;
}
Op ResetAll() { return Op(Op::Kind::kResetAll); }
Op Sched(std::vector<ExpectedChunk> chunks,
         std::vector<uint64_t> preempted = {}, int64_t free_blocks = -1) {
  Op op(Op::Kind::kSchedule);
  op.chunks = std::move(chunks);
  op.preempted = std::move(preempted);
  op.free_blocks = free_blocks;
  return op;
}
Op Expect(int64_t running, int64_t waiting, int64_t free_blocks = -1) {
  Op op(Op::Kind::kExpect);
  op.running = running;
  op.waiting = waiting;
  op.free_blocks = free_blocks;
  return op;
}
Op Preemptions(uint64_t id, int32_t n) {
  Op op(Op::Kind::kExpect);
  op.id = id;
  op.preemptions = n;
  return op;
}

struct Case {
  std::string name;
  SchedulerConfig config;
  std::vector<Op> ops;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

constexpr bool S = true;   // The chunk samples.
constexpr bool P = false;  // It does not (prefill goes on).

std::vector<Case> Cases() {
  using absl::StatusCode;
  return {
      {"PrefillThenDecode",
       Config(/*block_size=*/4, /*num_blocks=*/8, /*max_step_tokens=*/16),
       {Add(1, 6, 10), Sched({{1, 0, 6, S}}, {}, 6),
        // Positions 6 and 7 fit the second block; 8 opens a third.
        Append(1), Sched({{1, 6, 1, S}}, {}, 6), Append(1),
        Sched({{1, 7, 1, S}}, {}, 6), Append(1), Sched({{1, 8, 1, S}}, {}, 5),
        Remove(1), Expect(0, 0, 8), Sched({}, {}, 8)}},

      {"ChunkedPrefillUnderTheTokenBudget",
       Config(4, 8, /*max_step_tokens=*/4),
       {Add(1, 10, 12), Sched({{1, 0, 4, P}}, {}, 7),
        Sched({{1, 4, 4, P}}, {}, 6), Sched({{1, 8, 2, S}}, {}, 5),
        // Sampled but nothing appended yet: nothing to run.
        Sched({}, {}, 5), Append(1), Sched({{1, 10, 1, S}}, {}, 5)}},

      {"MixedPrefillAndDecodeInOneStep",
       Config(4, 16, /*max_step_tokens=*/8),
       {Add(1, 3, 8), Sched({{1, 0, 3, S}}, {}, 15), Append(1), Add(2, 10, 12),
        Sched({{1, 3, 1, S}, {2, 0, 7, P}}, {}, 13), Append(1),
        Sched({{1, 4, 1, S}, {2, 7, 3, S}}, {}, 11), Append(1), Append(2),
        Sched({{1, 5, 1, S}, {2, 10, 1, S}}, {}, 11)}},

      {"NewRequestsJoinTheRunningBatchAtTheNextStep",
       Config(4, 16, 64),
       {Add(1, 4, 8), Sched({{1, 0, 4, S}}, {}, 15), Add(2, 4, 8), Add(3, 2, 8),
        Append(1), Sched({{1, 4, 1, S}, {2, 0, 4, S}, {3, 0, 2, S}}, {}, 12),
        Expect(3, 0)}},

      {"DecodesTakeTheBudgetFirst",
       Config(4, 16, /*max_step_tokens=*/4),
       {Add(1, 2, 8), Add(2, 2, 8), Sched({{1, 0, 2, S}, {2, 0, 2, S}}),
        Append(1), Append(2), Add(3, 8, 10),
        Sched({{1, 2, 1, S}, {2, 2, 1, S}, {3, 0, 2, P}}),
        Sched({{3, 2, 4, P}}), Sched({{3, 6, 2, S}})}},

      {"HeadOfLineWaitsAndNobodySkipsAhead",
       Config(4, /*num_blocks=*/4, 64),
       {Add(1, 8, 12), Add(2, 12, 16), Add(3, 1, 4),
        // 2 needs 3 blocks, 2 are free; 3 would fit but must not pass 2.
        Sched({{1, 0, 8, S}}, {}, 2), Expect(1, 2), Remove(1),
        Sched({{2, 0, 12, S}, {3, 0, 1, S}}, {}, 0)}},

      {"MaxStepSequencesCapsTheRunningSet",
       Config(4, 16, 64, /*max_step_sequences=*/2),
       {Add(1, 2, 4), Add(2, 2, 4), Add(3, 2, 4),
        Sched({{1, 0, 2, S}, {2, 0, 2, S}}), Expect(2, 1), Append(1), Append(2),
        Sched({{1, 2, 1, S}, {2, 2, 1, S}}), Expect(2, 1), Remove(1), Append(2),
        Sched({{2, 3, 1, S}, {3, 0, 2, S}})}},

      {"MaxStepTokensCapsTheRunningSet",
       Config(4, 16, /*max_step_tokens=*/2),
       {Add(1, 1, 4), Add(2, 1, 4), Add(3, 1, 4),
        Sched({{1, 0, 1, S}, {2, 0, 1, S}}), Expect(2, 1), Append(1), Append(2),
        Sched({{1, 1, 1, S}, {2, 1, 1, S}}), Remove(2), Append(1),
        Sched({{1, 2, 1, S}, {3, 0, 1, S}})}},

      {"PreemptsTheNewestAndRecomputesItFirst",
       Config(/*block_size=*/2, /*num_blocks=*/4, 64),
       {Add(1, 3, 8), Add(2, 3, 8), Sched({{1, 0, 3, S}, {2, 0, 3, S}}, {}, 0),
        Add(3, 1, 2), Append(1), Append(2),
        Sched({{1, 3, 1, S}, {2, 3, 1, S}}, {}, 0),
        // Both need a third block: 1 (older) gets 2's.
        Append(1), Append(2), Sched({{1, 4, 1, S}}, {2}, 1), Expect(1, 2),
        Preemptions(2, 1), Preemptions(1, 0),
        // 2 (5 tokens, 3 blocks) heads the queue; 3 would fit but waits.
        Append(1), Sched({{1, 5, 1, S}}, {}, 1), Remove(1),
        // Recomputed from all its tokens, generated ones included.
        Sched({{2, 0, 5, S}, {3, 0, 1, S}}, {}, 0), Preemptions(2, 1)}},

      {"TheNewestAskingIsItselfPreempted",
       Config(2, /*num_blocks=*/3, 64),
       {Add(1, 3, 6), Add(2, 2, 6), Sched({{1, 0, 3, S}, {2, 0, 2, S}}, {}, 0),
        Append(1), Append(2), Sched({{1, 3, 1, S}}, {2}, 1), Append(1),
        Sched({{1, 4, 1, S}}, {}, 0), Expect(1, 1), Preemptions(2, 1)}},

      {"ContinuationPreemptsANewerDecode",
       Config(2, /*num_blocks=*/3, 64),
       {Add(1, 2, 6), Add(2, 3, 6), Sched({{1, 0, 2, S}, {2, 0, 3, S}}, {}, 0),
        // Several tokens appended at once (e.g. forced tokens): 1 prefills
        // again and takes the blocks of 2, whose planned decode is dropped.
        Append(2), Append(1, /*times=*/3), Sched({{1, 2, 3, S}}, {2}, 0),
        Expect(1, 1, 0)}},

      {"PartialPrefillShrinksToFreeBlocksThenYields",
       Config(2, /*num_blocks=*/4, /*max_step_tokens=*/3),
       {Add(1, 2, 6), Add(2, 6, 8), Sched({{1, 0, 2, S}, {2, 0, 1, P}}, {}, 2),
        Append(1), Sched({{1, 2, 1, S}, {2, 1, 2, P}}, {}, 0), Append(1),
        // 2 has budget for 2 tokens but blocks for 1.
        Sched({{1, 3, 1, S}, {2, 3, 1, P}}, {}, 0),
        // 2 is the newest: it keeps its blocks and waits, preempting nobody.
        Sched({}, {}, 0), Expect(2, 0, 0), Append(1),
        Sched({{1, 4, 1, S}}, {2}, 1), Append(1),
        Sched({{1, 5, 1, S}, {2, 0, 2, P}}, {}, 0), Remove(1),
        Sched({{2, 2, 3, P}}, {}, 1), Sched({{2, 5, 1, S}}, {}, 1)}},

      {"ResetAllRequeuesRunningFirstInArrivalOrder",
       Config(4, 16, 64, /*max_step_sequences=*/3),
       {Add(1, 2, 8), Add(2, 3, 8), Add(3, 4, 8), Add(4, 1, 4),
        Sched({{1, 0, 2, S}, {2, 0, 3, S}, {3, 0, 4, S}}), Expect(3, 1),
        Append(1), Append(2), Append(3), ResetAll(), Expect(0, 4, 16),
        Sched({{1, 0, 3, S}, {2, 0, 4, S}, {3, 0, 5, S}}, {}, 12), Expect(3, 1),
        Preemptions(1, 0), Remove(2), Sched({{4, 0, 1, S}})}},

      {"ResetAllRecomputeIsChunked",
       Config(4, 16, /*max_step_tokens=*/4),
       {Add(1, 3, 8), Add(2, 1, 8), Sched({{1, 0, 3, S}, {2, 0, 1, S}}),
        Append(1), Append(2), Sched({{1, 3, 1, S}, {2, 1, 1, S}}), Append(1),
        Append(2), ResetAll(),
        // 1 has 5 tokens: its recompute spans two steps under the budget.
        Sched({{1, 0, 4, P}}), Sched({{1, 4, 1, S}, {2, 0, 3, S}})}},

      {"RemoveFreesBlocksOfWaitingAndRunning",
       Config(4, 8, 64, /*max_step_sequences=*/2),
       {Add(1, 8, 12), Add(2, 4, 8), Add(3, 4, 8),
        Sched({{1, 0, 8, S}, {2, 0, 4, S}}, {}, 5), Expect(2, 1, 5), Remove(3),
        Expect(2, 0, 5), Remove(1), Expect(1, 0, 7), Remove(99),
        Expect(1, 0, 7), Remove(2), Expect(0, 0, 8), Sched({}, {}, 8)}},

      {"FullQueueIsResourceExhausted",
       Config(4, 16, 64, 64, /*max_queue=*/2),
       {Add(1, 1, 4), Add(2, 1, 4),
        Add(3, 1, 4, StatusCode::kResourceExhausted), Expect(0, 2),
        Sched({{1, 0, 1, S}, {2, 0, 1, S}}), Add(3, 1, 4),
        Sched({{3, 0, 1, S}})}},

      {"AddValidation",
       Config(4, /*num_blocks=*/4, 64),
       {Add(1, 4, 17, StatusCode::kInvalidArgument),  // 5 blocks > 4.
        Add(1, 0, 4, StatusCode::kInvalidArgument),   // Empty prompt.
        Add(1, 5, 4, StatusCode::kInvalidArgument),   // Below the prompt.
        Add(1, 4, 16), Add(1, 1, 4, StatusCode::kAlreadyExists), Expect(0, 1)}},
  };
}

class SchedulerTableTest : public testing::TestWithParam<Case> {};

TEST_P(SchedulerTableTest, Steps) {
  const Case& c = GetParam();
  Harness h(c.config);
  for (size_t i = 0; i < c.ops.size(); ++i) {
    const Op& op = c.ops[i];
    SCOPED_TRACE(testing::Message() << "op #" << i);
    switch (op.kind) {
      case Op::Kind::kAdd:
        EXPECT_EQ(h.Add(op.id, op.prompt_len, op.max_total).code(), op.code);
        break;
      case Op::Kind::kAppend:
        for (int t = 0; t < op.times; ++t) h.Append(op.id);
        break;
      case Op::Kind::kRemove:
        h.Remove(op.id);
        break;
      case Op::Kind::kResetAll:
        h.ResetAll();
        break;
      case Op::Kind::kSchedule: {
        const Scheduler::Step step = h.Schedule();
        std::vector<ExpectedChunk> got;
        for (const Scheduler::Chunk& chunk : step.chunks) {
          got.push_back({chunk.id, chunk.position,
                         static_cast<int32_t>(chunk.tokens.size()),
                         chunk.sample});
        }
        EXPECT_EQ(got, op.chunks);
        EXPECT_EQ(step.preempted, op.preempted);
        break;
      }
      case Op::Kind::kExpect:
        if (op.running >= 0) {
          EXPECT_EQ(h.scheduler().num_running(),
                    static_cast<size_t>(op.running));
        }
        if (op.waiting >= 0) {
          EXPECT_EQ(h.scheduler().num_waiting(),
                    static_cast<size_t>(op.waiting));
        }
        if (op.preemptions >= 0) {
          EXPECT_EQ(h.scheduler().preemptions(op.id), op.preemptions);
        }
        break;
    }
    if (op.free_blocks >= 0) {
      EXPECT_EQ(h.scheduler().num_free_blocks(), op.free_blocks);
    }
    if (testing::Test::HasFailure()) return;  // Later ops would only echo.
  }
}

INSTANTIATE_TEST_SUITE_P(Policy, SchedulerTableTest, testing::ValuesIn(Cases()),
                         [](const testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

// ---- Explicit scenarios ----

TEST(SchedulerTest, RecomputeAfterPreemptionRunsPromptAndGeneratedTokens) {
  Harness h(Config(/*block_size=*/2, /*num_blocks=*/4, /*max_step_tokens=*/2));
  ASSERT_TRUE(h.Add(1, 1, 8).ok());
  ASSERT_TRUE(h.Add(2, 1, 8).ok());
  ASSERT_EQ(h.Schedule().chunks.size(), 2u);
  // Four decode steps each; at position 4 sequence 1 needs a third block
  // and takes sequence 2's.
  Scheduler::Step step;
  for (int i = 0; i < 4; ++i) {
    h.Append(1);
    h.Append(2);
    step = h.Schedule();
  }
  ASSERT_THAT(step.preempted, ElementsAre(2u));
  EXPECT_EQ(h.scheduler().preemptions(2), 1);
  h.Remove(1);
  // Sequence 2 has 1 prompt + 4 generated tokens; the budget chunks them.
  std::vector<int32_t> recomputed;
  for (int i = 0; i < 3; ++i) {
    step = h.Schedule();
    ASSERT_EQ(step.chunks.size(), 1u);
    const Scheduler::Chunk& chunk = step.chunks[0];
    EXPECT_EQ(chunk.first_chunk, i == 0);
    EXPECT_EQ(chunk.sample, i == 2);
    recomputed.insert(recomputed.end(), chunk.tokens.begin(),
                      chunk.tokens.end());
  }
  EXPECT_THAT(recomputed, ElementsAre(2000, 2001, 2002, 2003, 2004));
}

TEST(SchedulerTest, FullQueueMessage) {
  Scheduler scheduler(Config(4, 16, 64, 64, /*max_queue=*/1));
  ASSERT_TRUE(scheduler.Add(1, {5}, 4).ok());
  const absl::Status status = scheduler.Add(2, {5}, 4);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("admission queue full (1 waiting)"));
}

TEST(SchedulerTest, TooBigForTheWholeCacheMessage) {
  Scheduler scheduler(Config(16, 4, 64));
  const absl::Status status = scheduler.Add(1, {5, 6}, 65);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("65 tokens (5 KV blocks of 16)"));
  EXPECT_THAT(status.message(), HasSubstr("holds 4 blocks (64 tokens)"));
  EXPECT_TRUE(scheduler.Add(1, {5, 6}, 64).ok());
}

TEST(SchedulerTest, UnknownIdsAreNoOps) {
  Scheduler scheduler(Config(4, 4, 64));
  scheduler.Remove(7);
  scheduler.AppendToken(7, 1);
  EXPECT_EQ(scheduler.preemptions(7), 0);
  EXPECT_FALSE(scheduler.IsRunning(7));
  EXPECT_TRUE(scheduler.Schedule().empty());
}

TEST(SchedulerDeathTest, AppendBeyondMaxTotalTokensAborts) {
  Scheduler scheduler(Config(4, 4, 64));
  ASSERT_TRUE(scheduler.Add(1, {5, 6}, 3).ok());
  scheduler.AppendToken(1, 7);
  EXPECT_DEATH(scheduler.AppendToken(1, 8), "beyond max_total_tokens 3");
}

TEST(SchedulerConfigTest, ValidatesEveryField) {
  struct Row {
    std::function<void(SchedulerConfig&)> mutate;
    const char* message;
  };
  const Row rows[] = {
      {[](SchedulerConfig& c) { c.block_size = 0; }, "block_size"},
      {[](SchedulerConfig& c) { c.num_blocks = -1; }, "num_blocks"},
      {[](SchedulerConfig& c) { c.num_blocks = int64_t{1} << 32; },
       "num_blocks"},
      {[](SchedulerConfig& c) { c.max_step_tokens = 0; }, "max_step_tokens"},
      {[](SchedulerConfig& c) { c.max_step_sequences = 0; },
       "max_step_sequences"},
      {[](SchedulerConfig& c) { c.max_queue = -1; }, "max_queue"},
  };
  EXPECT_TRUE(ValidateSchedulerConfig(SchedulerConfig{}).ok());
  for (const Row& row : rows) {
    SchedulerConfig config;
    row.mutate(config);
    const absl::Status status = ValidateSchedulerConfig(config);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr(row.message));
  }
}

// ---- Randomized stress ----

struct StressCase {
  std::string name;
  SchedulerConfig config;
  int64_t max_prompt;
  int64_t max_new;
  uint64_t seed;
};

void PrintTo(const StressCase& c, std::ostream* os) { *os << c.name; }

class SchedulerStressTest : public testing::TestWithParam<StressCase> {};

// A simulated engine: random arrivals, cancellations and worker-group losses
// on an oversubscribed cache for 2000 steps, then a drain. Every step is
// checked by the harness; every sequence must finish (no deadlock, no
// starvation), and a step is never empty while sequences are waiting for it.
TEST_P(SchedulerStressTest, EverySequenceCompletes) {
  const StressCase& c = GetParam();
  ASSERT_LE(CeilDiv(c.max_prompt + c.max_new, c.config.block_size),
            c.config.num_blocks);
  Harness h(c.config);
  std::mt19937_64 rng(c.seed);
  struct Live {
    int64_t max_new;
    int64_t generated;
  };
  std::map<uint64_t, Live> live;
  uint64_t next_id = 1;
  int completed = 0, cancelled = 0, rejected = 0, resets = 0;
  int preemptions = 0, idle_steps = 0;

  auto step_once = [&] {
    const bool has_work = !live.empty();
    const Scheduler::Step step = h.Schedule();
    if (has_work && step.empty()) ++idle_steps;
    preemptions += static_cast<int>(step.preempted.size());
    if (rng() % 100 == 0) {  // The step failed: its results are lost.
      h.ResetAll();
      ++resets;
      return;
    }
    for (const Scheduler::Chunk& chunk : step.chunks) {
      if (!chunk.sample) continue;
      Live& seq = live.at(chunk.id);
      if (++seq.generated == seq.max_new) {
        h.Remove(chunk.id);
        live.erase(chunk.id);
        ++completed;
      } else {
        h.Append(chunk.id);
      }
    }
  };

  for (int i = 0; i < 2000; ++i) {
    if (rng() % 2 == 0) {
      const int64_t prompt = 1 + static_cast<int64_t>(rng() % c.max_prompt);
      const int64_t max_new = 1 + static_cast<int64_t>(rng() % c.max_new);
      const absl::Status status = h.Add(next_id, prompt, prompt + max_new);
      if (status.ok()) {
        live[next_id] = {max_new, 0};
      } else {
        EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
        ++rejected;
      }
      ++next_id;
    }
    if (!live.empty() && rng() % 100 < 3) {  // A client cancels.
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      h.Remove(it->first);
      live.erase(it);
      ++cancelled;
    }
    step_once();
    ASSERT_FALSE(HasFailure()) << "at step " << i;
  }
  for (int i = 0; i < 20000 && !live.empty(); ++i) {
    step_once();
    ASSERT_FALSE(HasFailure()) << "draining, step " << i;
  }
  EXPECT_TRUE(live.empty()) << live.size() << " sequences never finished";
  EXPECT_EQ(idle_steps, 0);
  EXPECT_EQ(h.scheduler().num_free_blocks(), c.config.num_blocks);
  // The run exercised what it claims to.
  EXPECT_GT(completed, 100);
  EXPECT_GT(preemptions, 0);
  EXPECT_GT(rejected, 0);
  EXPECT_GT(resets, 0);
  RecordProperty("completed", completed);
  RecordProperty("cancelled", cancelled);
  RecordProperty("preemptions", preemptions);
}

INSTANTIATE_TEST_SUITE_P(
    Random, SchedulerStressTest,
    testing::Values(
        StressCase{"SmallBlocks",
                   Config(4, 24, /*max_step_tokens=*/16,
                          /*max_step_sequences=*/6, /*max_queue=*/8),
                   40, 30, 1},
        StressCase{"OneTokenBlocks", Config(1, 40, 8, 4, 4), 20, 20, 2},
        StressCase{"BigBlocksTinyCache", Config(16, 6, 32, 8, 16), 50, 40, 3},
        StressCase{"TinyBudget", Config(4, 16, 3, 8, 8), 30, 30, 4}),
    [](const testing::TestParamInfo<StressCase>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace tpserve
