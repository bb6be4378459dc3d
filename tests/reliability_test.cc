// Process-level failure tests (DESIGN.md, failure model): the real
// `tpserve serve` with real tpserve-worker processes on loopback, and real
// signals. A worker crash or hang must lose no request and change no
// output; SIGTERM drains; no worker outlives its coordinator.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/server_process.h"
#include "tests/test_paths.h"
#include "tpserve/v1/inference.grpc.pb.h"

namespace tpserve {
namespace {

using Clock = std::chrono::steady_clock;

std::unique_ptr<v1::Inference::Stub> Connect(const std::string& address) {
  return v1::Inference::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

struct Streamed {
  grpc::Status status;
  std::vector<int32_t> tokens;
  int messages = 0;
};

v1::GenerateRequest Request(const std::string& text, int max_tokens) {
  v1::GenerateRequest r;
  r.set_text(text);
  r.mutable_sampling()->set_temperature(0);
  r.set_max_tokens(max_tokens);
  r.set_ignore_eos(true);
  return r;
}

// Runs `n` streams concurrently; `started` counts streams that received
// their first message.
std::vector<Streamed> RunStreams(const std::string& address,
                                 const std::vector<v1::GenerateRequest>& reqs,
                                 std::atomic<int>* started) {
  std::vector<Streamed> out(reqs.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < reqs.size(); ++i) {
    threads.emplace_back([&, i] {
      auto stub = Connect(address);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(300));
      auto reader = stub->GenerateStream(&ctx, reqs[i]);
      v1::GenerateStreamResponse part;
      while (reader->Read(&part)) {
        if (out[i].messages++ == 0 && started != nullptr) ++*started;
        out[i].tokens.insert(out[i].tokens.end(), part.token_ids().begin(),
                             part.token_ids().end());
      }
      out[i].status = reader->Finish();
    });
  }
  for (std::thread& t : threads) t.join();
  return out;
}

std::vector<v1::GenerateRequest> EightRequests(int max_tokens) {
  const std::vector<std::string> prompts = {
      "The capital of France is", "My favourite fruit is",
      "def fibonacci(n):",        "The three primary colours are",
      "Once upon a time",         "The best way to learn is",
      "Water boils at",           "In 1492, Columbus"};
  std::vector<v1::GenerateRequest> reqs;
  for (const std::string& p : prompts) reqs.push_back(Request(p, max_tokens));
  return reqs;
}

// Watches the gRPC health service (the streaming Watch RPC: the server
// sends every change) and records each status seen, in order.
class ReadinessWatcher {
 public:
  explicit ReadinessWatcher(const std::string& address)
      : stub_(grpc::health::v1::Health::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {
    thread_ = std::thread([this] {
      while (true) {
        grpc::ClientContext ctx;
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (stop_) return;
          ctx_ = &ctx;
        }
        grpc::health::v1::HealthCheckRequest req;
        auto reader = stub_->Watch(&ctx, req);
        grpc::health::v1::HealthCheckResponse resp;
        while (reader->Read(&resp)) {
          std::lock_guard<std::mutex> lock(mu_);
          if (seen_.empty() || seen_.back() != resp.status()) {
            seen_.push_back(resp.status());
            cv_.notify_all();
          }
        }
        reader->Finish();
        std::unique_lock<std::mutex> lock(mu_);
        ctx_ = nullptr;
        if (stop_) return;
        // The stream ended without being stopped (a server restart):
        // watch again after a pause.
        cv_.wait_for(lock, std::chrono::milliseconds(20));
      }
    });
  }
  ~ReadinessWatcher() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      if (ctx_ != nullptr) ctx_->TryCancel();
    }
    cv_.notify_all();
    thread_.join();
  }
  std::vector<int> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  // Until `done(seen)` holds, or `timeout`; true if it does.
  bool WaitFor(const std::function<bool(const std::vector<int>&)>& done,
               std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return done(seen_); });
  }

 private:
  std::unique_ptr<grpc::health::v1::Health::Stub> stub_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                   // Guarded by mu_.
  grpc::ClientContext* ctx_ = nullptr;  // Guarded by mu_: the live Watch.
  std::vector<int> seen_;               // Guarded by mu_.
  std::thread thread_;
};

constexpr int kServing = grpc::health::v1::HealthCheckResponse::SERVING;
constexpr int kNotServing = grpc::health::v1::HealthCheckResponse::NOT_SERVING;

class WorkerFailureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<testing::ServerProcess>(std::vector<std::string>{
        "--model", testing::DefaultModelPath(), "--tp", "3", "--listen",
        "127.0.0.1:0", "--threads", "1", "--step-timeout-ms", "30000"});
    ASSERT_FALSE(server_->address().empty()) << testing::kModelHint;
    // The outputs of an undisturbed run.
    want_ = RunStreams(server_->address(), EightRequests(kTokens), nullptr);
    for (const Streamed& s : want_) {
      ASSERT_TRUE(s.status.ok()) << s.status.error_message();
      ASSERT_EQ(s.tokens.size(), static_cast<size_t>(kTokens));
    }
  }

  // Runs the 8 streams again, doing `disturb` once they all stream, and
  // checks that every stream completes with the undisturbed output and that
  // readiness went false and came back.
  void RunDisturbed(const std::function<void()>& disturb) {
    ReadinessWatcher watcher(server_->address());
    std::atomic<int> started{0};
    std::vector<Streamed> got;
    std::thread clients([&] {
      got = RunStreams(server_->address(), EightRequests(kTokens), &started);
    });
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (started < 8 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    disturb();
    clients.join();
    for (size_t i = 0; i < got.size(); ++i) {
      SCOPED_TRACE(::testing::Message() << "stream " << i);
      ASSERT_TRUE(got[i].status.ok()) << got[i].status.error_message();
      EXPECT_EQ(got[i].tokens, want_[i].tokens);
    }
    // Sync point: readiness went down and came back up (the stream of
    // changes may deliver the last one after the streams end).
    EXPECT_TRUE(watcher.WaitFor(
        [](const std::vector<int>& seen) {
          return std::count(seen.begin(), seen.end(), kNotServing) > 0 &&
                 seen.back() == kServing;
        },
        std::chrono::seconds(30)));
    const std::vector<int> seen = watcher.seen();
    EXPECT_THAT(seen, ::testing::Contains(kNotServing));
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.back(), kServing);
  }

  static constexpr int kTokens = 40;
  std::unique_ptr<testing::ServerProcess> server_;
  std::vector<Streamed> want_;
};

TEST_F(WorkerFailureTest, KilledRankLosesNoRequest) {
  const pid_t victim = server_->WorkerPid(1);
  ASSERT_GT(victim, 0) << server_->output();
  RunDisturbed([&] { kill(victim, SIGKILL); });
  EXPECT_NE(server_->WorkerPid(1), victim) << "rank 1 was restarted";
  EXPECT_EQ(server_->Stop(), 0);
}

TEST_F(WorkerFailureTest, HungRankIsDetectedAndReplaced) {
  const pid_t victim = server_->WorkerPid(1);
  ASSERT_GT(victim, 0) << server_->output();
  const auto start = Clock::now();
  RunDisturbed([&] { kill(victim, SIGSTOP); });
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(120));
  EXPECT_NE(server_->WorkerPid(1), victim) << "rank 1 was replaced";
  EXPECT_TRUE(testing::ProcessGone(victim));
  EXPECT_EQ(server_->Stop(), 0);
}

TEST(DrainTest, SigtermFinishesInFlightStreamsAndLeavesNoWorker) {
  testing::ServerProcess server({"--model", testing::DefaultModelPath(), "--tp",
                                 "3", "--listen", "127.0.0.1:0", "--threads",
                                 "1", "--drain-seconds", "60"});
  ASSERT_FALSE(server.address().empty()) << testing::kModelHint;
  std::vector<pid_t> workers;
  for (int r = 0; r < 3; ++r) workers.push_back(server.WorkerPid(r));
  std::atomic<int> started{0};
  std::vector<Streamed> got;
  std::thread clients(
      [&] { got = RunStreams(server.address(), EightRequests(32), &started); });
  while (started < 8) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ReadinessWatcher watcher(server.address());
  ASSERT_TRUE(watcher.WaitFor(
      [](const std::vector<int>& seen) {
        return !seen.empty() && seen.back() == kServing;
      },
      std::chrono::seconds(30)));
  kill(server.pid(), SIGTERM);
  // Sync point: the server said NOT_SERVING (the first thing it does on
  // SIGTERM). It then stops admitting: a new request may still be served
  // in that short window, but from then on every one is refused.
  ASSERT_TRUE(watcher.WaitFor(
      [](const std::vector<int>& seen) { return seen.back() == kNotServing; },
      std::chrono::seconds(30)));
  {
    auto stub = Connect(server.address());
    grpc::Status s;
    for (int attempt = 0; attempt < 1000; ++attempt) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
      v1::GenerateResponse resp;
      s = stub->Generate(&ctx, Request("Hi", 2), &resp);
      if (!s.ok()) break;
    }
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE)
        << s.error_message();
  }
  clients.join();
  for (const Streamed& s : got) {
    ASSERT_TRUE(s.status.ok()) << s.status.error_message();
    EXPECT_EQ(s.tokens.size(), 32u);
  }
  EXPECT_EQ(server.Wait(std::chrono::seconds(30)), 0);
  for (pid_t w : workers) {
    ASSERT_GT(w, 0);
    EXPECT_TRUE(testing::ProcessGone(w)) << "worker " << w << " left behind";
  }
}

TEST(OrphanTest, WorkersExitWhenTheCoordinatorIsKilled) {
  testing::ServerProcess server({"--model", testing::DefaultModelPath(), "--tp",
                                 "3", "--listen", "127.0.0.1:0", "--threads",
                                 "1"});
  ASSERT_FALSE(server.address().empty()) << testing::kModelHint;
  std::vector<pid_t> workers;
  for (int r = 0; r < 3; ++r) workers.push_back(server.WorkerPid(r));
  kill(server.pid(), SIGKILL);
  server.Wait(std::chrono::seconds(10));
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (pid_t w : workers) {
    ASSERT_GT(w, 0);
    while (!testing::ProcessGone(w) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(testing::ProcessGone(w)) << "worker " << w << " orphaned";
  }
}

}  // namespace
}  // namespace tpserve
