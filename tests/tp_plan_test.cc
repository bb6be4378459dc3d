// Tensor-parallel slicing, table-driven: which heads, FFN columns and
// vocabulary rows each rank holds, and which sizes are refused.
#include "worker/tp_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tpserve {
namespace {

ModelConfig SmolLM2() {
  ModelConfig c;
  c.vocab_size = 49152;
  c.hidden_size = 576;
  c.intermediate_size = 1536;
  c.n_layers = 30;
  c.n_heads = 9;
  c.n_kv_heads = 3;
  c.head_dim = 64;
  return c;
}

ModelConfig Llama8B() {
  ModelConfig c;
  c.vocab_size = 128256;
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.n_layers = 32;
  c.n_heads = 32;
  c.n_kv_heads = 8;
  c.head_dim = 128;
  return c;
}

struct PlanCase {
  ModelConfig config;
  int world, rank;
  int64_t q_begin, q_heads, kv_begin, kv_heads;
  bool replicated;
  int64_t ffn_begin, ffn_size, vocab_begin, vocab_size;
};

TEST(TpPlanTest, SlicesPerRank) {
  const PlanCase cases[] = {
      {SmolLM2(), 1, 0, 0, 9, 0, 3, false, 0, 1536, 0, 49152},
      {SmolLM2(), 3, 0, 0, 3, 0, 1, false, 0, 512, 0, 16384},
      {SmolLM2(), 3, 2, 6, 3, 2, 1, false, 1024, 512, 32768, 16384},
      {Llama8B(), 4, 1, 8, 8, 2, 2, false, 3584, 3584, 32064, 32064},
      // 16 ranks > 8 KV heads: each KV head replicated on 2 ranks.
      {Llama8B(), 16, 15, 30, 2, 7, 1, true, 13440, 896, 120240, 8016},
  };
  for (const PlanCase& c : cases) {
    SCOPED_TRACE(::testing::Message()
                 << "world " << c.world << " rank " << c.rank);
    auto p = MakeTpPlan(c.config, c.world, c.rank);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->q_head_begin, c.q_begin);
    EXPECT_EQ(p->q_heads, c.q_heads);
    EXPECT_EQ(p->kv_head_begin, c.kv_begin);
    EXPECT_EQ(p->kv_heads, c.kv_heads);
    EXPECT_EQ(p->kv_replicated, c.replicated);
    EXPECT_EQ(p->ffn_begin, c.ffn_begin);
    EXPECT_EQ(p->ffn_size, c.ffn_size);
    EXPECT_EQ(p->vocab_begin, c.vocab_begin);
    EXPECT_EQ(p->vocab_size, c.vocab_size);
  }
}

TEST(TpPlanTest, EveryRankMapsItsQueryHeadsToItsKvHeads) {
  for (const ModelConfig& c : {SmolLM2(), Llama8B()}) {
    for (int world : ValidTpSizes(c, 32)) {
      int64_t vocab_total = 0;
      for (int rank = 0; rank < world; ++rank) {
        auto p = MakeTpPlan(c, world, rank);
        ASSERT_TRUE(p.ok());
        const int64_t group = c.n_heads / c.n_kv_heads;
        // Query head h uses KV head h / group; it must be on this rank.
        for (int64_t h = p->q_head_begin; h < p->q_head_begin + p->q_heads;
             ++h) {
          EXPECT_GE(h / group, p->kv_head_begin);
          EXPECT_LT(h / group, p->kv_head_begin + p->kv_heads);
        }
        EXPECT_EQ(p->vocab_begin, vocab_total);  // Contiguous, no gaps.
        vocab_total += p->vocab_size;
      }
      EXPECT_EQ(vocab_total, c.vocab_size);
    }
  }
}

TEST(TpPlanTest, RefusesSizesThatDoNotFit) {
  EXPECT_THAT(ValidTpSizes(SmolLM2(), 16), ::testing::ElementsAre(1, 3));
  EXPECT_THAT(ValidTpSizes(Llama8B(), 64),
              ::testing::ElementsAre(1, 2, 4, 8, 16, 32));
  auto two = MakeTpPlan(SmolLM2(), 2, 0);
  ASSERT_FALSE(two.ok());
  EXPECT_THAT(std::string(two.status().message()),
              ::testing::HasSubstr("tensor parallel size 2 does not fit this "
                                   "model: 9 query heads do not split evenly"));
  EXPECT_FALSE(MakeTpPlan(SmolLM2(), 0, 0).ok());
  EXPECT_FALSE(MakeTpPlan(SmolLM2(), 3, 3).ok());
  EXPECT_FALSE(MakeTpPlan(SmolLM2(), 3, -1).ok());
  // Q4_K rows come in 256-element blocks: a rank's 3 heads x 64 = 192
  // columns of the output projection cannot be whole blocks.
  auto q4k = MakeTpPlan(SmolLM2(), 3, 0, 256);
  ASSERT_FALSE(q4k.ok());
  EXPECT_THAT(std::string(q4k.status().message()),
              ::testing::HasSubstr("256-element quantization blocks"));
  EXPECT_TRUE(MakeTpPlan(SmolLM2(), 3, 0, 32).ok());
  // TP=1 slices nothing: any block fits (a Q4_K_M SmolLM2 has 576-wide
  // Q6_K/Q5_0 rows).
  EXPECT_TRUE(MakeTpPlan(SmolLM2(), 1, 0, 256).ok());
  // A mix: attn_output Q5_0 (32) fits 192 columns, ffn_down Q6_K (256)
  // must fit 1536 / 3 = 512 columns: TP=3 works.
  EXPECT_TRUE(MakeTpPlan(SmolLM2(), 3, 0, RowBlocks(32, 256)).ok());
  auto ffn = MakeTpPlan(SmolLM2(), 3, 0, RowBlocks(32, 1024));
  ASSERT_FALSE(ffn.ok());
  EXPECT_THAT(std::string(ffn.status().message()),
              ::testing::HasSubstr("ffn_down (512 columns) is not whole 1024"));
}

TEST(TpPlanTest, VocabSlicesTileTheVocabularyAsThePlansSay) {
  // 7 does not divide the heads (no plan), but the vocabulary split does
  // not care: 128256 % 7 = 2 ranks take an extra row.
  for (int world : {1, 2, 4, 7}) {
    int64_t next = 0;
    for (int rank = 0; rank < world; ++rank) {
      const VocabSlice v = RankVocab(Llama8B().vocab_size, world, rank);
      EXPECT_EQ(v.begin, next) << world << " " << rank;
      next = v.begin + v.size;
      auto plan = MakeTpPlan(Llama8B(), world, rank);
      if (!plan.ok()) continue;
      EXPECT_EQ(plan->vocab_begin, v.begin);
      EXPECT_EQ(plan->vocab_size, v.size);
    }
    EXPECT_EQ(next, Llama8B().vocab_size) << world;
  }
  EXPECT_EQ(RankVocab(128256, 7, 1).size, 18323);
  EXPECT_EQ(RankVocab(128256, 7, 2).size, 18322);
}

TEST(TpPlanTest, TensorSplitsByName) {
  EXPECT_EQ(TensorSplitOf("token_embd.weight"), TensorSplit::kVocab);
  EXPECT_EQ(TensorSplitOf("output.weight"), TensorSplit::kVocab);
  EXPECT_EQ(TensorSplitOf("output_norm.weight"), TensorSplit::kReplicated);
  EXPECT_EQ(TensorSplitOf("blk.3.attn_q.weight"), TensorSplit::kQHeads);
  EXPECT_EQ(TensorSplitOf("blk.3.attn_q.bias"), TensorSplit::kQHeads);
  EXPECT_EQ(TensorSplitOf("blk.3.attn_output.weight"), TensorSplit::kQHeads);
  EXPECT_EQ(TensorSplitOf("blk.3.attn_k.bias"), TensorSplit::kKvHeads);
  EXPECT_EQ(TensorSplitOf("blk.3.attn_v.weight"), TensorSplit::kKvHeads);
  EXPECT_EQ(TensorSplitOf("blk.3.ffn_down.weight"), TensorSplit::kFfn);
  EXPECT_EQ(TensorSplitOf("blk.3.attn_q_norm.weight"),
            TensorSplit::kReplicated);
  EXPECT_EQ(TensorSplitOf("blk.3.attn_norm.weight"), TensorSplit::kReplicated);
  auto plan = MakeTpPlan(SmolLM2(), 3, 1);
  ASSERT_TRUE(plan.ok());
  const TensorShare vocab = RankShare(SmolLM2(), *plan, TensorSplit::kVocab);
  EXPECT_EQ(vocab.part, plan->vocab_size);
  EXPECT_EQ(vocab.whole, 49152);
  const TensorShare kv = RankShare(SmolLM2(), *plan, TensorSplit::kKvHeads);
  EXPECT_EQ(kv.part, 1);
  EXPECT_EQ(kv.whole, 3);
}

}  // namespace
}  // namespace tpserve
