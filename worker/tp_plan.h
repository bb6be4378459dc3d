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
#include "absl/strings/string_view.h"
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

// A rank's rows of the vocabulary: [begin, begin + size). The first
// (vocab_size % world) ranks take one extra row. MakeTpPlan's vocab_begin
// and vocab_size are this for its rank; whoever needs another rank's rows
// (the logit gather) asks here rather than re-deriving the split.
struct VocabSlice {
  int64_t begin = 0;
  int64_t size = 0;
};
VocabSlice RankVocab(int64_t vocab_size, int world, int rank);

// How the ranks split a weight tensor (the slices LlamaShard takes), by
// canonical name.
enum class TensorSplit {
  kReplicated,  // Whole on every rank: norms, RoPE factors.
  kVocab,       // Rows of the vocabulary: token_embd, output.
  kQHeads,      // Query heads: attn_q (rows, bias), attn_output (columns).
  kKvHeads,     // KV heads: attn_k, attn_v (rows, biases).
  kFfn,         // FFN columns: ffn_gate, ffn_up (rows), ffn_down (columns).
};
TensorSplit TensorSplitOf(absl::string_view canonical_name);

// The part of `split`'s dimension rank `plan` holds, out of the whole
// (e.g. q_heads of n_heads); {1, 1} for kReplicated. Since every slice is
// whole rows or whole quantization blocks, a tensor's bytes on the rank are
// exactly bytes / whole * part.
struct TensorShare {
  int64_t part = 1;
  int64_t whole = 1;
};
TensorShare RankShare(const ModelConfig& config, const TpPlan& plan,
                      TensorSplit split);

// The quantization block sizes of the row-parallel weights (32 for Q4_1 or
// Q5_0, 256 for K-quants, 1 for floats): a rank's share of a row must be
// whole blocks, since weights stay packed. Quantization mixes (Q4_K_M) give
// the two weights different types, so each has its own. Implicit from one
// size for both.
struct RowBlocks {
  RowBlocks(int64_t both = 1) : attn_output(both), ffn_down(both) {}
  RowBlocks(int64_t attn, int64_t ffn) : attn_output(attn), ffn_down(ffn) {}
  int64_t attn_output;  // Largest block of any layer's attn_output.
  int64_t ffn_down;     // Largest block of any layer's ffn_down.
};

// The slice of rank `rank` in a group of `world`. Refuses, with a message
// naming the rule, any size that does not fit the model. World 1 slices
// nothing, so it fits whatever the blocks.
absl::StatusOr<TpPlan> MakeTpPlan(const ModelConfig& config, int world,
                                  int rank, RowBlocks row_blocks = {});

// Every world size in [1, max_world] that MakeTpPlan accepts.
std::vector<int> ValidTpSizes(const ModelConfig& config, int max_world,
                              RowBlocks row_blocks = {});

// The row-parallel weights' quantization blocks of a model, for MakeTpPlan.
RowBlocks LayerRowBlock(const ModelWeights& model);

}  // namespace tpserve

#endif  // TPSERVE_WORKER_TP_PLAN_H_
