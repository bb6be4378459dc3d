#include "api/http_server.h"

#include <errno.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/admission.h"
#include "api/openai_json.h"
#include "common/json_util.h"

namespace tpserve {
namespace {

using nlohmann::ordered_json;
using openai::ApiError;
using openai::Endpoint;
using openai::MakeApiError;

// The connection the request on this pool thread came in on (set by
// Server::process_and_close_socket), so handlers can watch it.
thread_local int t_socket = -1;
// Set by a handler that leaves request bytes unread (an oversized or
// unauthenticated body): the connection cannot carry another request.
thread_local bool t_close = false;

// How often a waiting handler checks its client and Stop(); output itself
// wakes it at once.
constexpr auto kPollInterval = std::chrono::milliseconds(100);

// Whether the peer of `sock` is still there: a FIN (client closed or died)
// or an error shows up as RDHUP/HUP/ERR without reading anything. Extra
// bytes (a pipelined request) are not a disconnect.
bool ClientConnected(int sock) {
  if (sock < 0) return true;
  pollfd p{sock, POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0) return true;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) == 0;
}

// httplib::Server whose connection threads let their handlers know their
// socket. cpp-httplib 0.11 tells a handler that its client left only when a
// write fails, which for a queued or a non-streaming request happens only
// after the whole generation has run. process_and_close_socket is the
// library's per-connection hook (its SSLServer overrides it as well); this
// one runs the same keep-alive loop, plus: the thread-local socket,
// TCP_NODELAY (SSE chunks are small and must not wait for Nagle), an idle
// wait that notices stop() within 50 ms, and t_close.
class Server final : public httplib::Server {
 public:
  int listener() const { return svr_sock_; }

 private:
  bool process_and_close_socket(socket_t sock) override {
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    t_socket = sock;
    const bool ok = httplib::detail::process_client_socket(
        sock, read_timeout_sec_, read_timeout_usec_, write_timeout_sec_,
        write_timeout_usec_, [&](httplib::Stream& strm) {
          bool ret = false;
          for (size_t left = keep_alive_max_count_; left > 0; --left) {
            if (!WaitForRequest(sock)) break;
            t_close = false;
            bool closed = false;
            ret = process_request(strm, /*close_connection=*/left == 1, closed,
                                  nullptr);
            if (!ret || closed || t_close) break;
          }
          return ret;
        });
    t_socket = -1;
    shutdown(sock, SHUT_RDWR);
    httplib::detail::close_socket(sock);
    return ok;
  }

  // Waits for the next request: false on the keep-alive timeout or stop().
  bool WaitForRequest(int sock) {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::seconds(keep_alive_timeout_sec_);
    while (svr_sock_ != INVALID_SOCKET) {
      pollfd p{sock, POLLIN, 0};
      const int r = poll(&p, 1, 50);
      if (r > 0) return true;  // Bytes, or an EOF the read will report.
      if (r < 0 && errno != EINTR) return false;
      if (std::chrono::steady_clock::now() >= deadline) return false;
    }
    return false;
  }
};

// The generations of one HTTP request (prompts x n choices), and the
// listener that wakes the handler thread when any of them has output.
class Call final : public Generation::Listener {
 public:
  struct Choice {
    std::shared_ptr<Generation> generation;
    int prompt = 0;  // Which prompt of the request.
    bool done = false;
    absl::Status status;
    // Whole responses: all of the output; streams: only the end fields
    // (finish reason, usage).
    GenerationOutput output;
    size_t sent_bytes = 0;  // Streams: text sent (logprobs text_offset).
  };

  explicit Call(Engine* engine) : engine_(engine) {}
  // Cancels what has not finished (a client that left, a failed sibling,
  // Stop), which frees its KV blocks within a step; after Detach no
  // notification runs, so this object may go.
  ~Call() override {
    for (Choice& c : choices_) {
      if (!c.done) engine_->Cancel(c.generation->id());
    }
    for (Choice& c : choices_) c.generation->Detach();
  }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  absl::Status Submit(PreparedRequest request, int prompt) {
    absl::StatusOr<std::shared_ptr<Generation>> generation =
        tpserve::Submit(engine_, std::move(request),
                        std::chrono::system_clock::time_point::max());
    if (!generation.ok()) return generation.status();
    Choice c;
    c.generation = std::move(*generation);
    c.prompt = prompt;
    choices_.push_back(std::move(c));
    return absl::OkStatus();
  }
  void AttachAll() {
    for (Choice& c : choices_) c.generation->Attach(this);
  }

  // Engine thread.
  void OnGenerationReady() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_ = true;
    }
    cv_.notify_one();
  }
  // Until some output may be ready, or `timeout`.
  void Wait(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [this] { return ready_; });
    ready_ = false;
  }

  // Moves choice `c`'s new output into `part`; false if there was none.
  // The end (status, finish reason, usage) is also kept in `c`.
  static bool Take(Choice& c, GenerationOutput* part) {
    bool done = false;
    if (!c.generation->Take(part, &done, &c.status)) return false;
    if (done) {
      c.done = true;
      c.output.finish_reason = part->finish_reason;
      c.output.usage = part->usage;
    }
    return true;
  }

  std::vector<Choice>& choices() { return choices_; }

  // Prompt tokens count once per prompt (not per choice), as OpenAI's do.
  ordered_json Usage() const {
    int64_t prompt = 0, completion = 0;
    int last_prompt = -1;
    for (const Choice& c : choices_) {
      if (c.prompt != last_prompt) prompt += c.output.usage.prompt_tokens;
      last_prompt = c.prompt;
      completion += c.output.usage.completion_tokens;
    }
    return openai::UsageJson(prompt, completion);
  }

 private:
  Engine* const engine_;
  std::vector<Choice> choices_;  // Handler thread only.
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;  // Guarded by mu_.
};

std::string RandomHex(int digits) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::string out;
  while (static_cast<int>(out.size()) < digits) {
    absl::StrAppend(&out, absl::Hex(rng(), absl::kZeroPad16));
  }
  return out.substr(0, digits);
}

// Compares without an early exit, so the time taken says nothing about
// how much of a key matched.
bool SameKey(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ b[i];
  return diff == 0;
}

// For a response sent with request bytes still unread (a body too large,
// unauthenticated, or for no route): the connection ends after it.
void CloseAfter(httplib::Response& res) {
  t_close = true;
  res.set_header("Connection", "close");
}

void SendJson(httplib::Response& res, int status, const ordered_json& body) {
  res.status = status;
  res.set_content(openai::Dump(body), "application/json");
}

void SendError(httplib::Response& res, const ApiError& error) {
  SendJson(res, error.http_status, openai::ErrorJson(error));
}

// The generic message for a status httplib produced itself.
std::string StatusMessage(int status) {
  switch (status) {
    case 400:
      return "malformed HTTP request";
    case 404:
      return "no such endpoint";
    case 413:
      return "the request body is too large";
    case 414:
      return "the request URI is too long";
    case 415:
      return "unsupported Content-Encoding";
    default:
      return absl::StrCat("HTTP error ", status);
  }
}

}  // namespace

class HttpServer::Impl {
 public:
  ~Impl() { Stop(); }

  absl::StatusOr<std::string> Start(const HttpServerOptions& options,
                                    Engine* engine, const Tokenizer* tokenizer,
                                    const ChatTemplate* chat,
                                    const RequestLimits& limits,
                                    std::function<absl::Status()> readiness);
  void Stop();

 private:
  struct SseStream {
    std::unique_ptr<Call> call;
    openai::ResponseMeta meta;
    bool include_usage = false;
    int socket = -1;
    bool started = false;
  };

  void Routes();
  bool Authorized(const httplib::Request& req, httplib::Response& res) const;
  void HandleGenerate(const httplib::Request& req, httplib::Response& res,
                      const httplib::ContentReader& reader, Endpoint endpoint);
  void RespondWhole(std::unique_ptr<Call> call,
                    const openai::ResponseMeta& meta, int socket,
                    httplib::Response& res);
  // One call of the SSE content provider: writes what is ready (waiting
  // for it if nothing is); false ends the response (the client is gone).
  bool StreamStep(SseStream& st, httplib::DataSink& sink);
  std::string TokenBytes(int32_t id) const {
    return model_.tokenizer->TokenBytes(id, /*render_special=*/true);
  }
  // The served model, as /v1/models lists it.
  ordered_json ModelJson() const {
    ordered_json model;
    model["id"] = options_.model_name;
    model["object"] = "model";
    model["created"] = created_;
    model["owned_by"] = "tpserve";
    model["max_model_len"] = model_.limits.max_context;
    return model;
  }

  HttpServerOptions options_;
  Engine* engine_ = nullptr;
  AdmissionModel model_;
  std::function<absl::Status()> readiness_;
  int64_t created_ = 0;
  openai::TokenBytes token_bytes_;

  Server server_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::once_flag stop_once_;
  // SSE responses not yet released. Stop waits for them before it stops
  // httplib, whose chunked writer quits (leaving the body without its last
  // chunk) once the server is shutting down.
  std::mutex streams_mu_;
  std::condition_variable streams_cv_;
  int open_streams_ = 0;  // Guarded by streams_mu_.
};

absl::StatusOr<std::string> HttpServer::Impl::Start(
    const HttpServerOptions& options, Engine* engine,
    const Tokenizer* tokenizer, const ChatTemplate* chat,
    const RequestLimits& limits, std::function<absl::Status()> readiness) {
  options_ = options;
  engine_ = engine;
  model_.tokenizer = tokenizer;
  model_.chat = chat;
  model_.limits = limits;
  readiness_ =
      readiness ? std::move(readiness) : [] { return absl::OkStatus(); };
  if (options_.threads < 1) {
    return absl::InvalidArgumentError("the HTTP server needs threads >= 1");
  }
  created_ = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  token_bytes_ = [this](int32_t id) { return TokenBytes(id); };

  const size_t colon = options.listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(options.listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http-listen takes HOST:PORT, got '", options.listen, "'"));
  }
  const std::string host = options.listen.substr(0, colon);
  std::string bind_host = host;
  if (bind_host.size() >= 2 && bind_host.front() == '[' &&
      bind_host.back() == ']') {
    bind_host = bind_host.substr(1, bind_host.size() - 2);
  }

  const int threads = options_.threads;
  server_.new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  server_.set_payload_max_length(options_.max_body_bytes);
  server_.set_read_timeout(options_.read_timeout_s, 0);
  server_.set_write_timeout(options_.write_timeout_s, 0);
  server_.set_keep_alive_max_count(1000);
  server_.set_keep_alive_timeout(5);
  Routes();

  if (port == 0) {
    port = server_.bind_to_any_port(bind_host);
  } else if (!server_.bind_to_port(bind_host, port)) {
    port = -1;
  }
  if (port <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "could not listen for HTTP on ", options.listen,
        " (address in use? pass --http-listen HOST:PORT with a free port)"));
  }
  // The library listens with a backlog of 5, which drops connections when
  // many clients connect at once; Linux lets listen() raise it in place.
  ::listen(server_.listener(), 1024);
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  // stop() does nothing until the accept loop runs: wait for it, so a
  // Stop() right after Start() cannot leave the thread running.
  for (int i = 0; i < 5000 && !server_.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return absl::StrCat(host, ":", port);
}

void HttpServer::Impl::Stop() {
  std::call_once(stop_once_, [this] {
    // Waiting handlers see this within kPollInterval: they cancel their
    // generations and answer (an error event, or 503).
    stopping_ = true;
    {
      // Streams end (error event, [DONE]) within a poll interval; a client
      // that stopped reading only holds Stop this long.
      std::unique_lock<std::mutex> lock(streams_mu_);
      streams_cv_.wait_for(lock, std::chrono::seconds(5),
                           [this] { return open_streams_ == 0; });
    }
    server_.stop();
    if (thread_.joinable()) thread_.join();
  });
}

void HttpServer::Impl::Routes() {
  // Unknown paths and methods are answered before httplib reads a body
  // (which, for an unrouted request, it would read without a size limit).
  server_.set_pre_routing_handler([](const httplib::Request& req,
                                     httplib::Response& res) {
    const std::string& p = req.path;
    const bool post = p == "/v1/completions" || p == "/v1/chat/completions";
    const bool get = p == "/health" || p == "/v1/models" ||
                     absl::StartsWith(p, "/v1/models/");
    if ((post && req.method == "POST") || (get && req.method == "GET")) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    if (req.has_header("Content-Length") ||
        req.has_header("Transfer-Encoding")) {
      CloseAfter(res);
    }
    if (post || get) {
      res.set_header("Allow", post ? "POST" : "GET");
      SendError(res, MakeApiError(405, absl::StrCat("method ", req.method,
                                                    " is not allowed on ", p)));
    } else {
      SendError(res, MakeApiError(404, absl::StrCat("no such endpoint: ",
                                                    req.method, " ", p)));
    }
    return httplib::Server::HandlerResponse::Handled;
  });
  // Errors httplib answers itself (a malformed request line, 413 for a
  // Content-Length over the limit...) get an OpenAI error object too.
  server_.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) {
        if (res.body.empty()) {
          SendError(res, MakeApiError(res.status, StatusMessage(res.status)));
        }
        return httplib::Server::HandlerResponse::Handled;
      }));
  server_.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        SendError(res, MakeApiError(500, "internal error"));
      });

  server_.Post("/v1/completions",
               [this](const httplib::Request& req, httplib::Response& res,
                      const httplib::ContentReader& reader) {
                 HandleGenerate(req, res, reader, Endpoint::kCompletions);
               });
  server_.Post("/v1/chat/completions",
               [this](const httplib::Request& req, httplib::Response& res,
                      const httplib::ContentReader& reader) {
                 HandleGenerate(req, res, reader, Endpoint::kChatCompletions);
               });
  server_.Get("/v1/models",
              [this](const httplib::Request& req, httplib::Response& res) {
                if (!Authorized(req, res)) return;
                ordered_json body;
                body["object"] = "list";
                body["data"] = ordered_json::array({ModelJson()});
                SendJson(res, 200, body);
              });
  server_.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req,
                                           httplib::Response& res) {
    if (!Authorized(req, res)) return;
    const std::string id = req.matches[1];
    if (id != options_.model_name) {
      SendError(res,
                MakeApiError(404,
                             absl::StrCat("The model `", EscapeForMessage(id),
                                          "` does not exist"),
                             "model", "model_not_found"));
      return;
    }
    SendJson(res, 200, ModelJson());
  });
  // For load balancers and probes: no key needed, 503 until ready and
  // again while draining.
  server_.Get(
      "/health", [this](const httplib::Request&, httplib::Response& res) {
        const absl::Status s = readiness_();
        ordered_json body;
        if (s.ok() && !stopping_) {
          body["status"] = "ok";
          SendJson(res, 200, body);
        } else {
          body["status"] = "unavailable";
          body["reason"] = s.ok() ? "stopping" : std::string(s.message());
          SendJson(res, 503, body);
        }
      });
}

bool HttpServer::Impl::Authorized(const httplib::Request& req,
                                  httplib::Response& res) const {
  if (options_.api_keys.empty()) return true;
  const std::string header = req.get_header_value("Authorization");
  constexpr absl::string_view kBearer = "bearer ";
  if (header.size() > kBearer.size() &&
      absl::AsciiStrToLower(header.substr(0, kBearer.size())) == kBearer) {
    const absl::string_view key =
        absl::StripAsciiWhitespace(absl::string_view(header).substr(7));
    bool match = false;
    for (const std::string& k : options_.api_keys) match |= SameKey(key, k);
    if (match) return true;
  }
  CloseAfter(res);  // The body, if any, stays unread.
  SendError(res, MakeApiError(401, header.empty()
                                       ? "missing API key: send the header "
                                         "\"Authorization: Bearer KEY\""
                                       : "incorrect API key"));
  return false;
}

void HttpServer::Impl::HandleGenerate(const httplib::Request& req,
                                      httplib::Response& res,
                                      const httplib::ContentReader& reader,
                                      Endpoint endpoint) {
  if (!Authorized(req, res)) return;
  // The body, bounded also when it comes chunked or compressed (the
  // library's own limit only checks Content-Length).
  std::string body;
  bool too_big = false;
  const bool read = reader([&](const char* data, size_t n) {
    if (body.size() + n > options_.max_body_bytes) {
      too_big = true;
      return false;
    }
    body.append(data, n);
    return true;
  });
  if (!read || too_big) {
    CloseAfter(res);
    const int code = too_big ? 413 : (res.status >= 400 ? res.status : 400);
    SendError(
        res,
        MakeApiError(code, code == 413
                               ? absl::StrCat("the request body is over "
                                              "the limit of ",
                                              options_.max_body_bytes, " bytes")
                               : StatusMessage(code)));
    return;
  }
  JsonLimits json_limits;
  json_limits.max_bytes = options_.max_body_bytes;
  json_limits.max_values = 1 << 20;  // A token-id prompt past any context.
  absl::StatusOr<nlohmann::json> json =
      ParseUntrustedJson(body, "the request body", json_limits);
  if (!json.ok())
    return SendError(res, openai::ApiErrorFromStatus(json.status()));
  absl::StatusOr<openai::ParsedRequest> request =
      openai::ParseRequest(*json, endpoint);
  if (!request.ok()) {
    return SendError(res, openai::ApiErrorFromStatus(request.status()));
  }
  if (request->model && *request->model != options_.model_name) {
    return SendError(
        res, MakeApiError(
                 404,
                 absl::StrCat("The model `", EscapeForMessage(*request->model),
                              "` does not exist; this server serves `",
                              options_.model_name, "`"),
                 "model", "model_not_found"));
  }
  if (stopping_) {
    return SendError(res, MakeApiError(503, "the server is shutting down"));
  }
  if (absl::Status s = readiness_(); !s.ok()) {
    return SendError(res, openai::ApiErrorFromStatus(s));
  }

  // The same admission as the gRPC door, once per prompt.
  std::vector<PreparedRequest> prepared;
  for (size_t p = 0; p < request->prompts.size(); ++p) {
    absl::StatusOr<PreparedRequest> r =
        Prepare(engine_, model_, request->prompts[p]);
    if (!r.ok()) {
      ApiError e = openai::ApiErrorFromStatus(r.status());
      if (request->prompts.size() > 1) {
        e.message = absl::StrCat("prompt[", p, "]: ", e.message);
      }
      return SendError(res, e);
    }
    prepared.push_back(std::move(*r));
  }

  const bool chat = endpoint == Endpoint::kChatCompletions;
  openai::ResponseMeta meta;
  meta.endpoint = endpoint;
  meta.id = absl::StrCat(chat ? "chatcmpl-" : "cmpl-", RandomHex(24));
  meta.created = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  meta.model = options_.model_name;
  meta.logprobs = request->logprobs;
  meta.top_logprobs = request->top_logprobs;

  // Choice i of a prompt draws with seed + i: reproducible with a seed,
  // and still n different completions.
  auto call = std::make_unique<Call>(engine_);
  int index = 0;
  for (size_t p = 0; p < prepared.size(); ++p) {
    for (int j = 0; j < request->n; ++j, ++index) {
      PreparedRequest r = prepared[p];
      r.sampling.seed += static_cast<uint64_t>(j);
      r.request_id = absl::StrCat(meta.id, "-", index);
      // On failure ~Call cancels the choices already submitted.
      if (absl::Status s = call->Submit(std::move(r), p); !s.ok()) {
        return SendError(res, openai::ApiErrorFromStatus(s));
      }
    }
  }
  call->AttachAll();
  if (!request->stream)
    return RespondWhole(std::move(call), meta, t_socket, res);

  auto st = std::make_shared<SseStream>();
  st->call = std::move(call);
  st->meta = std::move(meta);
  st->include_usage = request->include_usage;
  st->socket = t_socket;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // Proxies: do not buffer.
  {
    std::lock_guard<std::mutex> lock(streams_mu_);
    ++open_streams_;
  }
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, st](size_t /*offset*/, httplib::DataSink& sink) {
        return StreamStep(*st, sink);
      },
      // Runs when the response is done with, whatever happened; dropping
      // the Call cancels what is unfinished.
      [this, st](bool /*success*/) {
        st->call.reset();
        std::lock_guard<std::mutex> lock(streams_mu_);
        --open_streams_;
        streams_cv_.notify_all();
      });
}

void HttpServer::Impl::RespondWhole(std::unique_ptr<Call> call,
                                    const openai::ResponseMeta& meta,
                                    int socket, httplib::Response& res) {
  for (;;) {
    bool all_done = true;
    for (Call::Choice& c : call->choices()) {
      GenerationOutput part;
      if (!c.done && Call::Take(c, &part)) c.output.Merge(std::move(part));
      all_done = all_done && c.done;
    }
    if (all_done) break;
    if (stopping_) {
      return SendError(res, MakeApiError(503, "the server is shutting down"));
    }
    // Nobody to answer: returning drops the Call, which cancels.
    if (!ClientConnected(socket)) return;
    call->Wait(kPollInterval);
  }
  std::vector<openai::ChoiceResult> results;
  for (Call::Choice& c : call->choices()) {
    if (!c.status.ok()) {
      return SendError(res, openai::ApiErrorFromStatus(c.status));
    }
    openai::ChoiceResult r;
    r.index = static_cast<int>(results.size());
    r.text = std::move(c.output.text);
    r.logprobs = std::move(c.output.logprobs);
    r.finish_reason = c.output.finish_reason;
    results.push_back(std::move(r));
  }
  SendJson(res, 200,
           openai::ResponseJson(meta, results, call->Usage(), token_bytes_));
}

bool HttpServer::Impl::StreamStep(SseStream& st, httplib::DataSink& sink) {
  std::vector<Call::Choice>& choices = st.call->choices();
  std::string out;
  if (!st.started) {
    // Chat streams open with the role, before any text (as OpenAI's do);
    // this also sends the headers while the request may still be queued.
    st.started = true;
    if (st.meta.endpoint == Endpoint::kChatCompletions) {
      for (size_t i = 0; i < choices.size(); ++i) {
        openai::ChunkPart part;
        part.index = static_cast<int>(i);
        part.role = true;
        out += openai::SseData(
            openai::ChunkJson(st.meta, part, st.include_usage, token_bytes_));
      }
      return sink.write(out.data(), out.size());
    }
  }
  for (;;) {
    bool all_done = true;
    absl::Status error;
    for (size_t i = 0; i < choices.size(); ++i) {
      Call::Choice& c = choices[i];
      GenerationOutput taken;
      if (!c.done && Call::Take(c, &taken)) {
        if (!taken.text.empty() || !taken.logprobs.empty()) {
          openai::ChunkPart part;
          part.index = static_cast<int>(i);
          part.text = taken.text;
          part.logprobs = taken.logprobs;
          part.text_offset = static_cast<int>(c.sent_bytes);
          c.sent_bytes += taken.text.size();
          out += openai::SseData(
              openai::ChunkJson(st.meta, part, st.include_usage, token_bytes_));
        }
        if (c.done && c.status.ok()) {
          openai::ChunkPart part;
          part.index = static_cast<int>(i);
          part.finish_reason = c.output.finish_reason;
          out += openai::SseData(
              openai::ChunkJson(st.meta, part, st.include_usage, token_bytes_));
        } else if (c.done && error.ok()) {
          error = c.status;
        }
      }
      all_done = all_done && c.done;
    }
    if (!error.ok() || (!all_done && stopping_)) {
      // The headers said 200 long ago: the error goes in the stream, as an
      // OpenAI error object, then [DONE]; the other choices are cancelled
      // when the Call goes.
      if (error.ok())
        error = absl::UnavailableError("the server is shutting down");
      out +=
          openai::SseData(openai::ErrorJson(openai::ApiErrorFromStatus(error)));
      out += "data: [DONE]\n\n";
      if (!sink.write(out.data(), out.size())) return false;
      sink.done();
      return true;
    }
    if (all_done) {
      if (st.include_usage) {
        out +=
            openai::SseData(openai::UsageChunkJson(st.meta, st.call->Usage()));
      }
      out += "data: [DONE]\n\n";
      if (!sink.write(out.data(), out.size())) return false;
      sink.done();
      return true;
    }
    // httplib ends the response when a write is empty, so only non-empty
    // ones go out.
    if (!out.empty()) return sink.write(out.data(), out.size());
    if (!ClientConnected(st.socket)) return false;
    st.call->Wait(kPollInterval);
  }
}

std::string ModelNameFromPath(const std::string& path) {
  absl::string_view p = path;
  while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
  const size_t slash = p.rfind('/');
  return std::string(slash == absl::string_view::npos ? p
                                                      : p.substr(slash + 1));
}

HttpServer::HttpServer() : impl_(std::make_unique<Impl>()) {}
HttpServer::~HttpServer() = default;

absl::StatusOr<std::string> HttpServer::Start(
    const HttpServerOptions& options, Engine* engine,
    const Tokenizer* tokenizer, const ChatTemplate* chat,
    const RequestLimits& limits, std::function<absl::Status()> readiness) {
  return impl_->Start(options, engine, tokenizer, chat, limits,
                      std::move(readiness));
}

void HttpServer::Stop() { impl_->Stop(); }

}  // namespace tpserve
