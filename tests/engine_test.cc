// The engine over a fake executor: continuous batching, stop conditions,
// cancellation, deadlines, preemption, rebuild after a failed step, health
// probes, a full queue and drain, without a model or worker processes.
//
// The fake stands in for a worker group the way a model would: a
// sequence's next token is a function of every token fed to it so far (at
// their positions), so a sequence that is preempted or whose group is
// rebuilt must be re-prefilled from position 0 with all its tokens to give
// the same continuation. The fake also checks the protocol's invariants
// (contiguous positions, sampling parameters on a first chunk, no work for
// a freed sequence). Events are ordered with explicit sync points: a step
// can be held until the test releases it, and the test waits for the step
// counter, never for time to pass.
#include "coordinator/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "tests/fake_tokenizer.h"

namespace tpserve {
namespace {

using std::chrono::milliseconds;
using std::chrono::system_clock;

constexpr std::chrono::seconds kTimeout{30};  // A bound on every wait.

const FakeTokenizer& Letters() {
  static const FakeTokenizer* t = new FakeTokenizer(
      {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m",
       "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z"});
  return *t;
}

// The fake model: the next token after `history`.
int32_t NextToken(const std::vector<int32_t>& history) {
  uint64_t h = 7;
  for (size_t i = 0; i < history.size(); ++i) {
    h = h * 31 + static_cast<uint64_t>(history[i]) * (i + 1);
  }
  return static_cast<int32_t>(h % 26);
}

// What a sequence must generate: the fake model run alone, token by token.
std::vector<int32_t> Expected(std::vector<int32_t> prompt, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(NextToken(prompt));
    prompt.push_back(out.back());
  }
  return out;
}

std::string Text(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += Letters().TokenBytes(id, false);
  return s;
}

// State shared by the test and every epoch's executor.
struct Controls {
  std::mutex mu;
  std::condition_variable cv;
  int steps_started = 0;     // Over all epochs.
  int hold_step = -1;        // This step (1-based, over all epochs) waits...
  bool released = false;     // ... until this is set.
  int fail_step = -1;        // This step fails (a rank died).
  int bad_probe_epoch = -1;  // Probe reports a dead rank in this epoch.
  std::vector<StepWork> steps;
  std::vector<std::string> broken_reasons;
  int rebuilds = 0;  // Calls of the engine's ExecutorFactory.

  // Until `n` steps have started (a held step counts once it blocks).
  void WaitForSteps(int n) {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kTimeout, [&] { return steps_started >= n; }))
        << "only " << steps_started << " steps started";
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu);
      released = true;
    }
    cv.notify_all();
  }
};

class FakeExecutor final : public StepExecutor {
 public:
  FakeExecutor(Controls* controls, int epoch, int64_t kv_blocks)
      : c_(controls), epoch_(epoch), kv_blocks_(kv_blocks) {}

  int64_t kv_blocks() const override { return kv_blocks_; }

  absl::Status Step(const StepWork& step,
                    std::vector<SampledToken>* sampled) override {
    std::unique_lock<std::mutex> lock(c_->mu);
    const int n = ++c_->steps_started;
    c_->steps.push_back(step);
    c_->cv.notify_all();
    if (n == c_->hold_step) {
      c_->cv.wait(lock, [&] { return c_->released || broken_; });
    }
    if (broken_) return absl::UnavailableError("fake: broken");
    if (n == c_->fail_step) {
      broken_ = true;
      return absl::UnavailableError("fake: rank 1 died in the step");
    }
    for (uint64_t id : step.free_seq_ids) history_.erase(id);
    sampled->clear();
    for (const SequenceWork& w : step.sequences) {
      std::vector<int32_t>& h = history_[w.seq_id];
      EXPECT_EQ(w.position, static_cast<int32_t>(h.size()))
          << "sequence " << w.seq_id << " skipped or repeated positions";
      EXPECT_EQ(w.sampling.has_value(), w.position == 0)
          << "sampling parameters come with the first chunk only";
      EXPECT_FALSE(w.tokens.empty());
      h.insert(h.end(), w.tokens.begin(), w.tokens.end());
      if (!w.sample) continue;
      SampledToken& t = sampled->emplace_back();
      t.seq_id = w.seq_id;
      t.token_id = NextToken(h);
      t.logprob = -0.5f;
    }
    return absl::OkStatus();
  }

  std::string Probe(milliseconds) const override {
    std::lock_guard<std::mutex> lock(c_->mu);
    return epoch_ == c_->bad_probe_epoch ? "rank 1 did not answer" : "";
  }

  void MarkBroken(const std::string& reason) override {
    {
      std::lock_guard<std::mutex> lock(c_->mu);
      broken_ = true;
      c_->broken_reasons.push_back(reason);
    }
    c_->cv.notify_all();
  }

 private:
  Controls* const c_;
  const int epoch_;
  const int64_t kv_blocks_;
  bool broken_ = false;  // Guarded by c_->mu.
  // Tokens fed to each live sequence, by position. Engine thread only.
  std::map<uint64_t, std::vector<int32_t>> history_;
};

// Collects one generation's output as a door would.
class Collector final : public Generation::Listener {
 public:
  explicit Collector(std::shared_ptr<Generation> g) : g_(std::move(g)) {
    g_->Attach(this);
  }
  ~Collector() override { g_->Detach(); }

  void OnGenerationReady() override {
    std::lock_guard<std::mutex> lock(mu_);
    GenerationOutput part;
    bool done = false;
    absl::Status status;
    if (!g_->Take(&part, &done, &status)) return;
    out_.Merge(std::move(part));
    if (done) {
      done_ = true;
      status_ = status;
    }
    cv_.notify_all();
  }

  // The generation's end status (a test failure if it never ends).
  absl::Status Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, kTimeout, [&] { return done_; })) {
      ADD_FAILURE() << "the generation did not end";
      return absl::DeadlineExceededError("test timeout");
    }
    return status_;
  }
  GenerationOutput output() {
    std::lock_guard<std::mutex> lock(mu_);
    return out_;
  }
  uint64_t id() const { return g_->id(); }

 private:
  std::shared_ptr<Generation> g_;
  std::mutex mu_;
  std::condition_variable cv_;
  GenerationOutput out_;
  bool done_ = false;
  absl::Status status_;
};

PreparedRequest Request(std::vector<int32_t> prompt, int32_t max_tokens) {
  PreparedRequest r;
  r.request_id = "r";
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.seed = 1;
  r.sampling.has_seed = true;
  return r;
}

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() {
    options_.scheduler.block_size = 4;
    options_.scheduler.num_blocks = 64;
    options_.scheduler.max_step_tokens = 64;
    options_.scheduler.max_step_sequences = 8;
    options_.scheduler.max_queue = 16;
    options_.health_interval = std::chrono::hours(1);  // Off unless set.
    options_.rebuild_pause = milliseconds(1);
    options_.on_readiness = [this](bool ready, const std::string&) {
      std::lock_guard<std::mutex> lock(c_.mu);
      readiness_.push_back(ready);
    };
  }

  void Start() {
    const int64_t blocks = options_.scheduler.num_blocks;
    ExecutorFactory rebuild =
        [this,
         blocks](int epoch) -> absl::StatusOr<std::unique_ptr<StepExecutor>> {
      {
        std::lock_guard<std::mutex> lock(c_.mu);
        ++c_.rebuilds;
      }
      if (!rebuild_ok_) return absl::UnavailableError("fake: no workers");
      return std::make_unique<FakeExecutor>(&c_, epoch, blocks);
    };
    engine_ =
        std::make_unique<Engine>(std::make_unique<FakeExecutor>(&c_, 1, blocks),
                                 rebuild, &Letters(), options_);
  }

  std::unique_ptr<Collector> Submit(
      PreparedRequest r,
      system_clock::time_point deadline = system_clock::time_point::max()) {
    auto g = std::make_shared<Generation>(std::move(r), deadline);
    absl::Status s = engine_->Submit(g);
    EXPECT_TRUE(s.ok()) << s;
    return std::make_unique<Collector>(std::move(g));
  }

  void ExpectGenerated(Collector& c, const std::vector<int32_t>& prompt,
                       int n) {
    ASSERT_TRUE(c.Wait().ok());
    const GenerationOutput out = c.output();
    EXPECT_EQ(out.token_ids, Expected(prompt, n));
    EXPECT_EQ(out.text, Text(out.token_ids));
    EXPECT_EQ(out.finish_reason, FinishReason::kLength);
    EXPECT_EQ(out.usage.prompt_tokens, static_cast<int>(prompt.size()));
    EXPECT_EQ(out.usage.completion_tokens, n);
  }

  Controls c_;
  EngineOptions options_;
  bool rebuild_ok_ = true;
  std::vector<bool> readiness_;             // Guarded by c_.mu.
  std::atomic<bool> exit_reported_{false};  // For exited_probe.
  // Last: destroyed first, while everything its callbacks use still exists.
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTest, GeneratesTheModelsTokensUpToMaxTokens) {
  Start();
  auto a = Submit(Request({1, 2, 3}, 5));
  auto b = Submit(Request({4, 5, 6, 7, 8, 9, 10}, 9));
  ExpectGenerated(*a, {1, 2, 3}, 5);
  ExpectGenerated(*b, {4, 5, 6, 7, 8, 9, 10}, 9);
  EXPECT_EQ(engine_->stats().tokens_generated, 14u);
}

TEST_F(EngineTest, StopTokenEndsTheGenerationWithoutItself) {
  Start();
  const std::vector<int32_t> prompt = {3, 1, 4, 1, 5};
  const std::vector<int32_t> expected = Expected(prompt, 8);
  const int32_t stop = expected[3];
  const size_t k =
      std::find(expected.begin(), expected.end(), stop) - expected.begin();
  PreparedRequest r = Request(prompt, 8);
  r.stop_ids = {stop};
  auto c = Submit(std::move(r));
  ASSERT_TRUE(c->Wait().ok());
  const GenerationOutput out = c->output();
  EXPECT_EQ(out.token_ids,
            std::vector<int32_t>(expected.begin(), expected.begin() + k));
  EXPECT_EQ(out.finish_reason, FinishReason::kStop);
  EXPECT_EQ(out.matched_stop, Letters().TokenBytes(stop, true));
}

TEST_F(EngineTest, StopStringEndsTheGenerationAndIsNotSent) {
  Start();
  const std::vector<int32_t> prompt = {2, 7, 1, 8};
  const std::string text = Text(Expected(prompt, 12));
  PreparedRequest r = Request(prompt, 12);
  r.stop = {text.substr(4, 2)};
  auto c = Submit(std::move(r));
  ASSERT_TRUE(c->Wait().ok());
  const GenerationOutput out = c->output();
  EXPECT_EQ(out.text, text.substr(0, text.find(text.substr(4, 2))));
  EXPECT_EQ(out.finish_reason, FinishReason::kStop);
  EXPECT_EQ(out.matched_stop, text.substr(4, 2));
}

TEST_F(EngineTest, CancelEndsWithCancelledAndTheWorkersFreeTheSequence) {
  c_.hold_step = 2;
  Start();
  auto a = Submit(Request({1, 2}, 50));
  c_.WaitForSteps(2);  // Step 2 holds, with `a` in it.
  engine_->Cancel(a->id());
  c_.Release();
  EXPECT_EQ(a->Wait().code(), absl::StatusCode::kCancelled);
  EXPECT_LT(a->output().token_ids.size(), 50u);
  // The next step (run for another request) tells the ranks to drop `a`.
  auto b = Submit(Request({3}, 2));
  ExpectGenerated(*b, {3}, 2);
  std::lock_guard<std::mutex> lock(c_.mu);
  bool freed = false;
  for (size_t i = 2; i < c_.steps.size(); ++i) {
    for (uint64_t id : c_.steps[i].free_seq_ids) freed |= id == a->id();
    for (const SequenceWork& w : c_.steps[i].sequences) {
      EXPECT_NE(w.seq_id, a->id()) << "a cancelled sequence ran again";
    }
  }
  EXPECT_TRUE(freed);
}

TEST_F(EngineTest, DeadlinesEndGenerationsWithDeadlineExceeded) {
  Start();
  auto past = Submit(Request({1, 2, 3}, 4), system_clock::now());
  EXPECT_EQ(past->Wait().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(past->output().token_ids.empty());
  // A live request is not affected.
  auto live = Submit(Request({1, 2, 3}, 4));
  ExpectGenerated(*live, {1, 2, 3}, 4);
}

TEST_F(EngineTest, PreemptedSequencesAreRecomputedToTheSameTokens) {
  // 6 blocks of 4 tokens; each request needs 4 blocks at its end, so the
  // two cannot both stay: the newer is preempted and re-prefilled later.
  options_.scheduler.num_blocks = 6;
  c_.hold_step = 1;  // `b` arrives while `a`'s prefill runs: both grow.
  Start();
  auto a = Submit(Request({1, 2, 3, 4}, 12));
  c_.WaitForSteps(1);
  auto b = Submit(Request({5, 6, 7, 8}, 12));
  c_.Release();
  ExpectGenerated(*a, {1, 2, 3, 4}, 12);
  ExpectGenerated(*b, {5, 6, 7, 8}, 12);
  EXPECT_GE(engine_->stats().preemptions, 1u);
  EXPECT_GE(a->output().usage.preemptions + b->output().usage.preemptions, 1);
}

TEST_F(EngineTest, AFailedStepRebuildsTheGroupAndLosesNoRequest) {
  c_.fail_step = 3;
  Start();
  auto a = Submit(Request({9, 8, 7}, 10));
  auto b = Submit(Request({1}, 6));
  ExpectGenerated(*a, {9, 8, 7}, 10);
  ExpectGenerated(*b, {1}, 6);
  const EngineStats s = engine_->stats();
  EXPECT_EQ(s.group_failures, 1u);
  EXPECT_EQ(s.recoveries, 1u);
  std::lock_guard<std::mutex> lock(c_.mu);
  EXPECT_EQ(c_.rebuilds, 1);  // Epoch 2.
  EXPECT_EQ(readiness_, (std::vector<bool>{false, true}));
}

TEST_F(EngineTest, GivesUpWhenRebuildsKeepFailing) {
  c_.fail_step = 1;
  rebuild_ok_ = false;
  options_.max_rebuild_attempts = 1;
  options_.give_up_after = std::chrono::seconds(0);
  Start();
  auto a = Submit(Request({1, 2}, 4));
  EXPECT_EQ(a->Wait().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(engine_->readiness().code(), absl::StatusCode::kUnavailable);
  auto g = std::make_shared<Generation>(Request({1}, 1),
                                        system_clock::time_point::max());
  EXPECT_EQ(engine_->Submit(g).code(), absl::StatusCode::kUnavailable);
}

TEST_F(EngineTest, FailedHealthProbesBreakAHungGroup) {
  // Step 1 hangs; the probes of epoch 1 fail; the monitor breaks the group,
  // which ends the hung step, and the rebuilt group finishes the request.
  c_.hold_step = 1;
  c_.bad_probe_epoch = 1;
  options_.health_interval = milliseconds(1);
  Start();
  auto a = Submit(Request({4, 4}, 5));
  ExpectGenerated(*a, {4, 4}, 5);
  std::lock_guard<std::mutex> lock(c_.mu);
  ASSERT_FALSE(c_.broken_reasons.empty());
  EXPECT_EQ(c_.broken_reasons[0], "rank 1 did not answer");
  EXPECT_EQ(engine_->stats().recoveries, 1u);
}

TEST_F(EngineTest, AKnownDeadWorkerBreaksTheGroup) {
  c_.hold_step = 1;
  options_.health_interval = milliseconds(1);
  options_.exited_probe = [this] {
    return exit_reported_.exchange(true) ? "" : "worker 0 exited (signal 9)";
  };
  Start();
  auto a = Submit(Request({6}, 3));
  ExpectGenerated(*a, {6}, 3);
  std::lock_guard<std::mutex> lock(c_.mu);
  ASSERT_FALSE(c_.broken_reasons.empty());
  EXPECT_EQ(c_.broken_reasons[0], "worker 0 exited (signal 9)");
}

TEST_F(EngineTest, AFullQueueRefusesAtOnce) {
  options_.scheduler.max_queue = 2;
  options_.scheduler.max_step_sequences = 1;
  c_.hold_step = 1;
  Start();
  auto running = Submit(Request({1}, 3));
  c_.WaitForSteps(1);  // `running` is in the held step; the queue is empty.
  auto q1 = Submit(Request({2}, 3));
  auto q2 = Submit(Request({3}, 3));
  auto g = std::make_shared<Generation>(Request({4}, 3),
                                        system_clock::time_point::max());
  EXPECT_EQ(engine_->Submit(g).code(), absl::StatusCode::kResourceExhausted);
  c_.Release();
  ExpectGenerated(*running, {1}, 3);
  ExpectGenerated(*q1, {2}, 3);
  ExpectGenerated(*q2, {3}, 3);
}

TEST_F(EngineTest, ARequestThatCanNeverFitIsInvalid) {
  options_.scheduler.num_blocks = 2;  // 8 tokens.
  Start();
  auto g = std::make_shared<Generation>(Request({1, 2, 3}, 6),
                                        system_clock::time_point::max());
  EXPECT_EQ(engine_->Submit(g).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EngineTest, WaitIdleReturnsOnceEveryGenerationEnded) {
  c_.hold_step = 1;
  Start();
  auto a = Submit(Request({1, 2}, 3));
  c_.WaitForSteps(1);
  EXPECT_FALSE(engine_->WaitIdle(std::chrono::steady_clock::now()));
  c_.Release();
  EXPECT_TRUE(engine_->WaitIdle(std::chrono::steady_clock::now() + kTimeout));
  ExpectGenerated(*a, {1, 2}, 3);
}

TEST_F(EngineTest, DestroyingTheEngineEndsGenerationsWithUnavailable) {
  c_.hold_step = 1;
  Start();
  auto a = Submit(Request({1, 2}, 30));
  c_.WaitForSteps(1);
  engine_.reset();  // Breaks the held step; the loop stops.
  EXPECT_EQ(a->Wait().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace tpserve
