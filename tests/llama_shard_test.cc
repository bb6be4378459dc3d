// The Llama engine end to end on the CPU:
//  - against llama.cpp (tests/golden/llama_cpp_greedy.json, made by
//    scripts/make_llama_golden.py with llama-cpp-python built from source):
//    the default model's greedy continuations token for token and its
//    first-step logits within a stated tolerance;
//  - tensor parallelism: TP=3 on the default model, and TP=2 and TP=4 on
//    synthetic Llama (with rope_freqs), Qwen2 and Qwen3 models
//    (tests/synthetic_model.h, random weights), give the same greedy tokens
//    as TP=1, with logits equal within float tolerance.
#include "worker/llama_shard.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "common/model_weights.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/matmul.h"
#include "tests/synthetic_model.h"
#include "tests/test_paths.h"
#include "worker/local_generator.h"
#include "worker/tp_plan.h"

namespace tpserve {
namespace {

using nlohmann::json;

absl::StatusOr<GenerateResult> Greedy(const ModelWeights& model,
                                      const std::vector<int32_t>& prompt,
                                      int tp, int steps, bool record = false) {
  GenerateOptions options;
  options.record_logits = record;
  options.tp = tp;
  options.threads = 2;
  options.max_tokens = steps;
  options.sampling.temperature = 0;
  return Generate(model, prompt, options, nullptr);
}

void ExpectSameLogits(const std::vector<float>& a, const std::vector<float>& b,
                      float tolerance) {
  ASSERT_EQ(a.size(), b.size());
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::fabs(a[i] - b[i]));
  }
  EXPECT_LE(worst, tolerance) << "largest logit difference";
}

struct SyntheticCase {
  GgmlType type;
  const char* arch;  // Llama with rope_freqs, Qwen2 biases, Qwen3 Q/K norms.
};

class SyntheticTpTest : public ::testing::TestWithParam<SyntheticCase> {};

TEST_P(SyntheticTpTest, TensorParallelMatchesTp1) {
  auto model =
      OpenModel(testing::WriteSyntheticModel(GetParam().type, GetParam().arch));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->config().architecture, GetParam().arch);
  const std::vector<int32_t> prompt = {5, 17, 99, 3, 42, 7, 0, 100, 64};
  auto tp1 = Greedy(**model, prompt, 1, 24);
  ASSERT_TRUE(tp1.ok()) << tp1.status();
  ASSERT_EQ(tp1->tokens.size(), 24u);
  for (int tp : {2, 4}) {
    SCOPED_TRACE(::testing::Message() << "tp " << tp);
    auto r = Greedy(**model, prompt, tp, 24);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->tokens, tp1->tokens);
    // Sums are split across ranks, so only the order of float additions
    // differs from TP=1.
    ExpectSameLogits(r->first_logits, tp1->first_logits, 1e-3f);
  }
  // TP=3 cannot split 4 heads: refused with a clear error.
  auto bad = Greedy(**model, prompt, 3, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              ::testing::HasSubstr("tensor parallel size 3 does not fit"));
}

INSTANTIATE_TEST_SUITE_P(
    WeightTypes, SyntheticTpTest,
    ::testing::Values(SyntheticCase{GgmlType::kQ8_0, "llama"},
                      SyntheticCase{GgmlType::kQ4_1, "llama"},
                      SyntheticCase{GgmlType::kQ8_0, "qwen2"},
                      SyntheticCase{GgmlType::kQ8_0, "qwen3"}),
    [](const ::testing::TestParamInfo<SyntheticCase>& info) {
      return std::string(info.param.arch) + "_" +
             std::string(GgmlTypeName(info.param.type));
    });

class DefaultModelShardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = OpenModel(testing::DefaultModelPath());
    ASSERT_TRUE(model.ok()) << model.status() << "\n" << testing::kModelHint;
    model_ = std::move(*model);
  }
  std::unique_ptr<ModelWeights> model_;
};

// The CPU backend does llama.cpp's arithmetic operation for operation
// (8-bit activation blocks with fp16 scales, the integer dot products'
// float sums in ggml's order, fp16 KV cache, ggml's exp, RoPE and RMSNorm:
// kernels/cpu/float_ops.h). Where the matmul follows ggml's x86 order (x86
// with AVX2 or AVX-512), TP=1 output is bit for bit llama.cpp's: the same
// 64 greedy tokens for every prompt and identical logits at the first
// step (the batched prompt) and at decode steps 1, 2, 3 and 63.
// Elsewhere the sums are the same up to their order, so: logits agree
// within kLogitTolerance, and while the two token histories are equal, a
// greedy choice may differ only at a step where llama.cpp's own top-2
// margin is below kMarginGuard (a near tie that such differences can flip).
constexpr float kLogitTolerance = 0.75f;
constexpr float kMarginGuard = 2 * kLogitTolerance;

TEST_F(DefaultModelShardTest, GreedyContinuationsMatchLlamaCpp) {
  const bool bitwise = cpu::MatMulFollowsGgmlOrder();
  std::printf("matmul target %s: %s\n", cpu::MatMulTargetName(),
              bitwise ? "bit for bit llama.cpp's arithmetic"
                      : "llama.cpp's arithmetic up to summation order");
  const std::string text =
      testing::ReadFileOrEmpty(testing::GoldenPath("llama_cpp_greedy.json"));
  ASSERT_FALSE(text.empty()) << "missing tests/golden/llama_cpp_greedy.json";
  const json golden = json::parse(text);
  int compared = 0, total = 0;
  for (const json& c : golden["cases"]) {
    SCOPED_TRACE(c["text"].get<std::string>());
    const auto prompt = c["prompt"].get<std::vector<int32_t>>();
    const auto want = c["greedy"].get<std::vector<int32_t>>();
    const auto margins = c["margins"].get<std::vector<float>>();
    auto r = Greedy(*model_, prompt, 1, static_cast<int>(want.size()),
                    /*record=*/true);
    ASSERT_TRUE(r.ok()) << r.status();
    size_t same = 0;
    while (same < want.size() && same < r->tokens.size() &&
           r->tokens[same] == want[same]) {
      ++same;
    }
    if (bitwise) {
      EXPECT_EQ(r->tokens, want);
    } else if (same < want.size()) {
      EXPECT_LT(margins[same], kMarginGuard)
          << "diverged from llama.cpp at step " << same
          << " where llama.cpp's choice was clear";
    }
    compared += static_cast<int>(same);
    ++total;
    const json& first = c["first_step"];
    float worst = 0;
    for (const char* kind : {"top", "fixed"}) {
      const auto ids =
          first[std::string(kind) + "_ids"].get<std::vector<int>>();
      const auto logits =
          first[std::string(kind) + "_logits"].get<std::vector<float>>();
      for (size_t i = 0; i < ids.size(); ++i) {
        const float got = r->first_logits[ids[i]];
        if (bitwise) {
          EXPECT_EQ(got, logits[i]) << kind << " id " << ids[i];
        } else {
          EXPECT_NEAR(got, logits[i], kLogitTolerance)
              << kind << " id " << ids[i];
        }
        worst = std::max(worst, std::fabs(got - logits[i]));
      }
    }
    // Decode steps (one token at a time after the batched prompt), while
    // the histories agree: the same logits, bit for bit.
    for (const json& later : c["later_steps"]) {
      const size_t step = later["step"].get<size_t>();
      if (!bitwise || step > same || step >= r->step_logits.size()) continue;
      const auto ids = later["top_ids"].get<std::vector<int>>();
      const auto logits = later["top_logits"].get<std::vector<float>>();
      for (size_t i = 0; i < ids.size(); ++i) {
        EXPECT_EQ(r->step_logits[step][ids[i]], logits[i])
            << "step " << step << " id " << ids[i];
      }
    }
    std::printf(
        "%-40s %zu/%zu tokens as llama.cpp's, logits within %g\n",
        absl::CEscape(c["text"].get<std::string>().substr(0, 38)).c_str(), same,
        want.size(), worst);
  }
  EXPECT_EQ(total, 5);
  // Measured before the CPU backend followed ggml's order: 214 of 320.
  EXPECT_GE(compared, bitwise ? 320 : 100) << "over " << total << " prompts";
}

// A sequence computes the same however its tokens were grouped into steps:
// a 5-token prompt then 10 generated tokens one per step, against all 15
// run again in one step (as after a preemption) with the same prompt
// length, give bit-identical logits at the last position. (Attention's
// order of operations follows the position, AttentionBatch::prompt_len.)
TEST_F(DefaultModelShardTest, RecomputedSequenceIsBitIdentical) {
  auto plan = MakeTpPlan(model_->config(), 1, 0, LayerRowBlock(*model_));
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::unique_ptr<Backend> backend = MakeCpuBackend(2);
  const std::vector<int32_t> tokens = {504, 3575, 282, 4649, 314, 7042, 30, 216,
                                       504, 3575, 282, 4649, 314, 2,    8};
  const int32_t prompt = 5, total = static_cast<int32_t>(tokens.size());
  auto step_of = [&](int32_t begin, int32_t end) {
    StepInput in;
    for (int32_t p = begin; p < end; ++p) {
      in.tokens.push_back(tokens[p]);
      in.positions.push_back(p);
      in.seq.push_back(0);
    }
    in.block_table = {0};
    in.block_offsets = {0, 1};
    in.logit_tokens = {end - begin - 1};
    in.prompt_len = {prompt};
    return in;
  };
  std::vector<float> stepwise, at_once;
  {
    auto shard = LlamaShard::Create(*model_, *plan, backend.get(), nullptr,
                                    /*kv_blocks=*/1, /*block_size=*/16);
    ASSERT_TRUE(shard.ok()) << shard.status();
    ASSERT_TRUE((*shard)->Forward(step_of(0, prompt), &stepwise).ok());
    for (int32_t p = prompt; p < total; ++p) {
      ASSERT_TRUE((*shard)->Forward(step_of(p, p + 1), &stepwise).ok());
    }
  }
  {
    auto shard = LlamaShard::Create(*model_, *plan, backend.get(), nullptr,
                                    /*kv_blocks=*/1, /*block_size=*/16);
    ASSERT_TRUE(shard.ok()) << shard.status();
    ASSERT_TRUE((*shard)->Forward(step_of(0, total), &at_once).ok());
  }
  ASSERT_EQ(stepwise.size(), at_once.size());
  EXPECT_TRUE(stepwise == at_once) << "logits differ after recompute";
}

TEST_F(DefaultModelShardTest, Tp3MatchesTp1) {
  // Partial sums are added in another order across ranks; with 8-bit
  // activation blocks a last-bit difference can flip one rounding, so TP=3
  // equals TP=1 to the same tolerance as llama.cpp, and greedy tokens agree
  // while the top-2 margin is above that.
  // "The capital of France is", as `tpserve generate` runs it by default.
  const std::vector<int32_t> prompt = {504, 3575, 282, 4649, 314};
  auto tp1 = Greedy(*model_, prompt, 1, 64);
  auto tp3 = Greedy(*model_, prompt, 3, 64);
  ASSERT_TRUE(tp1.ok()) << tp1.status();
  ASSERT_TRUE(tp3.ok()) << tp3.status();
  EXPECT_EQ(tp3->tokens, tp1->tokens);
  // Measured up to 0.56 (-O2) and 0.77 (-O0, other FMA contraction).
  ExpectSameLogits(tp3->first_logits, tp1->first_logits, 1.0f);
}

}  // namespace
}  // namespace tpserve
