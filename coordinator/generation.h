// One request's output on its way from the engine thread to the RPC that
// streams (or collects) it.
//
// The engine appends text, token ids and logprobs as steps complete and
// finally marks the generation done with a status. The RPC side attaches a
// Listener that is told when output is ready and then Take()s everything
// accumulated since the last Take, so a slow client receives fewer, larger
// messages instead of making the engine wait (the engine never blocks on a
// client).
//
// Locking: listener_mu_ is held while a listener is notified and while it
// detaches, so after Detach() returns no notification is running or will
// run (the RPC may then delete itself). mu_ guards the data; a listener may
// call Take() from OnGenerationReady (lock order listener_mu_ -> mu_).
#ifndef TPSERVE_COORDINATOR_GENERATION_H_
#define TPSERVE_COORDINATOR_GENERATION_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>

#include "coordinator/request.h"
#include "tpserve/v1/inference.pb.h"

namespace tpserve {

class Generation {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    // Output or the end is ready; called on the engine thread.
    virtual void OnGenerationReady() = 0;
  };

  Generation(PreparedRequest request,
             std::chrono::system_clock::time_point deadline)
      : request_(std::move(request)), deadline_(deadline) {}

  const PreparedRequest& request() const { return request_; }
  std::chrono::system_clock::time_point deadline() const { return deadline_; }
  // Assigned by the engine on admission.
  uint64_t id() const { return id_; }
  void set_id(uint64_t id) { id_ = id; }

  // --- Engine side.
  void Append(const std::string& text, int32_t token,
              const v1::TokenLogprob* logprob) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.mutable_text()->append(text);
      pending_.add_token_ids(token);
      if (logprob != nullptr) *pending_.add_logprobs() = *logprob;
      has_pending_ = true;
    }
    Notify();
  }
  // Text without a token (the tail released at the end).
  void AppendText(const std::string& text) {
    if (text.empty()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.mutable_text()->append(text);
      has_pending_ = true;
    }
    Notify();
  }
  // The end: `status` OK with a finish reason, or the error the RPC ends
  // with (output appended before it is still delivered first).
  void Finish(grpc::Status status, v1::FinishReason reason,
              std::string matched_stop, const v1::Usage& usage) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (done_) return;
      done_ = true;
      status_ = std::move(status);
      pending_.set_finish_reason(reason);
      pending_.set_matched_stop(std::move(matched_stop));
      *pending_.mutable_usage() = usage;
      has_pending_ = true;
    }
    Notify();
  }

  // --- RPC side.
  void Attach(Listener* listener) {
    {
      std::lock_guard<std::mutex> lock(listener_mu_);
      listener_ = listener;
    }
    Notify();  // Output may already be waiting.
  }
  void Detach() {
    std::lock_guard<std::mutex> lock(listener_mu_);
    listener_ = nullptr;
  }
  // Moves the output accumulated since the last call into `out` (merged);
  // false if there was none. `done`/`status` say whether this is the end.
  bool Take(v1::GenerateStreamResponse* out, bool* done, grpc::Status* status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!has_pending_) return false;
    *out = std::move(pending_);
    pending_.Clear();
    out->set_request_id(request_.request_id);
    has_pending_ = false;
    *done = done_;
    *status = status_;
    return true;
  }

 private:
  void Notify() {
    std::lock_guard<std::mutex> lock(listener_mu_);
    if (listener_ != nullptr) listener_->OnGenerationReady();
  }

  const PreparedRequest request_;
  const std::chrono::system_clock::time_point deadline_;
  uint64_t id_ = 0;

  std::mutex listener_mu_;
  Listener* listener_ = nullptr;  // Guarded by listener_mu_.

  std::mutex mu_;
  v1::GenerateStreamResponse pending_;  // Guarded by mu_.
  bool has_pending_ = false;            // Guarded by mu_.
  bool done_ = false;                   // Guarded by mu_.
  grpc::Status status_;                 // Guarded by mu_.
};

}  // namespace tpserve

#endif  // TPSERVE_COORDINATOR_GENERATION_H_
