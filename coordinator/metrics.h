// Prometheus metrics of the coordinator (prometheus-cpp), served over HTTP
// at /metrics. Names carry the tpserve_ prefix; docs/metrics.md lists
// them. The engine reports events through this class; every method is
// thread-safe and cheap (atomic counter or histogram updates).
#ifndef TPSERVE_COORDINATOR_METRICS_H_
#define TPSERVE_COORDINATOR_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tpserve {

class Metrics {
 public:
  // How a request ended: "ok" (finished normally), "cancelled",
  // "deadline_exceeded", "invalid_argument", "resource_exhausted",
  // "unavailable", "error".
  virtual ~Metrics() = default;

  // Serves /metrics on `listen` (HOST:PORT, port 0 picks one); returns the
  // bound address.
  virtual absl::StatusOr<std::string> Serve(const std::string& listen) = 0;

  virtual void RequestFinished(const std::string& outcome) = 0;
  virtual void TimeToFirstToken(double seconds) = 0;
  virtual void InterTokenLatency(double seconds) = 0;
  // One step: its wall time, sequences and tokens run.
  virtual void Step(double seconds, int sequences, int prefill_tokens,
                    int decode_tokens) = 0;
  virtual void TokensGenerated(int64_t n) = 0;
  virtual void Preempted(int64_t n) = 0;
  // Gauges, set after each step.
  virtual void SetQueue(int64_t waiting, int64_t running) = 0;
  virtual void SetKvBlocks(int64_t used, int64_t free) = 0;
  // Group state: "ready", "recovering", "failed", "draining".
  virtual void SetGroupState(const std::string& state) = 0;
  virtual void GroupFailed() = 0;
  virtual void WorkerRestarted(int64_t n) = 0;
};

// The prometheus-cpp implementation.
std::unique_ptr<Metrics> MakePrometheusMetrics();

}  // namespace tpserve

#endif  // TPSERVE_COORDINATOR_METRICS_H_
