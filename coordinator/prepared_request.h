// A request as the serving core runs it: validated and tokenized by a door
// (api/request.h turns the public proto into one), so nothing past the
// door re-validates. No wire types: the engine and scheduler see only this.
#ifndef TPSERVE_COORDINATOR_PREPARED_REQUEST_H_
#define TPSERVE_COORDINATOR_PREPARED_REQUEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/sampling.h"

namespace tpserve {

struct PreparedRequest {
  // Given, or generated ("req-" + 16 random hex digits).
  std::string request_id;
  std::vector<int32_t> prompt;  // Token ids; never empty.
  // Resolved: defaults applied, validated; has_seed is always true (a random
  // seed is picked when the request has none, so a preempted or restarted
  // sequence resamples the same tokens).
  SamplingParams sampling;
  int32_t max_tokens = 0;  // Resolved: 0 in the request -> rest of context.
  std::vector<std::string> stop;  // Stop strings, as given.
  // The request's stop_token_ids, then the tokenizer's end-of-generation
  // ids unless ignore_eos; no duplicates.
  std::vector<int32_t> stop_ids;
  bool logprobs = false;  // sampling.logprobs, or top_logprobs > 0.
  bool render_special = false;
};

}  // namespace tpserve

#endif  // TPSERVE_COORDINATOR_PREPARED_REQUEST_H_
