#include "kernels/cpu/thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace tpserve::cpu {
namespace {

// Spin this many rounds before sleeping: decode-step loops arrive every few
// microseconds, and a futex wake-up costs about as much as the loop itself.
// Bounded so an idle server, or several in-process ranks sharing cores,
// do not burn them: `pause` takes ~40-140 cycles (Skylake and later), so
// this is ~30-100 us.
constexpr int kSpinRounds = 2000;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  const int extra = threads > 1 ? threads - 1 : 0;
  workers_.reserve(extra);
  for (int i = 0; i < extra; ++i) {
    workers_.emplace_back([this, i] { WorkerLoop(i + 1); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::Work(int thread) {
  for (;;) {
    const int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= num_tasks_) return;
    fn_(ctx_, task, thread);
  }
}

void ThreadPool::Run(int64_t num_tasks, Fn fn, const void* ctx) {
  if (num_tasks <= 0) return;
  if (workers_.empty() || num_tasks == 1) {
    for (int64_t t = 0; t < num_tasks; ++t) fn(ctx, t, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = fn;
    ctx_ = ctx;
    num_tasks_ = num_tasks;
    next_task_.store(0, std::memory_order_relaxed);
    pending_workers_.store(static_cast<int>(workers_.size()),
                           std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_cv_.notify_all();
  Work(0);
  // Every worker takes part in every loop (it may find no task left), so
  // fn_/ctx_ stay valid until all have checked in.
  for (int i = 0; i < kSpinRounds; ++i) {
    if (pending_workers_.load(std::memory_order_acquire) == 0) return;
    CpuRelax();
  }
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] {
    return pending_workers_.load(std::memory_order_acquire) == 0;
  });
}

void ThreadPool::WorkerLoop(int thread) {
  uint64_t seen = 0;
  for (;;) {
    bool woke = false;
    for (int i = 0; i < kSpinRounds; ++i) {
      if (generation_.load(std::memory_order_acquire) != seen) {
        woke = true;
        break;
      }
      CpuRelax();
    }
    if (!woke) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_cv_.wait(lock, [&] {
        return stop_ || generation_.load(std::memory_order_acquire) != seen;
      });
      if (stop_) return;
    }
    seen = generation_.load(std::memory_order_acquire);
    Work(thread);
    if (pending_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // Under the lock, so the caller cannot miss it between its predicate
      // check and its wait.
      std::lock_guard<std::mutex> lock(mu_);
      done_cv_.notify_one();
    }
  }
}

}  // namespace tpserve::cpu
