// Process-level integration tests: the real `tpserve serve` (coordinator +
// real tpserve-worker processes) on loopback, driven over gRPC as a backend
// service would. The local engine (worker/local_generator.h) is the
// reference for what the server must generate.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "common/model_tokenizer.h"
#include "common/model_weights.h"
#include "tests/safetensors_builder.h"
#include "tests/server_process.h"
#include "tests/synthetic_model.h"
#include "tests/test_paths.h"
#include "tpserve/v1/inference.grpc.pb.h"
#include "worker/local_generator.h"

namespace tpserve {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::system_clock;

std::unique_ptr<v1::Inference::Stub> Connect(const std::string& address) {
  return v1::Inference::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

void SetTimeout(grpc::ClientContext* ctx, int seconds) {
  ctx->set_deadline(Clock::now() + std::chrono::seconds(seconds));
}

v1::GenerateRequest Greedy(const std::string& text, int max_tokens) {
  v1::GenerateRequest r;
  r.set_text(text);
  r.mutable_sampling()->set_temperature(0);
  r.set_max_tokens(max_tokens);
  return r;
}

// Generates through GenerateStream, joining the parts.
struct Streamed {
  grpc::Status status;
  std::string text;
  std::vector<int32_t> tokens;
  int messages = 0;
  v1::GenerateStreamResponse last;
};

Streamed Stream(v1::Inference::Stub* stub, const v1::GenerateRequest& r,
                int timeout_s = 300) {
  grpc::ClientContext ctx;
  SetTimeout(&ctx, timeout_s);
  auto reader = stub->GenerateStream(&ctx, r);
  Streamed out;
  v1::GenerateStreamResponse part;
  while (reader->Read(&part)) {
    ++out.messages;
    out.text += part.text();
    out.tokens.insert(out.tokens.end(), part.token_ids().begin(),
                      part.token_ids().end());
    out.last = part;
  }
  out.status = reader->Finish();
  return out;
}

std::vector<int32_t> Tokenize(v1::Inference::Stub* stub,
                              const std::string& text) {
  grpc::ClientContext ctx;
  SetTimeout(&ctx, 30);
  v1::TokenizeRequest req;
  req.set_text(text);
  v1::TokenizeResponse resp;
  grpc::Status s = stub->Tokenize(&ctx, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return {resp.token_ids().begin(), resp.token_ids().end()};
}

// The local engine's tokens for the same prompt and sampling: what the
// server must produce.
std::vector<int32_t> LocalTokens(const std::vector<int32_t>& prompt, int tp,
                                 int max_tokens, float temperature = 0,
                                 uint64_t seed = 0) {
  static std::unique_ptr<ModelWeights> model = [] {
    auto m = OpenModel(testing::DefaultModelPath());
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? std::move(*m) : nullptr;
  }();
  if (model == nullptr) return {};
  GenerateOptions o;
  o.tp = tp;
  o.threads = 2;
  o.max_tokens = max_tokens;
  o.sampling.temperature = temperature;
  o.sampling.seed = seed;
  o.sampling.has_seed = true;
  auto r = Generate(*model, prompt, o, nullptr);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->tokens : std::vector<int32_t>{};
}

// One TP=3 server for the tests that share it.
class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new testing::ServerProcess(
        {"--model", testing::DefaultModelPath(), "--tp", "3", "--listen",
         "127.0.0.1:0", "--threads", "1", "--max-queue", "64",
         "--drain-seconds", "5"});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_FALSE(server_->address().empty())
        << "tpserve serve did not become ready\n"
        << testing::kModelHint;
    stub_ = Connect(server_->address());
  }
  static testing::ServerProcess* server_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};
testing::ServerProcess* ServeTest::server_ = nullptr;

TEST_F(ServeTest, GreedyOutputEqualsTheLocalEngine) {
  const std::string text = "The capital of France is";
  const std::vector<int32_t> prompt = Tokenize(stub_.get(), text);
  ASSERT_FALSE(prompt.empty());
  const std::vector<int32_t> want = LocalTokens(prompt, 3, 32);
  ASSERT_FALSE(want.empty());

  grpc::ClientContext ctx;
  SetTimeout(&ctx, 300);
  v1::GenerateResponse got;
  grpc::Status s = stub_->Generate(&ctx, Greedy(text, 32), &got);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(
      std::vector<int32_t>(got.token_ids().begin(), got.token_ids().end()),
      want);
  EXPECT_EQ(got.usage().prompt_tokens(), static_cast<int>(prompt.size()));
  EXPECT_THAT(got.text(), HasSubstr("Paris"));

  // The stream gives the same tokens and text, in several messages.
  Streamed st = Stream(stub_.get(), Greedy(text, 32));
  ASSERT_TRUE(st.status.ok()) << st.status.error_message();
  EXPECT_EQ(st.tokens, want);
  EXPECT_EQ(st.text, got.text());
  EXPECT_GT(st.messages, 2);
  EXPECT_NE(st.last.finish_reason(), v1::FINISH_REASON_UNSPECIFIED);

  // Detokenize round-trips the output.
  grpc::ClientContext dctx;
  SetTimeout(&dctx, 30);
  v1::DetokenizeRequest dreq;
  dreq.mutable_token_ids()->CopyFrom(got.token_ids());
  v1::DetokenizeResponse dresp;
  ASSERT_TRUE(stub_->Detokenize(&dctx, dreq, &dresp).ok());
  if (got.finish_reason() == v1::FINISH_REASON_LENGTH) {
    EXPECT_EQ(dresp.text(), got.text());
  }
}

TEST_F(ServeTest, SeededSamplingEqualsTheLocalEngine) {
  const std::string text = "Once upon a time";
  const std::vector<int32_t> prompt = Tokenize(stub_.get(), text);
  const std::vector<int32_t> want = LocalTokens(prompt, 3, 24, 0.9f, 1234);
  v1::GenerateRequest r = Greedy(text, 24);
  r.mutable_sampling()->set_temperature(0.9f);
  r.mutable_sampling()->set_seed(1234);
  r.set_ignore_eos(true);
  Streamed st = Stream(stub_.get(), r);
  ASSERT_TRUE(st.status.ok()) << st.status.error_message();
  // The local engine stops at end-of-generation tokens only if asked to;
  // compare the common prefix length it produced.
  ASSERT_EQ(st.tokens.size(), 24u);
  EXPECT_EQ(st.tokens, want);
}

TEST_F(ServeTest, SixteenConcurrentStreamsShareSteps) {
  // Four prompts, four copies each, all in flight together: every copy must
  // equal that prompt's output generated alone.
  const std::vector<std::string> prompts = {
      "The capital of France is", "My favourite fruit is",
      "def fibonacci(n):", "The three primary colours are"};
  constexpr int kTokens = 16;
  std::vector<std::vector<int32_t>> alone;
  for (const std::string& p : prompts) {
    Streamed st = Stream(stub_.get(), Greedy(p, kTokens));
    ASSERT_TRUE(st.status.ok()) << st.status.error_message();
    alone.push_back(st.tokens);
  }
  std::vector<Streamed> results(16);
  std::vector<std::thread> clients;
  for (int i = 0; i < 16; ++i) {
    clients.emplace_back([&, i] {
      auto stub = Connect(server_->address());
      results[i] = Stream(stub.get(), Greedy(prompts[i % 4], kTokens));
    });
  }
  for (std::thread& t : clients) t.join();
  int batched = 0;
  for (int i = 0; i < 16; ++i) {
    SCOPED_TRACE(::testing::Message() << "client " << i);
    ASSERT_TRUE(results[i].status.ok()) << results[i].status.error_message();
    EXPECT_EQ(results[i].tokens, alone[i % 4]);
    const int shared = results[i].last.usage().max_step_sequences();
    if (shared > 1) ++batched;
  }
  // Continuous batching: requests shared steps with others.
  EXPECT_GE(batched, 12) << "most requests should have been batched";
}

TEST_F(ServeTest, StopStringsEndGenerationExactly) {
  Streamed full = Stream(stub_.get(), Greedy("The capital of France is", 32));
  ASSERT_TRUE(full.status.ok());
  ASSERT_GT(full.text.size(), 12u);
  // Stop at a piece of text from the middle of the greedy output.
  const std::string stop = full.text.substr(6, 4);
  v1::GenerateRequest r = Greedy("The capital of France is", 32);
  r.add_stop(stop);
  Streamed st = Stream(stub_.get(), r);
  ASSERT_TRUE(st.status.ok()) << st.status.error_message();
  EXPECT_EQ(st.text, full.text.substr(0, full.text.find(stop)));
  EXPECT_EQ(st.last.finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(st.last.matched_stop(), stop);
}

TEST_F(ServeTest, LogprobsWhenAsked) {
  v1::GenerateRequest r = Greedy("The capital of France is", 4);
  r.mutable_sampling()->set_top_logprobs(3);
  grpc::ClientContext ctx;
  SetTimeout(&ctx, 120);
  v1::GenerateResponse got;
  ASSERT_TRUE(stub_->Generate(&ctx, r, &got).ok());
  ASSERT_EQ(got.logprobs_size(), got.token_ids_size());
  for (const v1::TokenLogprob& lp : got.logprobs()) {
    EXPECT_LE(lp.logprob(), 0.0f);
    ASSERT_EQ(lp.top_size(), 3);
    // Greedy: the chosen token is the most likely one.
    EXPECT_EQ(lp.top(0).token_id(), lp.token_id());
  }
}

struct BadCase {
  const char* name;
  std::function<void(v1::GenerateRequest*)> edit;
  const char* message;  // Part of the error message.
};

TEST_F(ServeTest, BadRequestsAreRejectedAndTheServerKeepsServing) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<BadCase> cases = {
      {"nan temperature",
       [&](v1::GenerateRequest* r) {
         r->mutable_sampling()->set_temperature(nan);
       },
       "temperature"},
      {"negative temperature",
       [](v1::GenerateRequest* r) {
         r->mutable_sampling()->set_temperature(-1);
       },
       "temperature"},
      {"huge top_p",
       [](v1::GenerateRequest* r) { r->mutable_sampling()->set_top_p(7); },
       "top_p"},
      {"negative max_tokens",
       [](v1::GenerateRequest* r) { r->set_max_tokens(-5); }, "max_tokens"},
      {"huge max_tokens",
       [](v1::GenerateRequest* r) { r->set_max_tokens(2000000000); },
       "max_tokens"},
      {"empty prompt", [](v1::GenerateRequest* r) { r->set_text(""); },
       "text must not be empty"},
      {"oversized prompt",
       [](v1::GenerateRequest* r) { r->set_text(std::string(4 << 20, 'a')); },
       "over the limit"},
      {"invalid UTF-8",
       [](v1::GenerateRequest* r) { r->set_text("bad \xff\xfe bytes"); },
       "text is not valid UTF-8"},
      {"invalid UTF-8 in a chat message",
       [](v1::GenerateRequest* r) {
         v1::ChatMessage* m = r->mutable_chat()->add_messages();
         m->set_role("user");
         m->set_content("caf\xc3");
       },
       "chat.messages[0].content is not valid UTF-8"},
      {"token id out of range",
       [](v1::GenerateRequest* r) { r->mutable_token_ids()->add_ids(1 << 30); },
       "token_ids"},
      {"no prompt", [](v1::GenerateRequest* r) { r->clear_prompt(); },
       "prompt"},
      {"unknown field",
       [](v1::GenerateRequest* r) {
         // Field 999, varint 1: a field this server does not know.
         r->GetReflection()->MutableUnknownFields(r)->AddVarint(999, 1);
       },
       "does not know"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    v1::GenerateRequest r = Greedy("Hello", 4);
    c.edit(&r);
    grpc::ClientContext ctx;
    SetTimeout(&ctx, 60);
    v1::GenerateResponse resp;
    grpc::Status s = stub_->Generate(&ctx, r, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(c.message));
    // The stream door says the same.
    Streamed st = Stream(stub_.get(), r, 60);
    EXPECT_EQ(st.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  // Still serving.
  Streamed ok = Stream(stub_.get(), Greedy("Hello", 4));
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_EQ(ok.tokens.size(), 4u);
}

TEST_F(ServeTest, ModelInfoReportsTheServingLayout) {
  grpc::ClientContext ctx;
  SetTimeout(&ctx, 30);
  v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(&ctx, {}, &info).ok());
  EXPECT_EQ(info.serving_tp(), 3);
  EXPECT_GT(info.kv_cache_tokens(), 1000);
  EXPECT_EQ(info.num_layers(), 30);
}

// A server that runs one sequence per step and queues one more: cancelling
// or timing out the running request must let the queued ones through.
class BackpressureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<testing::ServerProcess>(std::vector<std::string>{
        "--model", testing::DefaultModelPath(), "--tp", "1", "--listen",
        "127.0.0.1:0", "--threads", "2", "--max-queue", "1", "--max-step-seqs",
        "1", "--drain-seconds", "2"});
    ASSERT_FALSE(server_->address().empty()) << testing::kModelHint;
    stub_ = Connect(server_->address());
  }
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};

v1::GenerateRequest Long() {
  v1::GenerateRequest r = Greedy("Write a very long story about a cat.", 0);
  r.set_ignore_eos(true);  // Runs until the context is full: minutes.
  return r;
}

TEST_F(BackpressureTest, FullQueueCancellationAndDeadlines) {
  // A: runs (and holds the only step slot) until cancelled.
  grpc::ClientContext a_ctx;
  SetTimeout(&a_ctx, 600);
  auto a = stub_->GenerateStream(&a_ctx, Long());
  v1::GenerateStreamResponse part;
  ASSERT_TRUE(a->Read(&part));  // A is running.

  // B: waits in the queue (its own thread; it completes after A ends).
  Streamed b;
  std::thread b_thread([&] {
    auto stub = Connect(server_->address());
    b = Stream(stub.get(), Greedy("The capital of France is", 8));
  });
  // C: the queue (1) is full while B waits -> RESOURCE_EXHAUSTED at once.
  grpc::Status c_status;
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    grpc::ClientContext ctx;
    SetTimeout(&ctx, 30);
    v1::GenerateResponse resp;
    const auto start = Clock::now();
    c_status = stub_->Generate(&ctx, Greedy("Hi", 2), &resp);
    if (c_status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
      break;
    }
  }
  EXPECT_EQ(c_status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << c_status.error_message();
  EXPECT_THAT(c_status.error_message(), HasSubstr("queue"));

  // Cancel A: its slot and blocks free up, B runs and completes.
  a_ctx.TryCancel();
  while (a->Read(&part)) {
  }
  EXPECT_EQ(a->Finish().error_code(), grpc::StatusCode::CANCELLED);
  b_thread.join();
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  EXPECT_EQ(b.tokens.size(), 8u);

  // A deadline ends a long request with DEADLINE_EXCEEDED, and then a
  // follow-up request is admitted and completes.
  grpc::ClientContext d_ctx;
  // Long enough for some output even in a sanitizer build, far shorter
  // than the request (it runs to the end of the context).
  d_ctx.set_deadline(Clock::now() + std::chrono::seconds(6));
  auto d = stub_->GenerateStream(&d_ctx, Long());
  int got = 0;
  while (d->Read(&part)) got += part.token_ids_size();
  EXPECT_EQ(d->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_GT(got, 0);  // Output before the deadline was delivered.
  Streamed e = Stream(stub_.get(), Greedy("Hello", 4), 60);
  EXPECT_TRUE(e.status.ok()) << e.status.error_message();
  EXPECT_EQ(e.tokens.size(), 4u);
  EXPECT_EQ(server_->Stop(), 0);  // SIGTERM drains and exits cleanly.
}

// A KV cache too small for all sequences at once: the newest are
// preempted and recomputed, never failed, and their output is unchanged.
TEST(PreemptionTest, RecomputedSequencesGiveTheSameOutput) {
  // At TP 1 a token's KV takes 30 layers x 3 KV heads x 64 x K,V x 2 bytes
  // (fp16) = 23 KB: 3 MiB = 8 blocks of 16 tokens.
  testing::ServerProcess server({"--model", testing::DefaultModelPath(), "--tp",
                                 "1", "--listen", "127.0.0.1:0", "--threads",
                                 "2", "--kv-cache-mb", "3"});
  ASSERT_FALSE(server.address().empty()) << testing::kModelHint;
  auto stub = Connect(server.address());
  const std::vector<std::string> prompts = {"The capital of France is",
                                            "My favourite fruit is",
                                            "The three primary colours are"};
  constexpr int kTokens = 48;
  std::vector<std::vector<int32_t>> alone;
  for (const std::string& p : prompts) {
    v1::GenerateRequest r = Greedy(p, kTokens);
    r.set_ignore_eos(true);
    Streamed st = Stream(stub.get(), r);
    ASSERT_TRUE(st.status.ok()) << st.status.error_message();
    alone.push_back(st.tokens);
  }
  std::vector<Streamed> results(prompts.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < prompts.size(); ++i) {
    clients.emplace_back([&, i] {
      auto s = Connect(server.address());
      v1::GenerateRequest r = Greedy(prompts[i], kTokens);
      r.set_ignore_eos(true);
      results[i] = Stream(s.get(), r);
    });
  }
  for (std::thread& t : clients) t.join();
  int preemptions = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_TRUE(results[i].status.ok()) << results[i].status.error_message();
    EXPECT_EQ(results[i].tokens, alone[i]) << prompts[i];
    preemptions += results[i].last.usage().preemptions();
  }
  EXPECT_GT(preemptions, 0) << "the cache should have been too small";
}

// `tpserve generate` (local) with `args`; its stdout (stderr dropped).
std::string RunLocalGenerate(const std::string& args, int* exit_code) {
  return testing::RunTpserve("generate " + args, exit_code,
                             /*with_stderr=*/false);
}

// Issue 14: with a SentencePiece vocabulary the first generated token lost
// its leading space ("The capital of France is" + "▁Paris" came back as
// "Paris"). A random-weight model speaking Llama 2's vocabulary (llama.cpp's
// ggml-vocab-llama-spm.gguf) generates arbitrary tokens; whatever they are,
// every door must return what they decode to after the prompt:
// Decode(prompt + generated) minus Decode(prompt).
TEST(SentencePieceVocabularyTest, OutputTextIsTheDecodeInContext) {
  const std::string model = testing::WriteSyntheticModelWithVocab(
      testing::VocabPath("llama-spm"), "synthetic_llama_spm");
  ASSERT_FALSE(model.empty()) << testing::kVocabHint;
  auto tok = LoadTokenizer(model);
  ASSERT_TRUE(tok.ok()) << tok.status();
  ASSERT_TRUE((*tok)->strips_leading_space());
  testing::ServerProcess server({"--model", model, "--tp", "1", "--listen",
                                 "127.0.0.1:0", "--threads", "2"});
  ASSERT_FALSE(server.address().empty()) << "tpserve serve did not start";
  auto stub = Connect(server.address());
  const std::vector<std::string> prompts = {
      "The capital of France is",
      "Le milliard de téléchargements",
      "Once upon a time",
      "My favourite fruit is",
      "The three primary colours are",
      "def fibonacci(n):",
      "Hello, my name is",
      "The quick brown fox",
  };
  constexpr int kTokens = 12;
  int first_spaces = 0;
  for (const std::string& text : prompts) {
    SCOPED_TRACE(text);
    const std::vector<int32_t> prompt = Tokenize(stub.get(), text);
    ASSERT_FALSE(prompt.empty());
    v1::GenerateRequest r = Greedy(text, kTokens);
    r.set_ignore_eos(true);
    grpc::ClientContext ctx;
    SetTimeout(&ctx, 120);
    v1::GenerateResponse got;
    grpc::Status s = stub->Generate(&ctx, r, &got);
    ASSERT_TRUE(s.ok()) << s.error_message();
    const std::vector<int32_t> ids(got.token_ids().begin(),
                                   got.token_ids().end());
    ASSERT_EQ(ids.size(), static_cast<size_t>(kTokens));
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), ids.begin(), ids.end());
    const std::string whole = (*tok)->Decode(all, false);
    const std::string before = (*tok)->Decode(prompt, false);
    ASSERT_TRUE(absl::StartsWith(whole, before));
    const std::string want = whole.substr(before.size());
    EXPECT_EQ(got.text(), want);

    // The stream: the same tokens, its parts joined give the same text.
    Streamed st = Stream(stub.get(), r, 120);
    ASSERT_TRUE(st.status.ok()) << st.status.error_message();
    EXPECT_EQ(st.tokens, ids);
    EXPECT_EQ(st.text, want);

    // `tpserve generate` prints the prompt, then the same text.
    int code = -1;
    const std::string local = RunLocalGenerate(
        "--model " + model + " --threads 2 --ignore-eos --max-tokens " +
            std::to_string(kTokens) + " '" + text + "'",
        &code);
    EXPECT_EQ(code, 0);
    EXPECT_EQ(local, text + want + "\n");

    // Detokenize decodes the ids as a text of their own (as Hugging Face's
    // decode does): a leading space there is dropped.
    grpc::ClientContext dctx;
    SetTimeout(&dctx, 30);
    v1::DetokenizeRequest dreq;
    dreq.mutable_token_ids()->CopyFrom(got.token_ids());
    v1::DetokenizeResponse dresp;
    ASSERT_TRUE(stub->Detokenize(&dctx, dreq, &dresp).ok());
    EXPECT_EQ(dresp.text(), (*tok)->Decode(ids, false));

    const absl::string_view first = (*tok)->TokenText(ids[0]);
    if (!absl::StartsWith(first, "\xE2\x96\x81") ||
        (*tok)->token_type(ids[0]) != TokenType::kNormal) {
      continue;
    }
    // The case of the issue: a first "▁x" keeps its space (Detokenize, a
    // text of its own, drops it).
    ++first_spaces;
    EXPECT_TRUE(absl::StartsWith(got.text(), " ")) << got.text();
    EXPECT_EQ(dresp.text(), got.text().substr(1));
    // A stop string that begins with that space ends generation at once.
    const std::string piece = (*tok)->TokenBytes(ids[0], false);
    v1::GenerateRequest stop = r;
    stop.add_stop(piece);
    Streamed stopped = Stream(stub.get(), stop, 120);
    ASSERT_TRUE(stopped.status.ok()) << stopped.status.error_message();
    EXPECT_EQ(stopped.text, "");
    EXPECT_EQ(stopped.last.finish_reason(), v1::FINISH_REASON_STOP);
    EXPECT_EQ(stopped.last.matched_stop(), piece);
    if (piece.find('\'') == std::string::npos) {
      EXPECT_EQ(RunLocalGenerate("--model " + model +
                                     " --threads 2 --ignore-eos --max-tokens " +
                                     std::to_string(kTokens) + " --stop '" +
                                     piece + "' '" + text + "'",
                                 &code),
                text + "\n");
    }
  }
  // The weights are fixed: this many prompts start with a "▁" token.
  std::printf("%d of %zu continuations start with a \"▁\" token\n",
              first_spaces, prompts.size());
  EXPECT_GE(first_spaces, 2);
}

// Issue 14 item 6: `tpserve serve --model FOLDER` and `tpserve generate
// --model FOLDER` on a Hugging Face folder (config.json, model.safetensors,
// tokenizer.json): a random-weight Qwen2 (Q/K/V biases, tied embeddings)
// speaking the byte-level BPE vocabulary of tests/golden/hf_tiny_bpe, served
// at TP=2, gives the text the local engine gives.
std::string WriteQwen2Folder() {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / "hf_qwen2_serve";
  fs::create_directories(dir);
  const uint64_t vocab = 602, h = 64, ffn = 128, q = 64, kv = 32;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 0.1f);
  auto tensor = [&](const std::string& name, std::vector<uint64_t> shape,
                    float mean = 0.f) {
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;
    std::string bytes(n * 4, '\0');
    for (uint64_t i = 0; i < n; ++i) {
      const float v = mean + normal(rng);
      std::memcpy(&bytes[i * 4], &v, 4);
    }
    return testing::StTensor{name, "F32", std::move(shape), std::move(bytes)};
  };
  std::vector<testing::StTensor> t = {
      tensor("model.embed_tokens.weight", {vocab, h}),
      tensor("model.norm.weight", {h}, 1.f)};
  for (int i = 0; i < 2; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    t.push_back(tensor(p + "input_layernorm.weight", {h}, 1.f));
    t.push_back(tensor(p + "post_attention_layernorm.weight", {h}, 1.f));
    t.push_back(tensor(p + "self_attn.q_proj.weight", {q, h}));
    t.push_back(tensor(p + "self_attn.q_proj.bias", {q}));
    t.push_back(tensor(p + "self_attn.k_proj.weight", {kv, h}));
    t.push_back(tensor(p + "self_attn.k_proj.bias", {kv}));
    t.push_back(tensor(p + "self_attn.v_proj.weight", {kv, h}));
    t.push_back(tensor(p + "self_attn.v_proj.bias", {kv}));
    t.push_back(tensor(p + "self_attn.o_proj.weight", {h, q}));
    t.push_back(tensor(p + "mlp.gate_proj.weight", {ffn, h}));
    t.push_back(tensor(p + "mlp.up_proj.weight", {ffn, h}));
    t.push_back(tensor(p + "mlp.down_proj.weight", {h, ffn}));
  }
  const nlohmann::json config = {{"architectures", {"Qwen2ForCausalLM"}},
                                 {"model_type", "qwen2"},
                                 {"hidden_size", h},
                                 {"intermediate_size", ffn},
                                 {"num_hidden_layers", 2},
                                 {"num_attention_heads", 2},
                                 {"num_key_value_heads", 1},
                                 {"vocab_size", vocab},
                                 {"max_position_embeddings", 256},
                                 {"rms_norm_eps", 1e-6},
                                 {"rope_theta", 1000000.0},
                                 {"tie_word_embeddings", true},
                                 {"sliding_window", 128},
                                 {"use_sliding_window", false}};
  testing::WriteFile(dir / "config.json", config.dump());
  const std::vector<uint8_t> st = testing::BuildSafetensors(t);
  testing::WriteFile(dir / "model.safetensors",
                     std::string(st.begin(), st.end()));
  fs::copy_file(testing::GoldenPath("hf_tiny_bpe/tokenizer.json"),
                dir / "tokenizer.json", fs::copy_options::overwrite_existing);
  return dir.string();
}

TEST(HfFolderServeTest, ServeAndGenerateOnAQwen2Folder) {
  const std::string folder = WriteQwen2Folder();
  testing::ServerProcess server({"--model", folder, "--tp", "2", "--listen",
                                 "127.0.0.1:0", "--threads", "1"});
  ASSERT_FALSE(server.address().empty()) << "tpserve serve did not start";
  auto stub = Connect(server.address());
  for (const std::string text : {"hello world", "the cat sat on"}) {
    SCOPED_TRACE(text);
    v1::GenerateRequest r = Greedy(text, 10);
    r.set_ignore_eos(true);
    grpc::ClientContext ctx;
    SetTimeout(&ctx, 120);
    v1::GenerateResponse got;
    grpc::Status s = stub->Generate(&ctx, r, &got);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(got.token_ids_size(), 10);
    int code = -1;
    const std::string local = RunLocalGenerate(
        "--model " + folder + " --threads 2 --ignore-eos --max-tokens 10 '" +
            text + "'",
        &code);
    EXPECT_EQ(code, 0);
    EXPECT_EQ(local, text + got.text() + "\n");
  }
}

// `serve --chat-template FILE`: both Tokenize and Generate render the chat
// with that template, tools, tool calls and template kwargs included; a
// template that does not parse stops the server with its line.
TEST(ChatTemplateServeTest, TemplateFileRendersToolsCallsAndKwargs) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / "chat_template_serve";
  fs::create_directories(dir);
  testing::WriteFile(
      dir / "tools.jinja",
      "{%- if tools %}Tools: {{ tools | map(attribute='function.name') | "
      "join(', ') }}\n{% endif -%}\n"
      "{%- for m in messages %}{{ m.role }}: {{ m.content }}"
      "{%- for c in m.tool_calls | default([]) %} call {{ c.function.name }}"
      "({{ c.function.arguments.city }}){% endfor %}{{ '\\n' }}{% endfor -%}\n"
      "{%- if add_generation_prompt %}assistant{{ ' (thinking)' if "
      "enable_thinking else '' }}:{% endif %}");
  testing::ServerProcess server(
      {"--model", testing::DefaultModelPath(), "--listen", "127.0.0.1:0",
       "--threads", "1", "--chat-template", (dir / "tools.jinja").string()});
  ASSERT_FALSE(server.address().empty()) << server.output();
  auto stub = Connect(server.address());

  v1::TokenizeRequest req;
  v1::ChatMessages* chat = req.mutable_chat();
  v1::ChatMessage* user = chat->add_messages();
  user->set_role("user");
  user->set_content("Weather in Oslo?");
  v1::ChatMessage* call = chat->add_messages();
  call->set_role("assistant");
  v1::ChatToolCall* c = call->add_tool_calls();
  c->set_id("call_1");
  c->set_name("get_weather");
  c->set_arguments(R"({"city": "Oslo"})");
  v1::ChatMessage* result = chat->add_messages();
  result->set_role("tool");
  result->set_tool_call_id("call_1");
  result->set_content("sunny");
  chat->set_tools_json(
      R"([{"type": "function", "function": {"name": "get_weather"}},)"
      R"( {"type": "function", "function": {"name": "get_time"}}])");
  chat->set_chat_template_kwargs_json(R"({"enable_thinking": true})");
  grpc::ClientContext ctx;
  SetTimeout(&ctx, 30);
  v1::TokenizeResponse resp;
  grpc::Status s = stub->Tokenize(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(
      std::vector<int32_t>(resp.token_ids().begin(), resp.token_ids().end()),
      Tokenize(stub.get(),
               "Tools: get_weather, get_time\nuser: Weather in Oslo?\n"
               "assistant:  call get_weather(Oslo)\ntool: sunny\n"
               "assistant (thinking):"));

  // A template that does not parse is an error at startup, with its line.
  testing::WriteFile(dir / "broken.jinja", "ok\n{% for m in %}");
  int code = -1;
  const std::string out =
      testing::RunTpserve("serve --model " + testing::DefaultModelPath() +
                              " --listen 127.0.0.1:0 --chat-template " +
                              (dir / "broken.jinja").string(),
                          &code, /*with_stderr=*/true);
  EXPECT_NE(code, 0);
  EXPECT_THAT(out, HasSubstr("line 2: expected an expression"));
}

}  // namespace
}  // namespace tpserve
