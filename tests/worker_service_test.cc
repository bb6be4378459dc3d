// The internal protocol in one process over loopback gRPC: a Rendezvous
// service and two Worker services (a TP=2 group) on a synthetic Llama.
//  - the group samples exactly what tpserve::Generate (local_generator) does
//    with TP=2, greedy and seeded, since both seed each draw by position;
//  - bad steps end the stream with INVALID_ARGUMENT and leave the group
//    usable; a second Step stream is refused; errors are the documented
//    codes (rendezvous timeout, missing model, no KV budget, ...).
#include "worker/worker_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/model_weights.h"
#include "coordinator/rendezvous_service.h"
#include "gloo/common/error.h"
#include "tests/synthetic_model.h"
#include "worker/grpc_store.h"
#include "worker/llama_shard.h"
#include "worker/local_generator.h"

namespace tpserve {
namespace {

namespace wv1 = worker::v1;
using StepStream =
    grpc::ClientReaderWriter<wv1::StepRequest, wv1::StepResponse>;

constexpr int kBlockSize = 16;
constexpr int kKvBlocks = 64;
constexpr int kTimeoutMs = 20000;

std::chrono::system_clock::time_point In(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

// A service on a loopback port chosen by the system.
struct Served {
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

Served Serve(grpc::Service* service) {
  Served s;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(service);
  s.server = builder.BuildAndStart();
  EXPECT_NE(s.server, nullptr);
  EXPECT_GT(port, 0);
  s.address = "127.0.0.1:" + std::to_string(port);
  return s;
}

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

// One worker process, in-process: its service, server and client stub.
struct Worker {
  std::unique_ptr<WorkerService> service;
  Served served;
  std::unique_ptr<wv1::Worker::Stub> stub;

  Worker() {
    WorkerServiceOptions options;
    options.threads = 1;
    service = std::make_unique<WorkerService>(options);
    served = Serve(service.get());
    stub = wv1::Worker::NewStub(Channel(served.address));
  }
  ~Worker() { served.server->Shutdown(In(2)); }

  grpc::Status InitGroup(int rank, int world, const std::string& rendezvous,
                         const std::string& group, int timeout_ms) {
    wv1::InitGroupRequest request;
    request.set_rank(rank);
    request.set_world_size(world);
    request.set_rendezvous_address(rendezvous);
    request.set_group_id(group);
    request.set_timeout_ms(timeout_ms);
    wv1::InitGroupResponse response;
    grpc::ClientContext context;
    context.set_deadline(In(60));
    return stub->InitGroup(&context, request, &response);
  }

  // Reads the whole progress stream.
  grpc::Status LoadModel(const std::string& path,
                         std::vector<wv1::LoadModelProgress>* progress) {
    wv1::LoadModelRequest request;
    request.set_model_path(path);
    request.set_threads(1);
    grpc::ClientContext context;
    context.set_deadline(In(60));
    auto reader = stub->LoadModel(&context, request);
    wv1::LoadModelProgress p;
    while (reader->Read(&p)) progress->push_back(p);
    return reader->Finish();
  }

  grpc::Status Warmup(uint64_t kv_bytes, wv1::WarmupResponse* response) {
    wv1::WarmupRequest request;
    request.set_block_size(kBlockSize);
    request.set_kv_cache_bytes(kv_bytes);
    request.set_max_step_tokens(64);
    request.set_max_step_sequences(8);
    grpc::ClientContext context;
    context.set_deadline(In(60));
    return stub->Warmup(&context, request, response);
  }

  wv1::HealthResponse Health() {
    wv1::HealthResponse response;
    grpc::ClientContext context;
    context.set_deadline(In(5));
    grpc::Status s = stub->Health(&context, wv1::HealthRequest(), &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }
};

// A Step stream of one worker.
struct Stream {
  grpc::ClientContext context;
  std::unique_ptr<StepStream> rw;

  explicit Stream(Worker& w) {
    context.set_deadline(In(120));
    rw = w.stub->Step(&context);
  }
  grpc::Status Close() {
    rw->WritesDone();
    return rw->Finish();
  }
};

wv1::SequenceStep* AddSeq(wv1::StepRequest* r, uint64_t id,
                          const std::vector<int32_t>& tokens, int position,
                          int first_block, int blocks, bool sample) {
  wv1::SequenceStep* s = r->add_sequences();
  s->set_seq_id(id);
  for (int32_t t : tokens) s->add_tokens(t);
  s->set_position(position);
  for (int b = 0; b < blocks; ++b) s->add_block_table(first_block + b);
  s->set_sample(sample);
  return s;
}

wv1::Sampling Resolved(float temperature, uint64_t seed, int top_logprobs) {
  wv1::Sampling s;  // Fully resolved, as the coordinator sends it.
  s.set_temperature(temperature);
  s.set_top_p(1.0f);
  s.set_repetition_penalty(1.0f);
  s.set_seed(seed);
  s.set_top_logprobs(top_logprobs);
  return s;
}

// The TP=2 group, built once: rendezvous, InitGroup, LoadModel, Warmup.
class WorkerGroupTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = new std::string(testing::WriteSyntheticModel(GgmlType::kQ8_0));
    rendezvous_ = new RendezvousService();
    rendezvous_served_ = new Served(Serve(rendezvous_));
    for (Worker*& w : workers_) w = new Worker();
  }
  static void TearDownTestSuite() {
    for (Worker*& w : workers_) {
      delete w;
      w = nullptr;
    }
    rendezvous_served_->server->Shutdown(In(2));
    delete rendezvous_served_;
    delete rendezvous_;
    delete path_;
    ready_ = false;
  }

  // Brings the group to "ready" once; later tests reuse it.
  void SetUp() override {
    if (ready_) return;
    grpc::Status init[2];
    std::thread rank1([&] {
      init[1] = workers_[1]->InitGroup(1, 2, rendezvous_served_->address,
                                       "wst-gen1", kTimeoutMs);
    });
    init[0] = workers_[0]->InitGroup(0, 2, rendezvous_served_->address,
                                     "wst-gen1", kTimeoutMs);
    rank1.join();
    ASSERT_TRUE(init[0].ok()) << init[0].error_message();
    ASSERT_TRUE(init[1].ok()) << init[1].error_message();
    EXPECT_EQ(workers_[1]->Health().state(), "grouped");
    EXPECT_EQ(workers_[1]->Health().rank(), 1);
    EXPECT_EQ(workers_[1]->Health().world_size(), 2);
    // Gloo keys live under "<group_id>/": a dead group is cleared by that.
    EXPECT_GT(rendezvous_->key_count(), 0u);
    rendezvous_->Clear("wst-gen1/");
    EXPECT_EQ(rendezvous_->key_count(), 0u);

    for (Worker* w : workers_) {
      std::vector<wv1::LoadModelProgress> progress;
      grpc::Status s = w->LoadModel(*path_, &progress);
      ASSERT_TRUE(s.ok()) << s.error_message();
      ASSERT_GE(progress.size(), 3u);
      EXPECT_EQ(progress.front().stage().rfind("opening", 0), 0u);
      EXPECT_EQ(progress[1].stage(), "validated");
      EXPECT_TRUE(progress.back().done());
      EXPECT_GT(progress.back().weight_bytes(), 0u);
      EXPECT_EQ(w->Health().state(), "loaded");
    }

    // Warmup runs a forward pass, so the ranks must run it together.
    auto model = OpenModel(*path_);
    ASSERT_TRUE(model.ok()) << model.status();
    auto plan = MakeTpPlan((*model)->config(), 2, 0, 32);
    ASSERT_TRUE(plan.ok()) << plan.status();
    // The workers run the CPU backend: an fp16 KV cache.
    const uint64_t per_block = LlamaShard::KvBytesPerBlock(
        (*model)->config(), *plan, kBlockSize, GgmlType::kF16);
    // A little over kKvBlocks blocks: the remainder is not a block.
    const uint64_t budget = per_block * kKvBlocks + per_block / 2;
    wv1::WarmupResponse warm[2];
    grpc::Status ws[2];
    std::thread w1([&] { ws[1] = workers_[1]->Warmup(budget, &warm[1]); });
    ws[0] = workers_[0]->Warmup(budget, &warm[0]);
    w1.join();
    ASSERT_TRUE(ws[0].ok()) << ws[0].error_message();
    ASSERT_TRUE(ws[1].ok()) << ws[1].error_message();
    EXPECT_EQ(warm[0].kv_blocks(), kKvBlocks);
    EXPECT_EQ(warm[1].kv_blocks(), kKvBlocks);
    EXPECT_EQ(workers_[0]->Health().state(), "ready");
    ready_ = true;
  }

  // Sends `request` to both ranks, reads both answers.
  static void StepBoth(Stream* s[2], const wv1::StepRequest& request,
                       wv1::StepResponse* rank0) {
    ASSERT_TRUE(s[0]->rw->Write(request));
    ASSERT_TRUE(s[1]->rw->Write(request));
    ASSERT_TRUE(s[0]->rw->Read(rank0));
    wv1::StepResponse other;
    ASSERT_TRUE(s[1]->rw->Read(&other));
    EXPECT_EQ(rank0->step_id(), request.step_id());
    EXPECT_EQ(other.step_id(), request.step_id());
    EXPECT_EQ(other.tokens_size(), 0) << "only rank 0 samples";
  }

  static std::string* path_;
  static RendezvousService* rendezvous_;
  static Served* rendezvous_served_;
  static Worker* workers_[2];
  static bool ready_;
};

std::string* WorkerGroupTest::path_ = nullptr;
RendezvousService* WorkerGroupTest::rendezvous_ = nullptr;
Served* WorkerGroupTest::rendezvous_served_ = nullptr;
Worker* WorkerGroupTest::workers_[2] = {nullptr, nullptr};
bool WorkerGroupTest::ready_ = false;

TEST_F(WorkerGroupTest, StepsSampleWhatLocalGenerateSamples) {
  constexpr int kDecodeSteps = 8;
  const std::vector<int32_t> greedy_prompt = {5, 17, 99, 3, 42, 7, 0, 100, 64};
  const std::vector<int32_t> sampled_prompt = {11, 2, 77, 31, 8};
  constexpr uint64_t kSeed = 1234;

  Stream stream0(*workers_[0]), stream1(*workers_[1]);
  Stream* streams[2] = {&stream0, &stream1};
  std::vector<int32_t> greedy, sampled;
  // Prefill both sequences in one step.
  wv1::StepRequest request;
  request.set_step_id(1);
  AddSeq(&request, 7, greedy_prompt, 0, 0, 4, true)
      ->mutable_sampling()
      ->CopyFrom(Resolved(0.0f, 0, 0));
  AddSeq(&request, 9, sampled_prompt, 0, 4, 4, true)
      ->mutable_sampling()
      ->CopyFrom(Resolved(0.8f, kSeed, 3));
  wv1::StepResponse response;
  StepBoth(streams, request, &response);
  for (int step = 0; step <= kDecodeSteps; ++step) {
    ASSERT_EQ(response.tokens_size(), 2);
    EXPECT_EQ(response.tokens(0).seq_id(), 7u);
    EXPECT_EQ(response.tokens(1).seq_id(), 9u);
    const wv1::SampledToken& s = response.tokens(1);
    EXPECT_TRUE(std::isfinite(s.logprob()));
    ASSERT_EQ(s.top_ids_size(), 3);
    ASSERT_EQ(s.top_logprobs_size(), 3);
    EXPECT_GE(s.top_logprobs(0), s.top_logprobs(2));
    greedy.push_back(response.tokens(0).token_id());
    sampled.push_back(s.token_id());
    if (step == kDecodeSteps) break;
    // Decode: feed back rank 0's tokens.
    request.Clear();
    request.set_step_id(2 + step);
    AddSeq(&request, 7, {greedy.back()},
           static_cast<int>(greedy_prompt.size()) + step, 0, 4, true);
    AddSeq(&request, 9, {sampled.back()},
           static_cast<int>(sampled_prompt.size()) + step, 4, 4, true);
    response.Clear();
    StepBoth(streams, request, &response);
  }
  grpc::Status c0 = stream0.Close(), c1 = stream1.Close();
  EXPECT_TRUE(c0.ok()) << c0.error_message();
  EXPECT_TRUE(c1.ok()) << c1.error_message();
  EXPECT_GE(workers_[0]->Health().steps(), uint64_t{kDecodeSteps + 1});

  auto model = OpenModel(*path_);
  ASSERT_TRUE(model.ok()) << model.status();
  GenerateOptions options;
  options.tp = 2;
  options.threads = 2;
  options.max_tokens = kDecodeSteps + 1;
  options.block_size = kBlockSize;
  options.sampling.temperature = 0;
  auto want_greedy = Generate(**model, greedy_prompt, options, nullptr);
  ASSERT_TRUE(want_greedy.ok()) << want_greedy.status();
  EXPECT_EQ(greedy, want_greedy->tokens);
  options.sampling.temperature = 0.8f;
  options.sampling.seed = kSeed;
  options.sampling.has_seed = true;
  auto want_sampled = Generate(**model, sampled_prompt, options, nullptr);
  ASSERT_TRUE(want_sampled.ok()) << want_sampled.status();
  EXPECT_EQ(sampled, want_sampled->tokens);
}

TEST_F(WorkerGroupTest, InvalidStepsEndTheStreamAndKeepTheGroup) {
  struct Case {
    const char* name;
    std::vector<int32_t> tokens;
    int first_block, blocks;
    const char* message;
  };
  const Case cases[] = {
      {"token id out of range", {1, 101, 2}, 0, 1, "outside the vocabulary"},
      {"block id out of range",
       {1, 2},
       kKvBlocks - 1,
       2,
       "outside the KV cache"},
      {"block table too short", std::vector<int32_t>(20, 1), 0, 1,
       "cannot hold positions"},
      {"no tokens", {}, 0, 1, "no tokens"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Stream stream0(*workers_[0]), stream1(*workers_[1]);
    wv1::StepRequest request;
    request.set_step_id(1);
    AddSeq(&request, 1, c.tokens, 0, c.first_block, c.blocks, true)
        ->mutable_sampling()
        ->CopyFrom(Resolved(0.0f, 0, 0));
    // Both ranks get the same bad step (as from the coordinator) and refuse
    // it before any collective.
    stream0.rw->Write(request);
    stream1.rw->Write(request);
    for (Stream* s : {&stream0, &stream1}) {
      wv1::StepResponse unused;
      EXPECT_FALSE(s->rw->Read(&unused));
      grpc::Status status = s->rw->Finish();
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_NE(status.error_message().find(c.message), std::string::npos)
          << status.error_message();
    }
    EXPECT_EQ(workers_[0]->Health().state(), "ready");
    EXPECT_EQ(workers_[1]->Health().state(), "ready");
  }
  // Sampling on a sequence the stream never started.
  {
    Stream stream0(*workers_[0]);
    wv1::StepRequest request;
    AddSeq(&request, 3, {4}, 5, 0, 1, true);
    stream0.rw->Write(request);
    wv1::StepResponse unused;
    EXPECT_FALSE(stream0.rw->Read(&unused));
    grpc::Status status = stream0.rw->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("no sampler"), std::string::npos)
        << status.error_message();
  }
  // The group still steps.
  Stream stream0(*workers_[0]), stream1(*workers_[1]);
  Stream* streams[2] = {&stream0, &stream1};
  wv1::StepRequest request;
  request.set_step_id(5);
  AddSeq(&request, 1, {1, 2, 3}, 0, 0, 1, true)
      ->mutable_sampling()
      ->CopyFrom(Resolved(0.0f, 0, 0));
  wv1::StepResponse response;
  StepBoth(streams, request, &response);
  EXPECT_EQ(response.tokens_size(), 1);
  EXPECT_TRUE(stream0.Close().ok());
  EXPECT_TRUE(stream1.Close().ok());
}

TEST_F(WorkerGroupTest, SecondStepStreamIsRefused) {
  Stream first0(*workers_[0]), first1(*workers_[1]);
  Stream* streams[2] = {&first0, &first1};
  wv1::StepRequest request;
  request.set_step_id(1);
  AddSeq(&request, 1, {1, 2}, 0, 0, 1, false);
  wv1::StepResponse response;
  StepBoth(streams, request, &response);  // Both streams are open now.
  EXPECT_EQ(response.tokens_size(), 0);

  Stream second(*workers_[0]);
  second.rw->WritesDone();
  grpc::Status status = second.rw->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << status.error_message();
  // Health answers while a stream is open.
  EXPECT_EQ(workers_[0]->Health().state(), "ready");
  EXPECT_TRUE(first0.Close().ok());
  EXPECT_TRUE(first1.Close().ok());
}

TEST(WorkerServiceTest, SingleRankErrors) {
  const std::string path = testing::WriteSyntheticModel(GgmlType::kQ8_0);
  Worker w;
  EXPECT_EQ(w.Health().state(), "idle");
  std::vector<wv1::LoadModelProgress> progress;
  EXPECT_EQ(w.LoadModel(path, &progress).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(w.InitGroup(0, 2, "", "", 1000).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(w.InitGroup(2, 2, "127.0.0.1:1", "g", 1000).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(w.InitGroup(0, 1, "", "", 0).ok());
  grpc::Status s = w.LoadModel("/nonexistent/model.gguf", &progress);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  const std::string junk = ::testing::TempDir() + "/not_a_model.gguf";
  std::ofstream(junk) << "not a model";
  s = w.LoadModel(junk, &progress);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << s.error_message();
  progress.clear();
  ASSERT_TRUE(w.LoadModel(path, &progress).ok());
  wv1::WarmupResponse warm;
  s = w.Warmup(100, &warm);  // Not one block.
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("kv-cache"), std::string::npos)
      << s.error_message();
  EXPECT_EQ(w.Health().state(), "loaded");
  // Step before Warmup.
  {
    Stream stream(w);
    stream.rw->WritesDone();
    EXPECT_EQ(stream.rw->Finish().error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
  ASSERT_TRUE(w.Warmup(1 << 20, &warm).ok());
  EXPECT_GT(warm.kv_blocks(), 0);
  EXPECT_EQ(w.Health().state(), "ready");
}

TEST(WorkerServiceTest, RankThatNeverComesTimesOut) {
  RendezvousService rendezvous;
  Served served = Serve(&rendezvous);
  Worker w;
  const auto start = std::chrono::steady_clock::now();
  grpc::Status s = w.InitGroup(0, 2, served.address, "lonely", 500);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << s.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(w.Health().state(), "idle");
  served.server->Shutdown(In(2));
}

TEST(RendezvousServiceTest, GetWaitsForSetAndTimesOut) {
  RendezvousLimits limits;
  limits.max_value_bytes = 16;
  limits.max_keys = 3;
  RendezvousService service(limits);
  Served served = Serve(&service);
  auto stub = wv1::Rendezvous::NewStub(Channel(served.address));
  auto set = [&](const std::string& key, const std::string& value) {
    wv1::RendezvousSetRequest request;
    request.set_key(key);
    request.set_value(value);
    wv1::RendezvousSetResponse response;
    grpc::ClientContext context;
    context.set_deadline(In(5));
    return stub->Set(&context, request, &response);
  };
  auto get = [&](std::vector<std::string> keys, int timeout_ms,
                 wv1::RendezvousGetResponse* response, int deadline_s = 10) {
    wv1::RendezvousGetRequest request;
    for (const std::string& k : keys) request.add_keys(k);
    request.set_timeout_ms(timeout_ms);
    grpc::ClientContext context;
    context.set_deadline(In(deadline_s));
    return stub->Get(&context, request, response);
  };

  // A missing key: DEADLINE_EXCEEDED naming it, on time.
  wv1::RendezvousGetResponse response;
  auto start = std::chrono::steady_clock::now();
  grpc::Status s = get({"g/0", "g/missing"}, 300, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_NE(s.error_message().find("'g/missing'"), std::string::npos)
      << s.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // timeout 0 only looks.
  EXPECT_EQ(get({"g/0"}, 0, &response).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);

  // A waiting get is completed by the set of its last key.
  ASSERT_TRUE(set("g/0", "zero").ok());
  grpc::Status waited;
  wv1::RendezvousGetResponse both;
  std::thread waiter([&] { waited = get({"g/0", "g/1"}, 10000, &both); });
  // Sync point: the Get waits in the service before the Set that ends it.
  EXPECT_TRUE(service.WaitForWaitingGets(1, std::chrono::seconds(10)));
  ASSERT_TRUE(set("g/1", "one").ok());
  waiter.join();
  ASSERT_TRUE(waited.ok()) << waited.error_message();
  ASSERT_EQ(both.values_size(), 2);
  EXPECT_EQ(both.values(0), "zero");
  EXPECT_EQ(both.values(1), "one");

  // A client that gives up first gets its own deadline; the service drops
  // the waiter and keeps serving.
  s = get({"g/never"}, 60000, &response, 1);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);

  // Bounds.
  EXPECT_EQ(set("g/big", std::string(17, 'x')).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  ASSERT_TRUE(set("h/0", "x").ok());
  EXPECT_EQ(set("h/1", "x").error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(get({}, 10, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // Clear drops one generation only.
  service.Clear("g/");
  EXPECT_EQ(service.key_count(), 1u);
  ASSERT_TRUE(set("h/1", "x").ok());
  served.server->Shutdown(In(2));
}

TEST(GrpcStoreTest, SetGetWaitAndTimeoutThrows) {
  RendezvousService service;
  Served served = Serve(&service);
  GrpcStore store(Channel(served.address), std::chrono::milliseconds(300));
  store.set("a", {'h', 'i'});
  EXPECT_EQ(store.get("a"), (std::vector<char>{'h', 'i'}));
  store.wait({"a"}, std::chrono::milliseconds(100));
  try {
    store.wait({"a", "b"}, std::chrono::milliseconds(200));
    ADD_FAILURE() << "wait for a missing key returned";
  } catch (const gloo::IoException& e) {
    // GlooCommunicator maps "timed out" to DeadlineExceeded.
    EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("'b'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(store.get("b"), gloo::IoException);
  served.server->Shutdown(In(2));
  // A store whose service is gone fails, never hangs.
  EXPECT_THROW(store.set("c", {'x'}), gloo::IoException);
}

}  // namespace
}  // namespace tpserve
