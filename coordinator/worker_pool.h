// Where a coordinator's worker processes come from, and how they come back
// after a failure (DESIGN.md, failure model).
//
// `tpserve serve` spawns its workers (SpawnedWorkerPool): a worker that
// exited or stopped answering is killed and started again. In a cluster the
// workers are started by someone else (Kubernetes) at fixed addresses
// (StaticWorkerPool): the coordinator waits for them to answer again.
#ifndef TPSERVE_COORDINATOR_WORKER_POOL_H_
#define TPSERVE_COORDINATOR_WORKER_POOL_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/net/channel_security.h"

namespace tpserve {

class WorkerPool {
 public:
  virtual ~WorkerPool() = default;
  // Rank addresses of workers that answer Info, (re)starting or waiting for
  // the ones that are gone or hung. Unavailable after `timeout`.
  virtual absl::StatusOr<std::vector<std::string>> Ensure(
      std::chrono::milliseconds timeout) = 0;
  // Why a worker is known to be gone ("rank 1 (pid 123) was killed by
  // signal 9"), or "" (cheap; polled by the health monitor).
  virtual std::string CheckExited() = 0;
  // Workers restarted so far.
  virtual int64_t restarts() const = 0;
};

// Answers Health within `deadline`?
bool WorkerAnswers(const std::string& address, const ChannelSecurity& security,
                   std::chrono::milliseconds deadline);

class StaticWorkerPool final : public WorkerPool {
 public:
  StaticWorkerPool(std::vector<std::string> addresses, ChannelSecurity security)
      : addresses_(std::move(addresses)), security_(std::move(security)) {}
  absl::StatusOr<std::vector<std::string>> Ensure(
      std::chrono::milliseconds timeout) override;
  std::string CheckExited() override { return ""; }
  int64_t restarts() const override { return 0; }

 private:
  const std::vector<std::string> addresses_;
  const ChannelSecurity security_;
};

class SpawnedWorkerPool final : public WorkerPool {
 public:
  // `argv_tail` is appended to "BINARY --listen 127.0.0.1:0". The workers
  // get `security.token` in their environment ($TPSERVE_WORKER_TOKEN; not
  // on the command line, which other users can read).
  SpawnedWorkerPool(std::string binary, int world,
                    std::vector<std::string> argv_tail,
                    ChannelSecurity security);
  // Stops every worker (SIGTERM, then SIGKILL after 5 s).
  ~SpawnedWorkerPool() override;

  // Starts the workers that are not running; the first call starts all.
  absl::StatusOr<std::vector<std::string>> Ensure(
      std::chrono::milliseconds timeout) override;
  std::string CheckExited() override;
  int64_t restarts() const override;
  void StopAll();

 private:
  struct Child {
    pid_t pid = -1;
    std::string address;
    bool started_once = false;
  };
  // Requires mu_.
  absl::Status Spawn(int rank, Child& child);
  void Kill(Child& child);

  const std::string binary_;
  const std::vector<std::string> argv_tail_;
  const ChannelSecurity security_;
  mutable std::mutex mu_;
  std::vector<Child> children_;  // Guarded by mu_.
  int64_t restarts_ = 0;         // Guarded by mu_.
  std::string exited_;           // Guarded by mu_: first exit seen.
};

}  // namespace tpserve

#endif  // TPSERVE_COORDINATOR_WORKER_POOL_H_
