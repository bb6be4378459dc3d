#include "api/admission.h"

#include <utility>

namespace tpserve {
namespace {

template <typename Message>
void FillOutput(const GenerationOutput& output, const std::string& request_id,
                Message* out) {
  out->set_request_id(request_id);
  out->set_text(output.text);
  out->mutable_token_ids()->Add(output.token_ids.begin(),
                                output.token_ids.end());
  for (const TokenLogprob& lp : output.logprobs) {
    v1::TokenLogprob* p = out->add_logprobs();
    p->set_token_id(lp.token_id);
    p->set_logprob(lp.logprob);
    for (const auto& [id, logprob] : lp.top) {
      v1::TopLogprob* top = p->add_top();
      top->set_token_id(id);
      top->set_logprob(logprob);
    }
  }
  out->set_finish_reason(FinishReasonToProto(output.finish_reason));
  out->set_matched_stop(output.matched_stop);
  const GenerationUsage& u = output.usage;
  if (u.prompt_tokens != 0 || u.completion_tokens != 0) {
    v1::Usage* usage = out->mutable_usage();
    usage->set_prompt_tokens(u.prompt_tokens);
    usage->set_completion_tokens(u.completion_tokens);
    usage->set_time_to_first_token_ms(u.time_to_first_token_ms);
    usage->set_preemptions(u.preemptions);
    usage->set_max_step_sequences(u.max_step_sequences);
  }
}

}  // namespace

absl::StatusOr<PreparedRequest> Prepare(Engine* engine,
                                        const AdmissionModel& model,
                                        const v1::GenerateRequest& request) {
  if (engine == nullptr || model.tokenizer == nullptr) {
    return absl::UnavailableError(
        "the model is not loaded yet (or the server is draining); retry");
  }
  absl::StatusOr<PreparedRequest> prepared =
      PrepareRequest(request, *model.tokenizer, model.chat, model.limits);
  if (!prepared.ok()) engine->RecordRejected(prepared.status());
  return prepared;
}

absl::StatusOr<std::shared_ptr<Generation>> Submit(
    Engine* engine, PreparedRequest request,
    std::chrono::system_clock::time_point deadline) {
  auto generation = std::make_shared<Generation>(std::move(request), deadline);
  absl::Status s = engine->Submit(generation);
  if (!s.ok()) return s;
  return generation;
}

v1::FinishReason FinishReasonToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case FinishReason::kNone:
      break;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

void OutputToProto(const GenerationOutput& output,
                   const std::string& request_id,
                   v1::GenerateStreamResponse* out) {
  FillOutput(output, request_id, out);
}

void OutputToProto(const GenerationOutput& output,
                   const std::string& request_id, v1::GenerateResponse* out) {
  FillOutput(output, request_id, out);
}

}  // namespace tpserve
