#include "api/inference_service.h"

#include <chrono>
#include <memory>
#include <utility>

#include "api/admission.h"
#include "common/net/channel_security.h"
#include "common/net/grpc_status.h"
#include "tpserve/v1/lenient_parse.h"

namespace tpserve {
namespace {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// Streams one generation to the client.
class StreamReactor final
    : public grpc::ServerWriteReactor<v1::GenerateStreamResponse>,
      public Generation::Listener {
 public:
  StreamReactor(Engine* engine, std::shared_ptr<Generation> generation)
      : engine_(engine), generation_(std::move(generation)) {
    generation_->Attach(this);
  }

  void OnGenerationReady() override { TryWrite(); }

  void OnWriteDone(bool ok) override {
    // The client is gone: stop generating for it. The engine's CANCELLED
    // then finishes the call through TryWrite.
    if (!ok) engine_->Cancel(generation_->id());
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
    }
    TryWrite();
  }

  void OnCancel() override { engine_->Cancel(generation_->id()); }

  void OnDone() override {
    generation_->Detach();
    delete this;
  }

 private:
  void TryWrite() {
    std::unique_lock<std::mutex> lock(mu_);
    if (writing_ || finished_) return;
    bool done = false;
    absl::Status status;
    GenerationOutput output;
    if (!generation_->Take(&output, &done, &status)) return;
    buffer_.Clear();
    OutputToProto(output, generation_->request().request_id, &buffer_);
    if (!done) {
      writing_ = true;
      lock.unlock();
      StartWrite(&buffer_);
      return;
    }
    finished_ = true;
    lock.unlock();
    if (status.ok() || output.has_tokens_or_text()) {
      // The last message carries the finish reason and usage (and, on an
      // error, the output produced before it).
      StartWriteAndFinish(&buffer_, grpc::WriteOptions(), ToGrpc(status));
    } else {
      Finish(ToGrpc(status));
    }
  }

  Engine* const engine_;
  const std::shared_ptr<Generation> generation_;
  std::mutex mu_;
  bool writing_ = false;   // Guarded by mu_: a write is in flight.
  bool finished_ = false;  // Guarded by mu_: Finish has been called.
  v1::GenerateStreamResponse buffer_;  // Owned by the write in flight.
};

// Collects one generation into a unary response.
class UnaryReactor final : public grpc::ServerUnaryReactor,
                           public Generation::Listener {
 public:
  UnaryReactor(Engine* engine, std::shared_ptr<Generation> generation,
               v1::GenerateResponse* response)
      : engine_(engine),
        generation_(std::move(generation)),
        response_(response) {
    generation_->Attach(this);
  }

  void OnGenerationReady() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    GenerationOutput part;
    bool done = false;
    absl::Status status;
    if (!generation_->Take(&part, &done, &status)) return;
    output_.Merge(std::move(part));
    if (!done) return;
    OutputToProto(output_, generation_->request().request_id, response_);
    finished_ = true;
    Finish(ToGrpc(status));
  }

  void OnCancel() override { engine_->Cancel(generation_->id()); }

  void OnDone() override {
    generation_->Detach();
    delete this;
  }

 private:
  Engine* const engine_;
  const std::shared_ptr<Generation> generation_;
  v1::GenerateResponse* const response_;
  std::mutex mu_;
  GenerationOutput output_;  // Guarded by mu_: all of it so far.
  bool finished_ = false;    // Guarded by mu_.
};

}  // namespace

void InferenceService::SetTokenizer(const Tokenizer* tokenizer,
                                    const ChatTemplate* chat,
                                    const RequestLimits& limits) {
  std::lock_guard<std::mutex> lock(mu_);
  model_.tokenizer = tokenizer;
  model_.chat = chat;
  model_.limits = limits;
}

void InferenceService::Serve(Engine* engine, int32_t tp) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    info_.set_serving_tp(tp);
    info_.set_kv_cache_tokens(engine->kv_capacity_tokens());
  }
  engine_.store(engine);
}

void InferenceService::StopServing() { engine_.store(nullptr); }

grpc::ServerUnaryReactor* InferenceService::GetModelInfo(
    grpc::CallbackServerContext* context,
    const v1::GetModelInfoRequest* /*request*/, v1::ModelInfo* response) {
  if (grpc::Status s = CheckApiKey(*context, api_keys_); !s.ok()) {
    return FinishNow(context, s);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    *response = info_;
  }
  return FinishNow(context, grpc::Status::OK);
}

absl::StatusOr<std::shared_ptr<Generation>> InferenceService::Start(
    grpc::CallbackServerContext* context, const v1::GenerateRequest& request,
    Engine** engine) {
  if (grpc::Status s = CheckApiKey(*context, api_keys_); !s.ok()) {
    return absl::UnauthenticatedError(s.error_message());
  }
  if (std::string e = v1::ParseError(request); !e.empty()) {
    return absl::InvalidArgumentError(e);
  }
  *engine = engine_.load();
  absl::StatusOr<PreparedRequest> prepared = Prepare(*engine, model_, request);
  if (!prepared.ok()) return prepared.status();
  return Submit(*engine, std::move(*prepared), context->deadline());
}

grpc::ServerUnaryReactor* InferenceService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request,
    v1::GenerateResponse* response) {
  Engine* engine = nullptr;
  auto generation = Start(context, *request, &engine);
  if (!generation.ok()) return FinishNow(context, ToGrpc(generation.status()));
  return new UnaryReactor(engine, std::move(*generation), response);
}

grpc::ServerWriteReactor<v1::GenerateStreamResponse>*
InferenceService::GenerateStream(grpc::CallbackServerContext* context,
                                 const v1::GenerateRequest* request) {
  Engine* engine = nullptr;
  auto generation = Start(context, *request, &engine);
  if (!generation.ok()) {
    // A reactor that only reports the error.
    class Failed final
        : public grpc::ServerWriteReactor<v1::GenerateStreamResponse> {
     public:
      explicit Failed(const grpc::Status& s) { Finish(s); }
      void OnDone() override { delete this; }
    };
    return new Failed(ToGrpc(generation.status()));
  }
  return new StreamReactor(engine, std::move(*generation));
}

grpc::ServerUnaryReactor* InferenceService::Tokenize(
    grpc::CallbackServerContext* context, const v1::TokenizeRequest* request,
    v1::TokenizeResponse* response) {
  if (grpc::Status s = CheckApiKey(*context, api_keys_); !s.ok()) {
    return FinishNow(context, s);
  }
  if (model_.tokenizer == nullptr) {
    return FinishNow(context, grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                           "the tokenizer is not loaded yet"));
  }
  if (std::string e = v1::ParseError(*request); !e.empty()) {
    return FinishNow(context,
                     grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, e));
  }
  absl::StatusOr<std::vector<int32_t>> ids =
      TokenizePrompt(*request, *model_.tokenizer, model_.chat, model_.limits);
  if (!ids.ok()) return FinishNow(context, ToGrpc(ids.status()));
  response->mutable_token_ids()->Add(ids->begin(), ids->end());
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::Detokenize(
    grpc::CallbackServerContext* context, const v1::DetokenizeRequest* request,
    v1::DetokenizeResponse* response) {
  if (grpc::Status s = CheckApiKey(*context, api_keys_); !s.ok()) {
    return FinishNow(context, s);
  }
  if (model_.tokenizer == nullptr) {
    return FinishNow(context, grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                           "the tokenizer is not loaded yet"));
  }
  if (absl::Status s = CheckNoUnknownFields(*request); !s.ok()) {
    return FinishNow(context, ToGrpc(s));
  }
  if (request->token_ids_size() > (1 << 20)) {
    return FinishNow(context, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                           "token_ids: at most 1048576 ids"));
  }
  for (int i = 0; i < request->token_ids_size(); ++i) {
    const int32_t id = request->token_ids(i);
    if (id < 0 || id >= model_.tokenizer->vocab_size()) {
      return FinishNow(context, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                             "token_ids[" + std::to_string(i) +
                                                 "] = " + std::to_string(id) +
                                                 " is outside the vocabulary"));
    }
  }
  response->set_text(
      model_.tokenizer->Decode({request->token_ids().data(),
                                static_cast<size_t>(request->token_ids_size())},
                               request->render_special_tokens()));
  return FinishNow(context, grpc::Status::OK);
}

}  // namespace tpserve
