#include "worker/tp_plan.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tpserve {

absl::StatusOr<TpPlan> MakeTpPlan(const ModelConfig& c, int world, int rank,
                                  RowBlocks row_blocks) {
  if (world < 1 || rank < 0 || rank >= world) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor parallel: rank ", rank, " of world ", world, " is invalid"));
  }
  auto refuse = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor parallel size ", world, " does not fit this model: ", why,
        ". Choose one of the sizes `tpserve describe` lists."));
  };
  if (c.n_heads % world != 0) {
    return refuse(absl::StrCat(c.n_heads, " query heads do not split evenly"));
  }
  if (world <= c.n_kv_heads ? c.n_kv_heads % world != 0
                            : world % c.n_kv_heads != 0) {
    return refuse(
        absl::StrCat(c.n_kv_heads,
                     " KV heads can neither be split evenly nor replicated "
                     "evenly"));
  }
  if (c.intermediate_size % world != 0) {
    return refuse(absl::StrCat("intermediate size ", c.intermediate_size,
                               " does not split evenly"));
  }
  TpPlan p;
  p.world = world;
  p.rank = rank;
  p.q_heads = c.n_heads / world;
  p.q_head_begin = rank * p.q_heads;
  p.ffn_size = c.intermediate_size / world;
  p.ffn_begin = rank * p.ffn_size;
  auto whole = [world](int64_t share, int64_t block) {
    return world == 1 || block <= 1 || share % block == 0;
  };
  if (!whole(p.q_heads * c.head_dim, row_blocks.attn_output)) {
    return refuse(
        absl::StrCat("a rank's share of attn_output (", p.q_heads * c.head_dim,
                     " columns) is not whole ", row_blocks.attn_output,
                     "-element quantization blocks"));
  }
  if (!whole(p.ffn_size, row_blocks.ffn_down)) {
    return refuse(absl::StrCat("a rank's share of ffn_down (", p.ffn_size,
                               " columns) is not whole ", row_blocks.ffn_down,
                               "-element quantization blocks"));
  }
  if (world <= c.n_kv_heads) {
    p.kv_heads = c.n_kv_heads / world;
    p.kv_head_begin = rank * p.kv_heads;
  } else {
    p.kv_replicated = true;
    p.kv_heads = 1;
    p.kv_head_begin = rank / (world / c.n_kv_heads);
  }
  const VocabSlice vocab = RankVocab(c.vocab_size, world, rank);
  p.vocab_begin = vocab.begin;
  p.vocab_size = vocab.size;
  return p;
}

VocabSlice RankVocab(int64_t vocab_size, int world, int rank) {
  const int64_t base = vocab_size / world, extra = vocab_size % world;
  VocabSlice v;
  v.size = base + (rank < extra ? 1 : 0);
  v.begin = rank * base + (rank < extra ? rank : extra);
  return v;
}

TensorSplit TensorSplitOf(absl::string_view n) {
  if (n == "token_embd.weight" || n == "output.weight") {
    return TensorSplit::kVocab;
  }
  if (!absl::StartsWith(n, "blk.")) return TensorSplit::kReplicated;
  for (const char* s :
       {".attn_q.weight", ".attn_q.bias", ".attn_output.weight"}) {
    if (absl::EndsWith(n, s)) return TensorSplit::kQHeads;
  }
  for (const char* s :
       {".attn_k.weight", ".attn_v.weight", ".attn_k.bias", ".attn_v.bias"}) {
    if (absl::EndsWith(n, s)) return TensorSplit::kKvHeads;
  }
  for (const char* s :
       {".ffn_gate.weight", ".ffn_up.weight", ".ffn_down.weight"}) {
    if (absl::EndsWith(n, s)) return TensorSplit::kFfn;
  }
  return TensorSplit::kReplicated;
}

TensorShare RankShare(const ModelConfig& c, const TpPlan& plan,
                      TensorSplit split) {
  switch (split) {
    case TensorSplit::kReplicated:
      return {1, 1};
    case TensorSplit::kVocab:
      return {plan.vocab_size, c.vocab_size};
    case TensorSplit::kQHeads:
      return {plan.q_heads, c.n_heads};
    case TensorSplit::kKvHeads:
      return {plan.kv_heads, c.n_kv_heads};
    case TensorSplit::kFfn:
      return {plan.ffn_size, c.intermediate_size};
  }
  return {1, 1};
}

std::vector<int> ValidTpSizes(const ModelConfig& config, int max_world,
                              RowBlocks row_blocks) {
  std::vector<int> sizes;
  for (int n = 1; n <= max_world; ++n) {
    if (MakeTpPlan(config, n, 0, row_blocks).ok()) sizes.push_back(n);
  }
  return sizes;
}

RowBlocks LayerRowBlock(const ModelWeights& model) {
  // Only attn_output and ffn_down are sliced by columns (row-parallel);
  // every other matrix is sliced by whole rows, which any type allows.
  RowBlocks blocks(1);
  for (const TensorView& t : model.tensors()) {
    if (t.dims.size() != 2 || t.name.rfind("blk.", 0) != 0) continue;
    const int64_t block = GetGgmlType(t.type).block_size;
    if (absl::EndsWith(t.name, ".attn_output.weight")) {
      blocks.attn_output = std::max(blocks.attn_output, block);
    } else if (absl::EndsWith(t.name, ".ffn_down.weight")) {
      blocks.ffn_down = std::max(blocks.ffn_down, block);
    }
  }
  return blocks;
}

}  // namespace tpserve
