// How a Llama model is split across tensor-parallel ranks (Megatron-style).
//
// Rank r of N holds query heads [r*H/N, (r+1)*H/N) and the matching slice of
// the attention output projection's input; MLP gate/up columns and down rows
// [r*F/N, (r+1)*F/N); a contiguous vocabulary range of the embedding and
// lm_head. When N exceeds the KV heads, each KV head is replicated on
// N / n_kv_heads consecutive ranks, which all serve query heads of its group.
#ifndef TPSERVE_WORKER_TP_PLAN_H_
#define TPSERVE_WORKER_TP_PLAN_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "common/model_weights.h"

namespace tpserve {

struct TpPlan {
  int world = 1;
  int rank = 0;
  int64_t q_head_begin = 0;
  int64_t q_heads = 0;  // Query heads on this rank.
  int64_t kv_head_begin = 0;
  int64_t kv_heads = 0;  // KV heads on this rank (>= 1).
  bool kv_replicated = false;
  int64_t ffn_begin = 0;
  int64_t ffn_size = 0;  // Intermediate columns on this rank.
  int64_t vocab_begin = 0;
  int64_t vocab_size = 0;  // Vocabulary rows on this rank (may differ by 1).
};

// The slice of rank `rank` in a group of `world`. `row_block` is the block
// size of the row-parallel weights' type (32 for Q4_1, 256 for K-quants, 1
// for floats): a rank's share of a row must be whole blocks, since weights
// stay packed. Refuses, with a message naming the rule, any size that does
// not fit the model.
absl::StatusOr<TpPlan> MakeTpPlan(const ModelConfig& config, int world,
                                  int rank, int64_t row_block = 1);

// Every world size in [1, max_world] that MakeTpPlan accepts.
std::vector<int> ValidTpSizes(const ModelConfig& config, int max_world,
                              int64_t row_block = 1);

// The largest quantization block of a model's layer matmuls: a rank's share
// of a row-parallel weight must be whole blocks, so this is MakeTpPlan's
// `row_block` for the model.
int64_t LayerRowBlock(const ModelWeights& model);

}  // namespace tpserve

#endif  // TPSERVE_WORKER_TP_PLAN_H_
