// GlooCommunicator over loopback TCP: ranks as threads (HashStore) and as
// processes (FileStore), exact results for sums of small integers, uneven
// gathers, broadcasts from every root, and failures that must surface as
// statuses within the timeout instead of hanging.
#include "worker/gloo_communicator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "gloo/rendezvous/file_store.h"
#include "gloo/rendezvous/hash_store.h"

namespace tpserve {
namespace {

using Clock = std::chrono::steady_clock;

GlooOptions TestOptions(std::chrono::milliseconds timeout) {
  GlooOptions o;
  o.hostname = "127.0.0.1";
  o.timeout = timeout;
  return o;
}

// Threads of one test meet here. Needed around Create: Gloo's rendezvous
// can return on one rank while a peer is still finishing its handshake, and
// a communicator destroyed at that moment fails the peer's Create.
class ThreadBarrier {
 public:
  explicit ThreadBarrier(int n) : n_(n) {}
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    const int generation = generation_;
    if (++arrived_ == n_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != generation; });
    }
  }

 private:
  const int n_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  int generation_ = 0;
};

// Runs `body(comm)` for ranks 0..world-1, one thread each, every rank with
// its own communicator built through one HashStore.
void RunGroup(int world, const std::function<void(GlooCommunicator&)>& body,
              std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  gloo::rendezvous::HashStore store;
  ThreadBarrier barrier(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      auto comm = GlooCommunicator::Create(store, "test/", r, world,
                                           TestOptions(timeout));
      barrier.Wait();
      ASSERT_TRUE(comm.ok()) << comm.status();
      EXPECT_EQ((*comm)->rank(), r);
      EXPECT_EQ((*comm)->world_size(), world);
      body(**comm);
      EXPECT_FALSE((*comm)->broken());
      barrier.Wait();  // Nobody closes sockets a peer still reads.
    });
  }
  for (auto& t : threads) t.join();
}

// Rank r's value at index i; sums over ranks are small integers, so exact.
float Value(int rank, size_t i) {
  return static_cast<float>(rank + 1 + static_cast<int>(i % 13));
}
float ExpectedSum(int world, size_t i) {
  return static_cast<float>(world * (world + 1) / 2 +
                            world * static_cast<int>(i % 13));
}

// Checks one all-reduce of `count` floats on `comm`; returns false on the
// first mismatch so loops stop early.
bool CheckAllReduce(GlooCommunicator& comm, size_t count) {
  std::vector<float> data(count);
  for (size_t i = 0; i < count; ++i) data[i] = Value(comm.rank(), i);
  absl::Status s = comm.AllReduceSum(data.data(), count);
  EXPECT_TRUE(s.ok()) << s;
  if (!s.ok()) return false;
  for (size_t i = 0; i < count; ++i) {
    if (data[i] != ExpectedSum(comm.world_size(), i)) {
      ADD_FAILURE() << "rank " << comm.rank() << " count " << count << " index "
                    << i << ": " << data[i]
                    << " != " << ExpectedSum(comm.world_size(), i);
      return false;
    }
  }
  return true;
}

class GlooWorldTest : public ::testing::TestWithParam<int> {};

TEST_P(GlooWorldTest, AllReduceSizes) {
  RunGroup(GetParam(), [](GlooCommunicator& comm) {
    for (size_t count :
         {size_t{1}, size_t{576}, size_t{1000}, size_t{8192}, size_t{100003}}) {
      if (!CheckAllReduce(comm, count)) return;
    }
  });
}

// The same objects serve many calls, interleaved across sizes and kinds.
TEST_P(GlooWorldTest, RepeatedCallsReuseObjects) {
  RunGroup(GetParam(), [](GlooCommunicator& comm) {
    const int world = comm.world_size();
    std::vector<size_t> counts(world, 5);
    counts[0] = 7;
    const size_t total = std::accumulate(counts.begin(), counts.end(), 0u);
    for (int iter = 0; iter < 30; ++iter) {
      if (!CheckAllReduce(comm, iter % 2 ? 8192 : 576)) return;
      std::vector<float> in(counts[comm.rank()], comm.rank() + iter);
      std::vector<float> out(total, -1);
      ASSERT_TRUE(comm.AllGatherV(in.data(), counts, out.data()).ok());
      size_t at = 0;
      for (int r = 0; r < world; ++r) {
        for (size_t j = 0; j < counts[r]; ++j) {
          ASSERT_EQ(out[at++], r + iter);
        }
      }
      int64_t word = comm.rank() == iter % world ? iter * 1000 + 7 : -1;
      ASSERT_TRUE(comm.Broadcast(&word, sizeof(word), iter % world).ok());
      ASSERT_EQ(word, iter * 1000 + 7);
    }
  });
}

TEST_P(GlooWorldTest, BroadcastFromEveryRoot) {
  RunGroup(GetParam(), [](GlooCommunicator& comm) {
    for (int root = 0; root < comm.world_size(); ++root) {
      for (size_t bytes : {size_t{1}, size_t{13}, size_t{100000}}) {
        std::vector<uint8_t> data(bytes, 0);
        if (comm.rank() == root) {
          for (size_t i = 0; i < bytes; ++i) data[i] = (i * 7 + root) & 0xff;
        }
        ASSERT_TRUE(comm.Broadcast(data.data(), bytes, root).ok());
        for (size_t i = 0; i < bytes; ++i) {
          ASSERT_EQ(data[i], (i * 7 + root) & 0xff) << "root " << root;
        }
      }
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Worlds, GlooWorldTest, ::testing::Values(2, 3, 4));

// Gathers `counts` with rank r contributing r*1e6 + j, checks everyone gets
// the concatenation in rank order.
void CheckGather(const std::vector<size_t>& counts) {
  RunGroup(static_cast<int>(counts.size()), [&](GlooCommunicator& comm) {
    const int rank = comm.rank();
    std::vector<float> in(counts[rank]);
    for (size_t j = 0; j < in.size(); ++j) in[j] = rank * 1e6f + j;
    const size_t total = std::accumulate(counts.begin(), counts.end(), 0u);
    std::vector<float> out(total, -1);
    for (int repeat = 0; repeat < 3; ++repeat) {
      absl::Status s = comm.AllGatherV(in.data(), counts, out.data());
      ASSERT_TRUE(s.ok()) << s;
      size_t at = 0;
      for (size_t r = 0; r < counts.size(); ++r) {
        for (size_t j = 0; j < counts[r]; ++j, ++at) {
          ASSERT_EQ(out[at], r * 1e6f + j) << "from rank " << r;
        }
      }
    }
  });
}

TEST(GlooAllGatherV, VocabularySplitThreeWays) {
  CheckGather({16384, 16384, 16384});  // 49152 vocabulary rows.
}

TEST(GlooAllGatherV, UnevenCounts) {
  CheckGather({3, 3, 2, 2});           // 10 rows over 4 ranks.
  CheckGather({16385, 16384, 16383});  // Uneven large shares.
  CheckGather({50000, 49152, 11, 1});  // Very different shares.
  CheckGather({4, 0, 3});              // A rank with no share.
}

TEST(GlooCommunicator, WorldOfOne) {
  gloo::rendezvous::HashStore store;
  auto comm = GlooCommunicator::Create(store, "one/", 0, 1,
                                       TestOptions(std::chrono::seconds(1)));
  ASSERT_TRUE(comm.ok()) << comm.status();
  std::vector<float> data = {1, 2, 3};
  ASSERT_TRUE((*comm)->AllReduceSum(data.data(), data.size()).ok());
  EXPECT_THAT(data, ::testing::ElementsAre(1, 2, 3));
  std::vector<float> out(3);
  const size_t counts[] = {3};
  ASSERT_TRUE((*comm)->AllGatherV(data.data(), counts, out.data()).ok());
  EXPECT_EQ(out, data);
  ASSERT_TRUE((*comm)->Broadcast(data.data(), 12, 0).ok());
  EXPECT_FALSE((*comm)->Broadcast(data.data(), 12, 1).ok());
}

TEST(GlooCommunicator, InvalidArguments) {
  gloo::rendezvous::HashStore store;
  const GlooOptions o = TestOptions(std::chrono::seconds(1));
  EXPECT_EQ(GlooCommunicator::Create(store, "x/", 2, 2, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GlooCommunicator::Create(store, "x/", -1, 2, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GlooCommunicator::Create(store, "x/", 0, 0, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  GlooOptions bad_host = o;
  bad_host.hostname = "no-such-host.invalid";
  EXPECT_EQ(
      GlooCommunicator::Create(store, "x/", 0, 2, bad_host).status().code(),
      absl::StatusCode::kInvalidArgument);
  RunGroup(2, [](GlooCommunicator& comm) {
    float x = 1;
    const size_t three[] = {1, 1, 1};
    EXPECT_EQ(comm.AllGatherV(&x, three, &x).code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(comm.Broadcast(&x, 4, 2).code(),
              absl::StatusCode::kInvalidArgument);
  });
}

// Rank 2 of 3 never shows up: the others get an error status once the
// timeout passes, not a hang.
TEST(GlooFailure, MissingRankAtRendezvous) {
  gloo::rendezvous::HashStore store;
  const auto timeout = std::chrono::seconds(2);
  std::vector<absl::Status> status(2);
  std::vector<double> seconds(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      const auto start = Clock::now();
      status[r] = GlooCommunicator::Create(store, "missing/", r, 3,
                                           TestOptions(timeout))
                      .status();
      seconds[r] = std::chrono::duration<double>(Clock::now() - start).count();
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(status[r].code(), absl::StatusCode::kDeadlineExceeded)
        << status[r];
    EXPECT_LT(seconds[r], 8.0) << "rank " << r;
  }
}

// Both ranks join, then rank 1 stops participating: rank 0's collectives
// fail within the timeout, and the communicator stays broken afterwards.
void CheckSilentPeer(
    const std::function<absl::Status(GlooCommunicator&)>& collective) {
  gloo::rendezvous::HashStore store;
  const auto timeout = std::chrono::seconds(2);
  std::mutex mu;
  std::condition_variable cv;
  bool rank0_done = false;
  std::thread silent([&] {
    auto comm =
        GlooCommunicator::Create(store, "silent/", 1, 2, TestOptions(timeout));
    ASSERT_TRUE(comm.ok()) << comm.status();
    // Alive but silent until rank 0 has given up.
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return rank0_done; });
  });
  // A lambda, so a failed ASSERT still releases and joins the peer.
  [&] {
    auto comm =
        GlooCommunicator::Create(store, "silent/", 0, 2, TestOptions(timeout));
    ASSERT_TRUE(comm.ok()) << comm.status();
    const auto start = Clock::now();
    absl::Status s = collective(**comm);
    const double seconds =
        std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
    EXPECT_LT(seconds, 8.0);
    EXPECT_TRUE((*comm)->broken());
    EXPECT_EQ(collective(**comm).code(), absl::StatusCode::kFailedPrecondition);
  }();
  {
    std::lock_guard<std::mutex> lock(mu);
    rank0_done = true;
  }
  cv.notify_all();
  silent.join();
}

TEST(GlooFailure, SilentPeerAllReduce) {
  CheckSilentPeer([](GlooCommunicator& comm) {
    std::vector<float> data(576, 1.0f);
    return comm.AllReduceSum(data.data(), data.size());
  });
}

TEST(GlooFailure, SilentPeerAllGatherV) {
  CheckSilentPeer([](GlooCommunicator& comm) {
    std::vector<float> in(5, 1.0f), out(10);
    const size_t counts[] = {5, 5};
    return comm.AllGatherV(in.data(), counts, out.data());
  });
}

// A peer that exits (its sockets close) fails the collective promptly.
TEST(GlooFailure, DeadPeer) {
  gloo::rendezvous::HashStore store;
  const auto timeout = std::chrono::seconds(2);
  ThreadBarrier joined(2);
  std::thread dying([&] {
    auto comm =
        GlooCommunicator::Create(store, "dead/", 1, 2, TestOptions(timeout));
    joined.Wait();
    EXPECT_TRUE(comm.ok()) << comm.status();
  });  // Destroyed here: the connection to rank 0 closes.
  auto comm =
      GlooCommunicator::Create(store, "dead/", 0, 2, TestOptions(timeout));
  joined.Wait();
  dying.join();
  ASSERT_TRUE(comm.ok()) << comm.status();
  std::vector<float> data(576, 1.0f);
  const auto start = Clock::now();
  absl::Status s = (*comm)->AllReduceSum(data.data(), data.size());
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.code(), ::testing::AnyOf(absl::StatusCode::kUnavailable,
                                         absl::StatusCode::kDeadlineExceeded))
      << s;
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 8.0);
}

// Ranks as separate processes rendezvousing through files. Children report
// through their exit status: 0 ok, 1 failed to join, 2 wrong results.
TEST(GlooProcesses, ForkedRanksWithFileStore) {
  std::string dir = ::testing::TempDir() + "gloo_store_XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  constexpr int kWorld = 3;
  std::vector<pid_t> children;
  for (int r = 0; r < kWorld; ++r) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      alarm(60);  // A bug must not hang the test run.
      gloo::rendezvous::FileStore store(dir);
      auto comm = GlooCommunicator::Create(
          store, "gen1/", r, kWorld, TestOptions(std::chrono::seconds(10)));
      if (!comm.ok()) _exit(1);
      GlooCommunicator& c = **comm;
      std::vector<float> data(8192);
      for (size_t i = 0; i < data.size(); ++i) data[i] = Value(r, i);
      if (!c.AllReduceSum(data.data(), data.size()).ok()) _exit(2);
      for (size_t i = 0; i < data.size(); ++i) {
        if (data[i] != ExpectedSum(kWorld, i)) _exit(3);
      }
      const std::vector<size_t> counts = {4, 3, 3};
      std::vector<float> in(counts[r], static_cast<float>(r));
      std::vector<float> out(10, -1);
      if (!c.AllGatherV(in.data(), counts, out.data()).ok()) _exit(4);
      if (out != std::vector<float>{0, 0, 0, 0, 1, 1, 1, 2, 2, 2}) _exit(5);
      uint64_t word = r == 1 ? 0x1234567890abcdefull : 0;
      if (!c.Broadcast(&word, sizeof(word), 1).ok()) _exit(6);
      if (word != 0x1234567890abcdefull) _exit(7);
      _exit(0);
    }
    children.push_back(pid);
  }
  for (int r = 0; r < kWorld; ++r) {
    int status = 0;
    ASSERT_EQ(waitpid(children[r], &status, 0), children[r]);
    ASSERT_TRUE(WIFEXITED(status)) << "rank " << r << " status " << status;
    EXPECT_EQ(WEXITSTATUS(status), 0) << "rank " << r;
  }
}

}  // namespace
}  // namespace tpserve
