// One tensor-parallel rank of a Llama-family model (Llama, Mistral, Qwen2,
// Qwen3): its slices of the weights, its KV cache blocks, and the forward
// pass over a batch of sequences.
//
// The forward pass reads like the model (Megatron-style TP, DESIGN.md):
//   x = embed(tokens)                       vocab-parallel gather + all-reduce
//   for each layer:
//     h = rmsnorm(x);  q,k,v = h Wq, h Wk, h Wv   (this rank's heads)
//     q,k,v += bq,bk,bv                       (Qwen2)
//     q,k = rmsnorm_per_head(q,k)             (Qwen3)
//     q,k = rope(q,k);  a = attention(q, cache[k,v])
//     x += allreduce(a Wo)                  row-parallel output projection
//     h = rmsnorm(x)
//     x += allreduce((silu(h Wgate) * h Wup) Wdown)
//   logits = rmsnorm(x) Wlm                 vocab-parallel, gathered on rank 0
#ifndef TPSERVE_WORKER_LLAMA_SHARD_H_
#define TPSERVE_WORKER_LLAMA_SHARD_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "common/model_weights.h"
#include "kernels/backend.h"
#include "worker/communicator.h"
#include "worker/tp_plan.h"

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

class LlamaShard {
 public:
  // Takes this rank's slices of `model` (no copies of quantized weights on
  // CPU; the file mapping must outlive the shard) and allocates a KV cache
  // of `kv_blocks` blocks of `block_size` tokens. `comm` may be null when
  // plan.world == 1.
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
  absl::Status Load(const ModelWeights& model);
  absl::Status EnsureScratch(int64_t n_tokens, int64_t n_logits);
  // The whole vector, or elements [begin, begin + count) of it.
  absl::StatusOr<float*> UploadVector(const TensorView& t, int64_t begin = 0,
                                      int64_t count = -1);
  absl::Status AllReduce(float* data, size_t count);

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
  std::vector<float*> owned_;  // Freed in the destructor.

  // Scratch activations, grown (never shrunk) to the largest batch seen so
  // a steady decode loop allocates nothing.
  int64_t scratch_tokens_ = 0, scratch_logits_ = 0;
  float *x_ = nullptr, *h_ = nullptr, *q_ = nullptr, *k_ = nullptr,
        *v_ = nullptr, *attn_ = nullptr, *proj_ = nullptr, *gate_ = nullptr,
        *up_ = nullptr, *last_ = nullptr, *local_logits_ = nullptr;
  // Host staging, reused across steps (resize never shrinks capacity).
  std::vector<float> host_logits_, host_rows_, gathered_;
};

}  // namespace tpserve

#endif  // TPSERVE_WORKER_LLAMA_SHARD_H_
