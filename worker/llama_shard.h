// One tensor-parallel rank of a Llama-family model (Llama, Mistral, Qwen2,
// Qwen3): its slices of the weights, its KV cache blocks, and the forward
// pass over a batch of sequences.
//
// Forward reads like the model (Megatron-style TP, docs/design.md); each
// part is one function over the step's Activations (worker/llama_layers.cc):
//   Embed:           x = embed(tokens)          vocab-parallel + all-reduce
//   for each layer:
//     AttentionBlock: h = rmsnorm(x);  q,k,v = h Wq, h Wk, h Wv (rank's heads)
//                     q,k,v += bq,bk,bv                          (Qwen2)
//                     q,k = rmsnorm_per_head(q,k)                (Qwen3)
//                     q,k = rope(q,k);  a = attention(q, cache[k,v])
//                     x += allreduce(a Wo)      row-parallel output projection
//     FeedForward:    h = rmsnorm(x)
//                     x += allreduce((silu(h Wgate) * h Wup) Wdown)
//   LmHead:          logits = rmsnorm(x[wanted rows]) Wlm
//                     vocab-parallel, gathered on rank 0
#ifndef TPSERVE_WORKER_LLAMA_SHARD_H_
#define TPSERVE_WORKER_LLAMA_SHARD_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/model_config.h"
#include "common/model_weights.h"
#include "kernels/backend.h"
#include "worker/communicator.h"
#include "worker/tp_plan.h"
#include "worker/weight_source.h"

namespace tpserve {

// One step of work, the same on every rank. Tokens of a sequence are
// contiguous; positions continue the sequence's cache.
struct StepInput {
  std::vector<int32_t> tokens;     // n_tokens
  std::vector<int32_t> positions;  // n_tokens
  std::vector<int32_t> seq;        // n_tokens, index into the tables below
  std::vector<int32_t> block_table;
  std::vector<int32_t> block_offsets;  // n_seqs + 1
  // Token indices whose next-token logits are wanted (usually the last
  // token of each sequence), in output order.
  std::vector<int32_t> logit_tokens;
  // Each sequence's prompt length (n_seqs entries), or empty: decides the
  // order of float operations in attention (AttentionBatch::prompt_len).
  std::vector<int32_t> prompt_len;
};

// The RoPE of `config` as the backends' op takes it: frequency factors,
// linear and YaRN scaling folded into ggml's rope_ext parameters.
RopeParams RopeParamsFor(const ModelConfig& config);

// The scratch activations of one step, in backend memory. Rows are tokens
// (n of the step) or logit rows (m); widths are this rank's shares.
// Allocated for the largest step seen and never shrunk, so a steady decode
// loop allocates nothing.
struct Activations {
  int64_t tokens = 0;       // Capacity in token rows.
  int64_t logit_rows = 0;   // Capacity in logit rows.
  float* x = nullptr;       // [tokens, hidden] the residual stream.
  float* h = nullptr;       // [tokens, hidden] rmsnorm(x): a block's input.
  float* q = nullptr;       // [tokens, q_heads * head_dim]
  float* k = nullptr;       // [tokens, kv_heads * head_dim]
  float* v = nullptr;       // [tokens, kv_heads * head_dim]
  float* attn = nullptr;    // [tokens, q_heads * head_dim] attention output.
  float* proj = nullptr;    // [tokens, hidden] a block's (partial) output.
  float* gate = nullptr;    // [tokens, ffn_size], then silu(gate) * up.
  float* up = nullptr;      // [tokens, ffn_size]
  float* last = nullptr;    // [logit_rows, hidden] rows the LM head reads.
  float* logits = nullptr;  // [logit_rows, vocab_size] this rank's slice.
};

class LlamaShard {
 public:
  // Takes this rank's slices of the weights `weights` hands out and
  // allocates a KV cache of `kv_blocks` blocks of `block_size` tokens. What
  // `weights` returned (e.g. the file mapping it reads in place on CPU)
  // must outlive the shard; the source object itself need not. `comm` may
  // be null when plan.world == 1.
  static absl::StatusOr<std::unique_ptr<LlamaShard>> Create(
      WeightSource& weights, const TpPlan& plan, Backend* backend,
      Communicator* comm, int64_t kv_blocks, int64_t block_size);
  // The same over a model file (ModelWeightSource): no copies of quantized
  // weights on CPU; the file mapping must outlive the shard.
  static absl::StatusOr<std::unique_ptr<LlamaShard>> Create(
      const ModelWeights& model, const TpPlan& plan, Backend* backend,
      Communicator* comm, int64_t kv_blocks, int64_t block_size);
  ~LlamaShard();

  // Bytes one KV block of `block_size` tokens takes on the rank of `plan`
  // (K and V of every layer, elements of `kv_type`, the backend's
  // KvCacheType): what Create allocates per block, so a memory budget
  // divided by this is the block count it holds.
  static int64_t KvBytesPerBlock(const ModelConfig& config, const TpPlan& plan,
                                 int64_t block_size, GgmlType kv_type);

  // Runs the step. On rank 0, `logits` receives [logit_tokens.size(),
  // vocab_size] floats; other ranks leave it empty.
  absl::Status Forward(const StepInput& in, std::vector<float>* logits);

  const ModelConfig& config() const { return config_; }
  const KvCacheLayout& kv_layout() const { return kv_; }

 private:
  struct Layer {
    float* attn_norm = nullptr;
    float* ffn_norm = nullptr;
    WeightMatrix q, k, v, o, gate, up, down;
    // Qwen2: this rank's slices of the Q/K/V biases; Qwen3: the per-head
    // Q/K norm weights (head_dim each). Null when the model has none.
    float *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr;
    float *q_norm = nullptr, *k_norm = nullptr;
  };

  LlamaShard(const ModelConfig& config, const TpPlan& plan, Backend* backend,
             Communicator* comm)
      : config_(config), plan_(plan), backend_(backend), comm_(comm) {}
  absl::Status Load(WeightSource& weights);
  absl::Status CheckStep(const StepInput& in) const;
  absl::Status EnsureActivations(int64_t n_tokens, int64_t n_logits);
  void FreeActivations();
  absl::Status AllReduce(float* data, size_t count);

  // The parts of the model (worker/llama_layers.cc), in Forward's order.
  // Each reads and writes act_; n is the step's token count.
  // act_.x = the embedding of `tokens` (all ranks' vocabulary slices).
  absl::Status Embed(absl::Span<const int32_t> tokens);
  // act_.x += attention of layer `il` over rmsnorm(act_.x), caching K, V.
  absl::Status AttentionBlock(int64_t il, const AttentionBatch& batch);
  // act_.x += the feed-forward of layer `il` over rmsnorm(act_.x).
  absl::Status FeedForward(int64_t il, int64_t n);
  // The logits of act_.x's rows `rows`: this rank's vocabulary slice in
  // act_.logits, then (GatherLogits) the whole rows on rank 0.
  absl::Status LmHead(absl::Span<const int32_t> rows);
  absl::Status GatherLogits(int64_t m, std::vector<float>* logits);

  ModelConfig config_;
  TpPlan plan_;
  Backend* backend_;
  Communicator* comm_;
  RopeParams rope_;
  KvCacheLayout kv_;

  WeightMatrix token_embd_;  // Rows [vocab_begin, vocab_begin + vocab_size).
  WeightMatrix lm_head_;     // Same rows of output.weight (or token_embd).
  float* output_norm_ = nullptr;
  std::vector<Layer> layers_;
  void* k_cache_ = nullptr;  // Elements of kv_.dtype.
  void* v_cache_ = nullptr;
  std::vector<float*> owned_;  // Weights and caches, freed in the destructor.

  Activations act_;
  // Host staging of the logits, reused across steps (resize never shrinks
  // capacity).
  std::vector<float> host_logits_, gathered_;
};

}  // namespace tpserve

#endif  // TPSERVE_WORKER_LLAMA_SHARD_H_
