// One request's output on its way from the engine thread to the door that
// streams (or collects) it.
//
// The engine appends text, token ids and logprobs as steps complete and
// finally marks the generation done with a status. The door attaches a
// Listener that is told when output is ready and then Take()s everything
// accumulated since the last Take, so a slow client receives fewer, larger
// messages instead of making the engine wait (the engine never blocks on a
// client).
//
// Only core types here: the doors (api/) map GenerationOutput to their wire
// format in one place (api/admission.h).
//
// Locking: listener_mu_ is held while a listener is notified and while it
// detaches, so after Detach() returns no notification is running or will
// run (the door may then delete itself). mu_ guards the data; a listener may
// call Take() from OnGenerationReady (lock order listener_mu_ -> mu_).
#ifndef TPSERVE_COORDINATOR_GENERATION_H_
#define TPSERVE_COORDINATOR_GENERATION_H_

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/prepared_request.h"

namespace tpserve {

// Why a generation ended well. kNone until it ends (and for errors).
enum class FinishReason { kNone, kLength, kStop };

// The log-probability of a sampled token and, when asked for, of the most
// likely candidates at its position.
struct TokenLogprob {
  int32_t token_id = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // (token id, logprob).
};

struct GenerationUsage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  double time_to_first_token_ms = 0;  // From admission.
  int32_t preemptions = 0;            // Times preempted and recomputed.
  int32_t max_step_sequences = 0;     // Most sequences sharing one step.
};

// Output accumulated between two Takes; the last one carries the end.
struct GenerationOutput {
  std::string text;
  std::vector<int32_t> token_ids;
  std::vector<TokenLogprob> logprobs;  // Empty unless the request asked.
  FinishReason finish_reason = FinishReason::kNone;
  std::string matched_stop;  // The stop string or token text that ended it.
  GenerationUsage usage;     // Set on the last output only.

  bool has_tokens_or_text() const {
    return !text.empty() || !token_ids.empty();
  }
  // Appends `later` (taken after this one): text, tokens and logprobs
  // concatenate; the end fields come from `later` when it has them.
  void Merge(GenerationOutput&& later) {
    text += later.text;
    token_ids.insert(token_ids.end(), later.token_ids.begin(),
                     later.token_ids.end());
    for (TokenLogprob& lp : later.logprobs) logprobs.push_back(std::move(lp));
    if (later.finish_reason != FinishReason::kNone) {
      finish_reason = later.finish_reason;
      matched_stop = std::move(later.matched_stop);
    }
    if (later.usage.prompt_tokens != 0 || later.usage.completion_tokens != 0) {
      usage = later.usage;
    }
  }
};

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
              const TokenLogprob* logprob) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.text.append(text);
      pending_.token_ids.push_back(token);
      if (logprob != nullptr) pending_.logprobs.push_back(*logprob);
      has_pending_ = true;
    }
    Notify();
  }

  // Text without a token (the tail released at the end).
  void AppendText(const std::string& text) {
    if (text.empty()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.text.append(text);
      has_pending_ = true;
    }
    Notify();
  }

  // The end: `status` OK with a finish reason, or the error the door ends
  // with (output appended before it is still delivered first).
  void Finish(absl::Status status, FinishReason reason,
              std::string matched_stop, const GenerationUsage& usage) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (done_) return;
      done_ = true;
      status_ = std::move(status);
      pending_.finish_reason = reason;
      pending_.matched_stop = std::move(matched_stop);
      pending_.usage = usage;
      has_pending_ = true;
    }
    Notify();
  }

  // --- Door side.
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

  // Moves the output accumulated since the last call into `out` (replacing
  // it); false if there was none. `done`/`status` say whether this is the
  // end.
  bool Take(GenerationOutput* out, bool* done, absl::Status* status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!has_pending_) return false;
    *out = std::move(pending_);
    pending_ = GenerationOutput();
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
  GenerationOutput pending_;  // Guarded by mu_.
  bool has_pending_ = false;  // Guarded by mu_.
  bool done_ = false;         // Guarded by mu_.
  absl::Status status_;       // Guarded by mu_.
};

}  // namespace tpserve

#endif  // TPSERVE_COORDINATOR_GENERATION_H_
