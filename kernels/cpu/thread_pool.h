// A small fork-join pool for the CPU backend: persistent threads that run
// one parallel loop at a time, with no allocation per loop (the decode step
// runs hundreds of loops per token, each a few microseconds of work).
#ifndef TPSERVE_KERNELS_CPU_THREAD_POOL_H_
#define TPSERVE_KERNELS_CPU_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace tpserve::cpu {

class ThreadPool {
 public:
  // `threads` >= 1 workers in all, the calling thread included (so
  // threads - 1 are started).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls f(task, thread) for every task in [0, num_tasks), tasks handed out
  // dynamically; `thread` in [0, size()) identifies the executing thread
  // (0 = the caller), for per-thread scratch. Returns when all are done.
  // Not reentrant: one caller at a time, and f must not call ParallelFor.
  template <typename F>
  void ParallelFor(int64_t num_tasks, const F& f) {
    Run(
        num_tasks,
        [](const void* ctx, int64_t task, int thread) {
          (*static_cast<const F*>(ctx))(task, thread);
        },
        &f);
  }

 private:
  using Fn = void (*)(const void* ctx, int64_t task, int thread);
  void Run(int64_t num_tasks, Fn fn, const void* ctx);
  void WorkerLoop(int thread);
  void Work(int thread);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_cv_;  // Workers: a new loop or stop.
  std::condition_variable done_cv_;  // Caller: the last worker finished.
  bool stop_ = false;                // Guarded by mu_.
  // The current loop; written by Run before generation_ is bumped (release)
  // and read by workers after they observe the bump (acquire).
  Fn fn_ = nullptr;
  const void* ctx_ = nullptr;
  int64_t num_tasks_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_task_{0};
  std::atomic<int> pending_workers_{0};
};

}  // namespace tpserve::cpu

#endif  // TPSERVE_KERNELS_CPU_THREAD_POOL_H_
