// The public tpserve.v1.Inference gRPC service (callback API).
//
// Each streaming call is a reactor with an explicit lifetime: it attaches to
// its Generation as a listener, writes whatever the engine has produced when
// the previous write completes (one write in flight, as gRPC requires), and
// deletes itself in OnDone after detaching. Client cancellation and
// deadlines go to the engine, which frees the sequence within a step and
// ends the generation; the reactor then finishes with that status.
//
// Until Serve() is called (the worker group is loading) generation calls
// answer UNAVAILABLE; GetModelInfo and the tokenizer calls work as soon as
// the tokenizer is known.
#ifndef TPSERVE_API_INFERENCE_SERVICE_H_
#define TPSERVE_API_INFERENCE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <mutex>

#include "api/admission.h"
#include "api/request.h"
#include "common/chat_template.h"
#include "common/tokenizer.h"
#include "coordinator/engine.h"
#include "tpserve/v1/inference.grpc.pb.h"

namespace tpserve {

class InferenceService final : public v1::Inference::CallbackService {
 public:
  explicit InferenceService(v1::ModelInfo info) : info_(std::move(info)) {}

  // What the tokenizer RPCs need; all pointers outlive the service.
  void SetTokenizer(const Tokenizer* tokenizer, const ChatTemplate* chat,
                    const RequestLimits& limits);
  // Starts serving generation on `engine` (outlives the service, or
  // StopServing is called first). Updates the serving fields of ModelInfo.
  void Serve(Engine* engine, int32_t tp);
  // Generation calls answer UNAVAILABLE again (draining, group rebuild).
  void StopServing();
  // Keys every call must carry as "authorization: Bearer KEY" (none: open).
  // Set before serving.
  void SetApiKeys(std::vector<std::string> keys) {
    api_keys_ = std::move(keys);
  }

  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const v1::GetModelInfoRequest* request,
                                         v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* context,
                                     const v1::GenerateRequest* request,
                                     v1::GenerateResponse* response) override;
  grpc::ServerWriteReactor<v1::GenerateStreamResponse>* GenerateStream(
      grpc::CallbackServerContext* context,
      const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(
      grpc::CallbackServerContext* context,
      const v1::DetokenizeRequest* request,
      v1::DetokenizeResponse* response) override;

 private:
  // Authenticates, then the doors' one admission path (api/admission.h).
  absl::StatusOr<std::shared_ptr<Generation>> Start(
      grpc::CallbackServerContext* context, const v1::GenerateRequest& request,
      Engine** engine);

  mutable std::mutex mu_;
  v1::ModelInfo info_;                 // Guarded by mu_.
  AdmissionModel model_;               // Set once before serving.
  std::vector<std::string> api_keys_;  // Set once before serving.
  std::atomic<Engine*> engine_{nullptr};
};

}  // namespace tpserve

#endif  // TPSERVE_API_INFERENCE_SERVICE_H_
