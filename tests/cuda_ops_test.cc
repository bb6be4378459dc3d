// The CUDA side end to end: kernels against the CPU reference, CUDA graph
// capture/replay, NCCL (one rank; two when two GPUs are present) with its
// unique id through a Gloo store, and the Llama engine on the CUDA backend:
//  - the default model's greedy continuations against llama.cpp's goldens
//    (the rule of tests/llama_shard_test.cc) and against the CPU backend;
//  - TP=2 on one GPU (two CUDA backends, Gloo staged through host memory)
//    against TP=1, on the synthetic model;
//  - TP=1 with a NCCL communicator equal to TP=1 without one.
// Built whenever CUDA is compiled in; every test is skipped (not failed) on
// machines without a GPU, such as CI. scripts/gpu-check.sh runs it on one.
#include <cuda_runtime.h>
#include <gloo/rendezvous/hash_store.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/model_weights.h"
#include "common/status_macros.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_graph.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/reference_ops.h"
#include "tests/synthetic_model.h"
#include "tests/test_paths.h"
#include "worker/gloo_communicator.h"
#include "worker/host_staged_communicator.h"
#include "worker/llama_shard.h"
#include "worker/nccl_communicator.h"
#include "worker/nccl_rendezvous.h"
#include "worker/tp_plan.h"

namespace tpserve {
namespace {

#define SKIP_WITHOUT_GPU()                                        \
  do {                                                            \
    if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

class CudaOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_GPU();
    ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
  }
  void TearDown() override {
    for (void* p : allocs_) cudaFree(p);
    if (stream_) cudaStreamDestroy(stream_);
  }
  float* ToDevice(const std::vector<float>& h) {
    void* d = nullptr;
    EXPECT_EQ(cudaMalloc(&d, h.size() * sizeof(float)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(d, h.data(), h.size() * sizeof(float),
                         cudaMemcpyHostToDevice),
              cudaSuccess);
    allocs_.push_back(d);
    return static_cast<float*>(d);
  }
  std::vector<float> ToHost(const float* d, size_t n) {
    std::vector<float> h(n);
    EXPECT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
    EXPECT_EQ(
        cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost),
        cudaSuccess);
    return h;
  }
  cudaStream_t stream_ = nullptr;
  std::vector<void*> allocs_;
};

std::vector<float> Random(size_t n, int seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist;
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST_F(CudaOpsTest, RmsNormMatchesReferenceOnOddShapes) {
  for (auto [rows, cols] : {std::pair{1, 1}, {3, 576}, {7, 1000}, {2, 4097}}) {
    auto x = Random(size_t(rows) * cols, rows), w = Random(cols, cols);
    std::vector<float> want(x.size());
    ASSERT_TRUE(
        RmsNormReference(x.data(), w.data(), want.data(), rows, cols, 1e-5f)
            .ok());
    float* dx = ToDevice(x);
    ASSERT_TRUE(
        cuda::RmsNorm(dx, ToDevice(w), dx, rows, cols, 1e-5f, stream_).ok());
    auto got = ToHost(dx, x.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], 1e-4 * (1 + std::fabs(want[i])))
          << rows << "x" << cols << " at " << i;
    }
  }
  EXPECT_FALSE(
      cuda::RmsNorm(nullptr, nullptr, nullptr, 1, 1, 1e-5f, stream_).ok());
}

TEST_F(CudaOpsTest, CublasMatmulMatchesReference) {
  const int m = 5, n = 33, k = 70;
  auto a = Random(m * k, 1), w = Random(n * k, 2);
  cublasHandle_t handle;
  ASSERT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
  float* dc = ToDevice(std::vector<float>(m * n));
  ASSERT_TRUE(
      cuda::MatmulF32(handle, stream_, ToDevice(a), ToDevice(w), dc, m, n, k)
          .ok());
  auto got = ToHost(dc, m * n);
  cublasDestroy(handle);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double want = 0;
      for (int x = 0; x < k; ++x) want += double{a[i * k + x]} * w[j * k + x];
      EXPECT_NEAR(got[i * n + j], want, 1e-3) << i << "," << j;
    }
  }
}

TEST_F(CudaOpsTest, NcclSingleRankAllReduceIsIdentity) {
  auto id = NcclCommunicator::NewUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  auto comm = NcclCommunicator::Create(*id, 0, 1, std::chrono::seconds(30));
  ASSERT_TRUE(comm.ok()) << comm.status();
  auto x = Random(1000, 3);
  float* dx = ToDevice(x);
  ASSERT_TRUE((*comm)->AllReduceSum(dx, x.size(), stream_).ok());
  EXPECT_EQ(ToHost(dx, x.size()), x);
  EXPECT_GT(NcclCommunicator::Version(), 0);
}

// The unique id through a Gloo store, then every collective with device
// and with host buffers (the shard passes host buffers to AllGatherV).
TEST_F(CudaOpsTest, NcclThroughStoreDeviceAndHostBuffers) {
  gloo::rendezvous::HashStore store;
  NcclOptions options;
  options.stream = stream_;
  options.timeout = std::chrono::seconds(30);
  auto comm = CreateNcclCommunicator(store, "tp/gen1/nccl", 0, 1, options);
  ASSERT_TRUE(comm.ok()) << comm.status();
  auto x = Random(257, 4);
  float* dx = ToDevice(x);
  ASSERT_TRUE((*comm)->AllReduceSum(dx, x.size()).ok());
  EXPECT_EQ(ToHost(dx, x.size()), x);
  std::vector<float> host = x;
  ASSERT_TRUE((*comm)->AllReduceSum(host.data(), host.size()).ok());
  EXPECT_EQ(host, x);
  std::vector<float> out(x.size(), 0.f);
  const size_t counts[] = {x.size()};
  ASSERT_TRUE((*comm)->AllGatherV(x.data(), counts, out.data()).ok());
  EXPECT_EQ(out, x);
  int32_t word[2] = {7, 9};
  ASSERT_TRUE((*comm)->Broadcast(word, sizeof(word), 0).ok());
  EXPECT_EQ(word[1], 9);
  EXPECT_EQ((*comm)->Broadcast(word, 4, 1).code(),
            absl::StatusCode::kInvalidArgument);
  // Rank 1 of 2 waits for a key nobody sets: a bounded, clear failure.
  options.timeout = std::chrono::milliseconds(200);
  auto lonely = CreateNcclCommunicator(store, "tp/gen2/nccl", 1, 2, options);
  EXPECT_FALSE(lonely.ok());
}

// Backend ops captured into a graph, then replayed on new inputs written in
// place: the graph reads the buffers at replay time.
TEST(CudaGraphTest, CaptureAndReplayBackendOps) {
  SKIP_WITHOUT_GPU();
  auto backend = MakeCudaBackend(0);
  ASSERT_TRUE(backend.ok()) << backend.status();
  Backend& b = **backend;
  cudaStream_t stream = CudaBackendStream(b);
  ASSERT_NE(stream, nullptr);
  const int64_t n = 1000;
  auto x = b.AllocFloats(n), y = b.AllocFloats(n), w = b.AllocFloats(n);
  ASSERT_TRUE(x.ok() && y.ok() && w.ok());
  std::vector<float> ones(n, 1.0f);
  ASSERT_TRUE(b.CopyFromHost(ones.data(), *w, n).ok());
  cuda::CudaGraph graph;
  ASSERT_TRUE(graph
                  .Capture(stream,
                           [&]() -> absl::Status {
                             TP_RETURN_IF_ERROR(b.Add(*x, *y, n));
                             TP_RETURN_IF_ERROR(b.SiluMul(*x, *y, n));
                             return b.RmsNorm(*x, *w, *x, 1, n, 1e-5f);
                           })
                  .ok());
  EXPECT_GE(graph.num_nodes(), 3u);
  for (int round = 0; round < 3; ++round) {
    const std::vector<float> hx = Random(n, 10 + round),
                             hy = Random(n, 20 + round);
    ASSERT_TRUE(b.CopyFromHost(hx.data(), *x, n).ok());
    ASSERT_TRUE(b.CopyFromHost(hy.data(), *y, n).ok());
    ASSERT_TRUE(graph.Replay(stream).ok());
    std::vector<float> got(n), want = hx;
    ASSERT_TRUE(b.CopyToHost(*x, got.data(), n).ok());
    ASSERT_TRUE(AddReference(want.data(), hy.data(), n).ok());
    ASSERT_TRUE(SiluMulReference(want.data(), hy.data(), n).ok());
    ASSERT_TRUE(
        RmsNormReference(want.data(), ones.data(), want.data(), 1, n, 1e-5f)
            .ok());
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(got[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << i;
    }
  }
  for (float* p : {*x, *y, *w}) b.Free(p);
}

// ---- The engine on the CUDA backend ---------------------------------------

struct GreedyRun {
  std::vector<int32_t> tokens;
  std::vector<float> first_logits;
  std::vector<float> margins;  // Top-1 minus top-2 logit, per step.
};

enum class Comm { kNone, kGloo, kNccl };

// Greedy decoding with `tp` ranks as threads: each rank has its own backend
// ("cpu" or "cuda"; CUDA ranks share GPUs round-robin) and, when tp > 1 or
// comm == kNccl, a communicator: Gloo (staged through host memory for CUDA)
// or NCCL. Rank 0 picks the argmax and broadcasts it.
absl::StatusOr<GreedyRun> RunGreedy(const ModelWeights& model,
                                    const std::vector<int32_t>& prompt,
                                    int steps, int tp,
                                    const std::string& backend_name,
                                    Comm comm_kind) {
  gloo::rendezvous::HashStore store;
  GreedyRun result;
  std::vector<absl::Status> status(tp);
  auto rank_main = [&](int rank) -> absl::Status {
    const ModelConfig& c = model.config();
    TP_ASSIGN_OR_RETURN(TpPlan plan,
                        MakeTpPlan(c, tp, rank, LayerRowBlock(model)));
    std::unique_ptr<Backend> backend;
    if (backend_name == "cpu") {
      backend = MakeCpuBackend(2);
    } else {
      TP_ASSIGN_OR_RETURN(backend, MakeCudaBackend(rank % CudaDeviceCount()));
    }
    std::unique_ptr<Communicator> inner, comm;
    if (comm_kind == Comm::kGloo) {
      TP_ASSIGN_OR_RETURN(
          inner, GlooCommunicator::Create(store, "cuda_test", rank, tp, {}));
      if (backend_name == "cuda") {
        comm = std::make_unique<HostStagedCommunicator>(inner.get(),
                                                        backend.get());
      } else {
        comm = std::move(inner);
      }
    } else if (comm_kind == Comm::kNccl) {
      NcclOptions options;
      options.device = CudaBackendDevice(*backend);
      options.stream = CudaBackendStream(*backend);
      TP_ASSIGN_OR_RETURN(
          comm, CreateNcclCommunicator(store, "nccl", rank, tp, options));
    }
    const int64_t max_len = static_cast<int64_t>(prompt.size()) + steps;
    const int64_t blocks = (max_len + 15) / 16;
    TP_ASSIGN_OR_RETURN(
        auto shard,
        LlamaShard::Create(model, plan, backend.get(), comm.get(), blocks, 16));
    StepInput step;
    step.block_offsets = {0, static_cast<int32_t>(blocks)};
    for (int32_t b = 0; b < blocks; ++b) step.block_table.push_back(b);
    step.tokens = prompt;
    for (size_t i = 0; i < prompt.size(); ++i) {
      step.positions.push_back(static_cast<int32_t>(i));
    }
    step.seq.assign(prompt.size(), 0);
    step.logit_tokens = {static_cast<int32_t>(prompt.size()) - 1};
    step.prompt_len = {static_cast<int32_t>(prompt.size())};
    std::vector<float> logits;
    int32_t pos = static_cast<int32_t>(prompt.size());
    for (int i = 0; i < steps; ++i) {
      TP_RETURN_IF_ERROR(shard->Forward(step, &logits));
      int32_t next = 0;
      if (rank == 0) {
        if (i == 0) result.first_logits = logits;
        auto top = std::max_element(logits.begin(), logits.end());
        next = static_cast<int32_t>(top - logits.begin());
        float second = -INFINITY;
        for (size_t j = 0; j < logits.size(); ++j) {
          if (static_cast<int32_t>(j) != next) {
            second = std::max(second, logits[j]);
          }
        }
        result.tokens.push_back(next);
        result.margins.push_back(*top - second);
      }
      if (comm != nullptr) {
        TP_RETURN_IF_ERROR(comm->Broadcast(&next, sizeof(next), 0));
      }
      step.tokens = {next};
      step.positions = {pos++};
      step.seq = {0};
      step.logit_tokens = {0};
    }
    return absl::OkStatus();
  };
  std::vector<std::thread> threads;
  for (int r = 1; r < tp; ++r) {
    threads.emplace_back([&, r] { status[r] = rank_main(r); });
  }
  status[0] = rank_main(0);
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : status) {
    if (!s.ok()) return s;
  }
  return result;
}

float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    worst = std::max(worst, std::fabs(a[i] - b[i]));
  }
  return worst;
}

// Tokens equal up to the first step where `reference`'s own top-2 margin is
// below `guard` (a near tie that float differences may flip); returns how
// many were identical.
size_t ExpectSameGreedy(const GreedyRun& got, const GreedyRun& reference,
                        float guard, const std::string& what) {
  size_t same = 0;
  while (same < got.tokens.size() && same < reference.tokens.size() &&
         got.tokens[same] == reference.tokens[same]) {
    ++same;
  }
  if (same < reference.tokens.size()) {
    EXPECT_LT(reference.margins[same], guard)
        << what << ": diverged at step " << same
        << " where the reference's choice was clear";
  }
  std::printf("%s: %zu/%zu greedy tokens identical\n", what.c_str(), same,
              reference.tokens.size());
  return same;
}

class CudaEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_GPU();
    auto model = OpenModel(testing::DefaultModelPath());
    ASSERT_TRUE(model.ok()) << model.status() << "\n" << testing::kModelHint;
    model_ = std::move(*model);
  }
  std::unique_ptr<ModelWeights> model_;
};

// The CUDA engine follows llama.cpp as the CPU engine does (see
// tests/llama_shard_test.cc for the tolerances' origin).
TEST_F(CudaEngineTest, GreedyContinuationsMatchLlamaCpp) {
  const std::string text =
      testing::ReadFileOrEmpty(testing::GoldenPath("llama_cpp_greedy.json"));
  ASSERT_FALSE(text.empty()) << "missing tests/golden/llama_cpp_greedy.json";
  const nlohmann::json golden = nlohmann::json::parse(text);
  // scripts/gpu-check.sh may run a trimmed copy of the default model (the
  // full one does not fit a device run's carry); goldens need the full one.
  if (model_->config().n_layers != 30) {
    GTEST_SKIP() << "the llama.cpp goldens are for the full 30-layer model";
  }
  size_t compared = 0;
  for (const nlohmann::json& c : golden["cases"]) {
    SCOPED_TRACE(c["text"].get<std::string>());
    GreedyRun want;
    want.tokens = c["greedy"].get<std::vector<int32_t>>();
    want.margins = c["margins"].get<std::vector<float>>();
    auto r =
        RunGreedy(*model_, c["prompt"].get<std::vector<int32_t>>(),
                  static_cast<int>(want.tokens.size()), 1, "cuda", Comm::kNone);
    ASSERT_TRUE(r.ok()) << r.status();
    compared += ExpectSameGreedy(*r, want, 1.5f, "cuda vs llama.cpp");
    const nlohmann::json& first = c["first_step"];
    for (const char* kind : {"top", "fixed"}) {
      const auto ids =
          first[std::string(kind) + "_ids"].get<std::vector<int>>();
      const auto logits =
          first[std::string(kind) + "_logits"].get<std::vector<float>>();
      for (size_t i = 0; i < ids.size(); ++i) {
        EXPECT_NEAR(r->first_logits[ids[i]], logits[i], 0.75f)
            << kind << " id " << ids[i];
      }
    }
  }
  EXPECT_GE(compared, 100u);
}

TEST_F(CudaEngineTest, GreedyMatchesCpuBackend) {
  // "The capital of France is", and a prompt long enough (> 8 tokens) for
  // the prefill matmuls to take the bf16 cuBLAS path.
  const std::vector<std::vector<int32_t>> prompts = {
      {504, 3575, 282, 4649, 314},
      {504, 3575, 282, 4649, 314, 504, 3575, 282, 4649, 314, 504, 3575, 282}};
  for (const auto& prompt : prompts) {
    auto cpu = RunGreedy(*model_, prompt, 48, 1, "cpu", Comm::kNone);
    auto gpu = RunGreedy(*model_, prompt, 48, 1, "cuda", Comm::kNone);
    ASSERT_TRUE(cpu.ok()) << cpu.status();
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    // The CPU quantizes activations to 8 bits, the GPU does not: their
    // logits differ like the CPU's and llama.cpp's (measured up to ~0.7).
    EXPECT_LE(MaxAbsDiff(gpu->first_logits, cpu->first_logits), 1.0f);
    ExpectSameGreedy(*gpu, *cpu, 1.5f, "cuda vs cpu");
  }
}

TEST_F(CudaEngineTest, NcclTp1EqualsNoCommunicator) {
  const std::vector<int32_t> prompt = {504, 3575, 282, 4649, 314};
  auto plain = RunGreedy(*model_, prompt, 24, 1, "cuda", Comm::kNone);
  auto nccl = RunGreedy(*model_, prompt, 24, 1, "cuda", Comm::kNccl);
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(nccl.ok()) << nccl.status();
  EXPECT_EQ(nccl->tokens, plain->tokens);
  EXPECT_LE(MaxAbsDiff(nccl->first_logits, plain->first_logits), 1e-5f);
}

// TP=2 as two CUDA backends on one GPU, all-reducing through host memory
// over Gloo; and over NCCL when there are two GPUs.
TEST(CudaTpTest, Tp2OnOneGpuMatchesTp1) {
  SKIP_WITHOUT_GPU();
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_1}) {
    SCOPED_TRACE(GgmlTypeName(type));
    auto model = OpenModel(testing::WriteSyntheticModel(type));
    ASSERT_TRUE(model.ok()) << model.status();
    // 6 tokens: the prefill takes the f32 GEMV path, so TP=1 and TP=2
    // differ only by the order partial sums are added in.
    const std::vector<int32_t> prompt = {1, 17, 33, 5, 99, 42};
    auto tp1 = RunGreedy(**model, prompt, 24, 1, "cuda", Comm::kNone);
    auto tp2 = RunGreedy(**model, prompt, 24, 2, "cuda", Comm::kGloo);
    ASSERT_TRUE(tp1.ok()) << tp1.status();
    ASSERT_TRUE(tp2.ok()) << tp2.status();
    EXPECT_LE(MaxAbsDiff(tp2->first_logits, tp1->first_logits), 1e-3f);
    ExpectSameGreedy(*tp2, *tp1, 1e-2f, "cuda tp2 (gloo) vs tp1");
    if (CudaDeviceCount() >= 2) {
      auto nccl = RunGreedy(**model, prompt, 24, 2, "cuda", Comm::kNccl);
      ASSERT_TRUE(nccl.ok()) << nccl.status();
      EXPECT_LE(MaxAbsDiff(nccl->first_logits, tp1->first_logits), 1e-3f);
      ExpectSameGreedy(*nccl, *tp1, 1e-2f, "cuda tp2 (nccl) vs tp1");
    }
  }
}

// Every architecture the engine runs, on the GPU against the CPU backend:
// Llama with rope_freqs.weight, Qwen2 (Q/K/V biases), Qwen3 (Q/K norms).
TEST(CudaArchTest, SyntheticFamiliesMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (const char* arch : {"llama", "qwen2", "qwen3"}) {
    SCOPED_TRACE(arch);
    auto model = OpenModel(testing::WriteSyntheticModel(GgmlType::kQ8_0, arch));
    ASSERT_TRUE(model.ok()) << model.status();
    const std::vector<int32_t> prompt = {1, 17, 33, 5, 99, 42};
    auto cpu = RunGreedy(**model, prompt, 24, 1, "cpu", Comm::kNone);
    auto gpu = RunGreedy(**model, prompt, 24, 1, "cuda", Comm::kNone);
    ASSERT_TRUE(cpu.ok()) << cpu.status();
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    EXPECT_LE(MaxAbsDiff(gpu->first_logits, cpu->first_logits), 5e-2f);
    ExpectSameGreedy(*gpu, *cpu, 5e-2f, "cuda vs cpu");
  }
}

}  // namespace
}  // namespace tpserve
