#include "worker/llama_shard.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tpserve {

RopeParams RopeParamsFor(const ModelConfig& c) {
  RopeParams r;
  r.head_dim = c.head_dim;
  r.rope_dim = c.rope_dim;
  r.theta = c.rope_theta;
  r.neox = c.rope_style == RopeStyle::kNeox;
  r.freq_factors = c.rope_freq_factors;
  const RopeScaling& s = c.rope_scaling;
  // As llama_context sets up ggml_rope_ext: no scaling means freq_scale 1;
  // YaRN mixes (ext_factor 1) over its original context.
  if (s.type != RopeScalingType::kNone) {
    r.freq_scale = static_cast<double>(1.0f / static_cast<float>(s.factor));
  }
  r.attn_factor = s.attn_factor;
  if (s.type == RopeScalingType::kYarn) {
    r.ext_factor = 1.0;
    r.beta_fast = s.beta_fast;
    r.beta_slow = s.beta_slow;
    r.original_max_positions = s.original_max_positions > 0
                                   ? s.original_max_positions
                                   : c.max_positions;
  }
  return r;
}

absl::StatusOr<std::unique_ptr<LlamaShard>> LlamaShard::Create(
    WeightSource& weights, const TpPlan& plan, Backend* backend,
    Communicator* comm, int64_t kv_blocks, int64_t block_size) {
  if (plan.world > 1 && (comm == nullptr || comm->world_size() != plan.world ||
                         comm->rank() != plan.rank)) {
    return absl::InvalidArgumentError(
        "LlamaShard: the communicator does not match the TP plan");
  }
  if (kv_blocks <= 0 || block_size <= 0) {
    return absl::InvalidArgumentError("LlamaShard: KV cache needs blocks");
  }
  std::unique_ptr<LlamaShard> shard(
      new LlamaShard(weights.config(), plan, backend, comm));
  shard->kv_.layers = shard->config_.n_layers;
  shard->kv_.num_blocks = kv_blocks;
  shard->kv_.block_size = block_size;
  shard->kv_.kv_heads = plan.kv_heads;
  shard->kv_.head_dim = shard->config_.head_dim;
  shard->kv_.dtype = backend->KvCacheType();
  TP_RETURN_IF_ERROR(shard->Load(weights));
  return shard;
}

absl::StatusOr<std::unique_ptr<LlamaShard>> LlamaShard::Create(
    const ModelWeights& model, const TpPlan& plan, Backend* backend,
    Communicator* comm, int64_t kv_blocks, int64_t block_size) {
  ModelWeightSource weights(model);
  return Create(weights, plan, backend, comm, kv_blocks, block_size);
}

int64_t LlamaShard::KvBytesPerBlock(const ModelConfig& config,
                                    const TpPlan& plan, int64_t block_size,
                                    GgmlType kv_type) {
  KvCacheLayout kv;  // As Create fills it.
  kv.layers = config.n_layers;
  kv.num_blocks = 1;
  kv.block_size = block_size;
  kv.kv_heads = plan.kv_heads;
  kv.head_dim = config.head_dim;
  kv.dtype = kv_type;
  return 2 * kv.CacheBytes();  // K and V.
}

LlamaShard::~LlamaShard() {
  FreeActivations();
  for (float* p : owned_) backend_->Free(p);
}

absl::Status LlamaShard::Load(WeightSource& weights) {
  const ModelConfig& c = config_;
  const int64_t hd = c.head_dim;
  rope_ = RopeParamsFor(c);
  Backend& b = *backend_;
  // Vectors are the shard's to free.
  auto vector = [&](const std::string& name, int64_t begin = 0,
                    int64_t count = -1) -> absl::StatusOr<float*> {
    TP_ASSIGN_OR_RETURN(float* p, weights.Vector(name, begin, count, b));
    owned_.push_back(p);
    return p;
  };

  // Vocabulary-parallel: this rank's rows of the plan.
  const MatrixSlice vocab =
      MatrixSlice::Rows(plan_.vocab_begin, plan_.vocab_size);
  TP_ASSIGN_OR_RETURN(token_embd_,
                      weights.Matrix("token_embd.weight", vocab, b));
  if (!weights.Has("output.weight")) {
    lm_head_ = token_embd_;  // Tied embeddings.
  } else {
    TP_ASSIGN_OR_RETURN(lm_head_, weights.Matrix("output.weight", vocab, b));
  }
  TP_ASSIGN_OR_RETURN(output_norm_, vector("output_norm.weight"));

  layers_.resize(c.n_layers);
  const int64_t q_begin = plan_.q_head_begin * hd, q_count = plan_.q_heads * hd;
  const int64_t kv_begin = plan_.kv_head_begin * hd,
                kv_count = plan_.kv_heads * hd;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = absl::StrCat("blk.", i, ".");
    Layer& l = layers_[i];
    TP_ASSIGN_OR_RETURN(l.attn_norm, vector(p + "attn_norm.weight"));
    TP_ASSIGN_OR_RETURN(l.ffn_norm, vector(p + "ffn_norm.weight"));
    auto matrix = [&](const char* name, const MatrixSlice& slice) {
      return weights.Matrix(p + name, slice, b);
    };
    // Column-parallel: this rank's heads / FFN columns are output rows.
    TP_ASSIGN_OR_RETURN(
        l.q, matrix("attn_q.weight", MatrixSlice::Rows(q_begin, q_count)));
    TP_ASSIGN_OR_RETURN(
        l.k, matrix("attn_k.weight", MatrixSlice::Rows(kv_begin, kv_count)));
    TP_ASSIGN_OR_RETURN(
        l.v, matrix("attn_v.weight", MatrixSlice::Rows(kv_begin, kv_count)));
    const MatrixSlice ffn_rows =
        MatrixSlice::Rows(plan_.ffn_begin, plan_.ffn_size);
    TP_ASSIGN_OR_RETURN(l.gate, matrix("ffn_gate.weight", ffn_rows));
    TP_ASSIGN_OR_RETURN(l.up, matrix("ffn_up.weight", ffn_rows));
    // Row-parallel: this rank's inputs; partial sums are all-reduced.
    TP_ASSIGN_OR_RETURN(
        l.o, matrix("attn_output.weight", MatrixSlice::Cols(q_begin, q_count)));
    TP_ASSIGN_OR_RETURN(
        l.down, matrix("ffn_down.weight",
                       MatrixSlice::Cols(plan_.ffn_begin, plan_.ffn_size)));
    if (c.qkv_bias) {
      // Sliced with their matrices' rows (this rank's heads).
      TP_ASSIGN_OR_RETURN(l.q_bias,
                          vector(p + "attn_q.bias", q_begin, q_count));
      TP_ASSIGN_OR_RETURN(l.k_bias,
                          vector(p + "attn_k.bias", kv_begin, kv_count));
      TP_ASSIGN_OR_RETURN(l.v_bias,
                          vector(p + "attn_v.bias", kv_begin, kv_count));
    }
    if (c.qk_norm) {
      // One head_dim vector shared by every head: replicated.
      TP_ASSIGN_OR_RETURN(l.q_norm, vector(p + "attn_q_norm.weight"));
      TP_ASSIGN_OR_RETURN(l.k_norm, vector(p + "attn_k_norm.weight"));
    }
  }

  // In float-sized units (the allocator's), whatever the element type.
  const size_t cache_floats =
      (static_cast<size_t>(kv_.CacheBytes()) + sizeof(float) - 1) /
      sizeof(float);
  float* k_cache;
  float* v_cache;
  TP_ASSIGN_OR_RETURN(k_cache, backend_->AllocFloats(cache_floats));
  owned_.push_back(k_cache);
  TP_ASSIGN_OR_RETURN(v_cache, backend_->AllocFloats(cache_floats));
  owned_.push_back(v_cache);
  k_cache_ = k_cache;
  v_cache_ = v_cache;
  return absl::OkStatus();
}

void LlamaShard::FreeActivations() {
  for (float* p : {act_.x, act_.h, act_.q, act_.k, act_.v, act_.attn, act_.proj,
                   act_.gate, act_.up, act_.last, act_.logits}) {
    if (p != nullptr) backend_->Free(p);
  }
  act_ = Activations();
}

absl::Status LlamaShard::EnsureActivations(int64_t n_tokens, int64_t n_logits) {
  if (n_tokens <= act_.tokens && n_logits <= act_.logit_rows) {
    return absl::OkStatus();
  }
  n_tokens = std::max(n_tokens, act_.tokens);
  n_logits = std::max(n_logits, act_.logit_rows);
  FreeActivations();
  const int64_t hidden = config_.hidden_size, hd = config_.head_dim;
  auto alloc = [&](int64_t floats, float** out) -> absl::Status {
    TP_ASSIGN_OR_RETURN(*out,
                        backend_->AllocFloats(static_cast<size_t>(floats)));
    return absl::OkStatus();
  };
  TP_RETURN_IF_ERROR(alloc(n_tokens * hidden, &act_.x));
  TP_RETURN_IF_ERROR(alloc(n_tokens * hidden, &act_.h));
  TP_RETURN_IF_ERROR(alloc(n_tokens * plan_.q_heads * hd, &act_.q));
  TP_RETURN_IF_ERROR(alloc(n_tokens * plan_.kv_heads * hd, &act_.k));
  TP_RETURN_IF_ERROR(alloc(n_tokens * plan_.kv_heads * hd, &act_.v));
  TP_RETURN_IF_ERROR(alloc(n_tokens * plan_.q_heads * hd, &act_.attn));
  TP_RETURN_IF_ERROR(alloc(n_tokens * hidden, &act_.proj));
  TP_RETURN_IF_ERROR(alloc(n_tokens * plan_.ffn_size, &act_.gate));
  TP_RETURN_IF_ERROR(alloc(n_tokens * plan_.ffn_size, &act_.up));
  TP_RETURN_IF_ERROR(alloc(n_logits * hidden, &act_.last));
  TP_RETURN_IF_ERROR(alloc(n_logits * plan_.vocab_size, &act_.logits));
  // Only once all are there: a failed allocation leaves capacity 0, so the
  // next step retries (FreeActivations frees what was allocated).
  act_.tokens = n_tokens;
  act_.logit_rows = n_logits;
  return absl::OkStatus();
}

absl::Status LlamaShard::AllReduce(float* data, size_t count) {
  if (plan_.world == 1) return absl::OkStatus();
  return comm_->AllReduceSum(data, count);
}

absl::Status LlamaShard::CheckStep(const StepInput& in) const {
  const int64_t n = static_cast<int64_t>(in.tokens.size());
  if (n == 0 || in.positions.size() != in.tokens.size() ||
      in.seq.size() != in.tokens.size() || in.block_offsets.size() < 2 ||
      (!in.prompt_len.empty() &&
       in.prompt_len.size() != in.block_offsets.size() - 1)) {
    return absl::InvalidArgumentError("step: inconsistent token arrays");
  }
  for (int32_t t : in.tokens) {
    if (t < 0 || t >= config_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("step: token id ", t, " is outside the vocabulary"));
    }
  }
  for (int32_t t : in.logit_tokens) {
    if (t < 0 || t >= n) {
      return absl::InvalidArgumentError("step: logit token out of range");
    }
  }
  return absl::OkStatus();
}

absl::Status LlamaShard::Forward(const StepInput& in,
                                 std::vector<float>* logits) {
  TP_RETURN_IF_ERROR(CheckStep(in));
  const int64_t n = static_cast<int64_t>(in.tokens.size());
  const int64_t m = static_cast<int64_t>(in.logit_tokens.size());
  TP_RETURN_IF_ERROR(EnsureActivations(n, std::max<int64_t>(m, 1)));
  AttentionBatch batch;
  batch.n_tokens = n;
  batch.seq = in.seq;
  batch.pos = in.positions;
  batch.block_table = in.block_table;
  batch.block_offsets = in.block_offsets;
  batch.prompt_len = in.prompt_len;

  TP_RETURN_IF_ERROR(Embed(in.tokens));
  for (int64_t il = 0; il < config_.n_layers; ++il) {
    TP_RETURN_IF_ERROR(AttentionBlock(il, batch));
    TP_RETURN_IF_ERROR(FeedForward(il, n));
  }
  logits->clear();
  if (m == 0) return backend_->Synchronize();
  TP_RETURN_IF_ERROR(LmHead(in.logit_tokens));
  return GatherLogits(m, logits);
}

}  // namespace tpserve
