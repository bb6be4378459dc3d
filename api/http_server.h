// The OpenAI-compatible HTTP door of the coordinator: POST /v1/completions,
// POST /v1/chat/completions (streaming as Server-Sent Events, or whole),
// GET /v1/models and GET /health, served with cpp-httplib next to the gRPC
// service and feeding the same Engine.
//
// A request goes JSON -> v1::GenerateRequest (api/openai_json.h) ->
// PrepareRequest -> Engine::Submit, exactly the gRPC path, so both doors
// validate alike. cpp-httplib runs each connection on a pool thread; a
// generation handler blocks that thread on a condition variable signalled
// by the Generation's listener, writing output as it arrives. While it
// waits it also polls its socket, so a client that goes away (mid-stream,
// while queued, or while waiting for a whole response) has its generations
// cancelled within ~100 ms and their KV blocks freed.
//
// Stop() cancels what is still running (the engine must still be alive)
// and joins every thread; call it before the engine goes away.
#ifndef TPSERVE_API_HTTP_SERVER_H_
#define TPSERVE_API_HTTP_SERVER_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/request.h"
#include "common/chat_template.h"
#include "common/tokenizer.h"
#include "coordinator/engine.h"

namespace tpserve {

struct HttpServerOptions {
  std::string listen;      // HOST:PORT ("[::1]:8000" for IPv6); port 0 picks.
  std::string model_name;  // The id of /v1/models and of requests' "model".
  // When non-empty, /v1/* requires "Authorization: Bearer KEY" with one of
  // these (/health stays open for probes).
  std::vector<std::string> api_keys;
  // Connections served at once; each streaming client holds one.
  int threads = 256;
  size_t max_body_bytes = 8 << 20;  // Larger bodies get 413.
  int read_timeout_s = 30;          // A client this slow to send is dropped.
  int write_timeout_s = 30;         // ... or to read: its generation ends.
};

// The default model id: the model path's last component ("model.gguf", or
// a Hugging Face folder's name).
std::string ModelNameFromPath(const std::string& path);

class HttpServer {
 public:
  HttpServer();
  ~HttpServer();  // Stop()s.
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Starts serving on options.listen and returns the bound HOST:PORT.
  // `engine`, `tokenizer`, `chat` (null: the model has no chat template)
  // must outlive Stop(). `readiness` is asked on every generation request
  // and by /health: OK when serving, Unavailable with the reason otherwise
  // (loading, draining), which the client gets as 503.
  absl::StatusOr<std::string> Start(const HttpServerOptions& options,
                                    Engine* engine, const Tokenizer* tokenizer,
                                    const ChatTemplate* chat,
                                    const RequestLimits& limits,
                                    std::function<absl::Status()> readiness);

  // Cancels in-flight generations (clients get an error event or 503),
  // closes the listener and joins every connection thread. Idempotent.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tpserve

#endif  // TPSERVE_API_HTTP_SERVER_H_
