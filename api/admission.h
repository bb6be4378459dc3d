// The one admission path of both doors. A door turns its wire format into
// the public API's GenerateRequest (the gRPC door receives one; the HTTP
// door builds one per prompt from OpenAI's JSON, api/openai_json.h), then
// calls Prepare (validation and tokenization, api/request.h, with refusals
// counted in the engine's metrics) and Submit (queued on the engine), and
// reads GenerationOutput back. Only the gRPC door needs the output as
// protobuf (OutputToProto); the HTTP door renders it as JSON directly.
#ifndef TPSERVE_API_ADMISSION_H_
#define TPSERVE_API_ADMISSION_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "api/request.h"
#include "common/chat_template.h"
#include "common/tokenizer.h"
#include "coordinator/engine.h"
#include "coordinator/generation.h"
#include "tpserve/v1/inference.pb.h"

namespace tpserve {

// What validation needs of the model. The pointers outlive the doors.
struct AdmissionModel {
  const Tokenizer* tokenizer = nullptr;
  const ChatTemplate* chat = nullptr;  // Null: the model has no template.
  RequestLimits limits;
};

// Validates and tokenizes `request` for `engine`. Unavailable while the
// model or the engine is not there yet (loading, draining); a refusal
// (InvalidArgument naming the field) is counted in the engine's metrics.
absl::StatusOr<PreparedRequest> Prepare(Engine* engine,
                                        const AdmissionModel& model,
                                        const v1::GenerateRequest& request);

// Queues `request` on `engine`; the Generation to attach to. The engine
// ends it at `deadline` (DEADLINE_EXCEEDED).
absl::StatusOr<std::shared_ptr<Generation>> Submit(
    Engine* engine, PreparedRequest request,
    std::chrono::system_clock::time_point deadline);

// The public API's finish reason and output message.
v1::FinishReason FinishReasonToProto(FinishReason reason);
void OutputToProto(const GenerationOutput& output,
                   const std::string& request_id,
                   v1::GenerateStreamResponse* out);
void OutputToProto(const GenerationOutput& output,
                   const std::string& request_id, v1::GenerateResponse* out);

}  // namespace tpserve

#endif  // TPSERVE_API_ADMISSION_H_
