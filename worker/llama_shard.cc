#include "worker/llama_shard.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/dequantize.h"
#include "common/status_macros.h"

namespace tpserve {
namespace {

absl::StatusOr<const TensorView*> Need(const ModelWeights& model,
                                       const std::string& name) {
  const TensorView* t = model.Find(name);
  if (t == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("model: tensor '", name, "' is missing"));
  }
  return t;
}

// The whole matrix of a 2-D tensor: ggml dims [in, out] = [cols, rows].
absl::StatusOr<WeightMatrix> Matrix(const TensorView& t) {
  if (t.dims.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("model: tensor '", t.name, "' is not 2-D"));
  }
  WeightMatrix w;
  w.type = t.type;
  w.cols = static_cast<int64_t>(t.dims[0]);
  w.rows = static_cast<int64_t>(t.dims[1]);
  w.data = t.data;
  TP_ASSIGN_OR_RETURN(uint64_t row_bytes, GgmlRowBytes(t.type, w.cols));
  w.row_stride = row_bytes;
  return w;
}

// Rows [begin, begin + count): the output features of this rank.
WeightMatrix RowSlice(WeightMatrix w, int64_t begin, int64_t count) {
  w.data += static_cast<size_t>(begin) * w.row_stride;  // size_t: no overflow.
  w.rows = count;
  return w;
}

// Columns [begin, begin + count): the input features of this rank. The TP
// plan guarantees whole quantization blocks.
absl::StatusOr<WeightMatrix> ColSlice(WeightMatrix w, int64_t begin,
                                      int64_t count) {
  const GgmlTypeTraits& t = GetGgmlType(w.type);
  if (begin % t.block_size != 0 || count % t.block_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor parallel: columns [", begin, ", ", begin + count,
                     ") split ", t.name, " blocks"));
  }
  w.data += static_cast<size_t>(begin / t.block_size) * t.type_size;
  w.cols = count;
  return w;
}

}  // namespace

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
    const ModelWeights& model, const TpPlan& plan, Backend* backend,
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
      new LlamaShard(model.config(), plan, backend, comm));
  shard->kv_.layers = shard->config_.n_layers;
  shard->kv_.num_blocks = kv_blocks;
  shard->kv_.block_size = block_size;
  shard->kv_.kv_heads = plan.kv_heads;
  shard->kv_.head_dim = shard->config_.head_dim;
  shard->kv_.dtype = backend->KvCacheType();
  TP_RETURN_IF_ERROR(shard->Load(model));
  return shard;
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
  for (float* p : owned_) backend_->Free(p);
}

absl::StatusOr<float*> LlamaShard::UploadVector(const TensorView& t,
                                                int64_t begin, int64_t count) {
  // Norm weights and biases are tiny; keep them as f32 whatever the file
  // stored.
  std::vector<float> host(t.n_elements);
  TP_RETURN_IF_ERROR(
      DequantizeRow(t.type, t.data, t.n_bytes, t.n_elements, host.data()));
  if (count < 0) count = static_cast<int64_t>(host.size()) - begin;
  if (begin < 0 || begin + count > static_cast<int64_t>(host.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model: tensor '", t.name, "' has ", host.size(),
        " elements, rank needs [", begin, ", ", begin + count, ")"));
  }
  TP_ASSIGN_OR_RETURN(float* dev,
                      backend_->AllocFloats(static_cast<size_t>(count)));
  owned_.push_back(dev);
  TP_RETURN_IF_ERROR(backend_->CopyFromHost(host.data() + begin, dev,
                                            static_cast<size_t>(count)));
  return dev;
}

absl::Status LlamaShard::Load(const ModelWeights& model) {
  const ModelConfig& c = config_;
  const int64_t hd = c.head_dim;
  rope_ = RopeParamsFor(c);

  TP_ASSIGN_OR_RETURN(const TensorView* embd, Need(model, "token_embd.weight"));
  TP_ASSIGN_OR_RETURN(WeightMatrix embd_m, Matrix(*embd));
  TP_ASSIGN_OR_RETURN(
      token_embd_, backend_->UploadWeights(
                       RowSlice(embd_m, plan_.vocab_begin, plan_.vocab_size)));
  const TensorView* out = model.Find("output.weight");
  if (out == nullptr) {
    lm_head_ = token_embd_;  // Tied embeddings.
  } else {
    TP_ASSIGN_OR_RETURN(WeightMatrix out_m, Matrix(*out));
    TP_ASSIGN_OR_RETURN(
        lm_head_, backend_->UploadWeights(
                      RowSlice(out_m, plan_.vocab_begin, plan_.vocab_size)));
  }
  TP_ASSIGN_OR_RETURN(const TensorView* norm,
                      Need(model, "output_norm.weight"));
  TP_ASSIGN_OR_RETURN(output_norm_, UploadVector(*norm));

  layers_.resize(c.n_layers);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = absl::StrCat("blk.", i, ".");
    Layer& l = layers_[i];
    TP_ASSIGN_OR_RETURN(const TensorView* an,
                        Need(model, p + "attn_norm.weight"));
    TP_ASSIGN_OR_RETURN(l.attn_norm, UploadVector(*an));
    TP_ASSIGN_OR_RETURN(const TensorView* fn,
                        Need(model, p + "ffn_norm.weight"));
    TP_ASSIGN_OR_RETURN(l.ffn_norm, UploadVector(*fn));
    auto rows = [&](const char* name, int64_t begin,
                    int64_t count) -> absl::StatusOr<WeightMatrix> {
      TP_ASSIGN_OR_RETURN(const TensorView* t, Need(model, p + name));
      TP_ASSIGN_OR_RETURN(WeightMatrix m, Matrix(*t));
      return backend_->UploadWeights(RowSlice(m, begin, count));
    };
    auto cols = [&](const char* name, int64_t begin,
                    int64_t count) -> absl::StatusOr<WeightMatrix> {
      TP_ASSIGN_OR_RETURN(const TensorView* t, Need(model, p + name));
      TP_ASSIGN_OR_RETURN(WeightMatrix m, Matrix(*t));
      TP_ASSIGN_OR_RETURN(WeightMatrix slice, ColSlice(m, begin, count));
      return backend_->UploadWeights(slice);
    };
    // Column-parallel: this rank's heads / FFN columns are output rows.
    TP_ASSIGN_OR_RETURN(l.q, rows("attn_q.weight", plan_.q_head_begin * hd,
                                  plan_.q_heads * hd));
    TP_ASSIGN_OR_RETURN(l.k, rows("attn_k.weight", plan_.kv_head_begin * hd,
                                  plan_.kv_heads * hd));
    TP_ASSIGN_OR_RETURN(l.v, rows("attn_v.weight", plan_.kv_head_begin * hd,
                                  plan_.kv_heads * hd));
    TP_ASSIGN_OR_RETURN(
        l.gate, rows("ffn_gate.weight", plan_.ffn_begin, plan_.ffn_size));
    TP_ASSIGN_OR_RETURN(l.up,
                        rows("ffn_up.weight", plan_.ffn_begin, plan_.ffn_size));
    // Row-parallel: this rank's inputs; partial sums are all-reduced.
    TP_ASSIGN_OR_RETURN(l.o, cols("attn_output.weight", plan_.q_head_begin * hd,
                                  plan_.q_heads * hd));
    TP_ASSIGN_OR_RETURN(
        l.down, cols("ffn_down.weight", plan_.ffn_begin, plan_.ffn_size));
    if (c.qkv_bias) {
      // Sliced with their matrices' rows (this rank's heads).
      auto bias = [&](const char* name, int64_t begin,
                      int64_t count) -> absl::StatusOr<float*> {
        TP_ASSIGN_OR_RETURN(const TensorView* t, Need(model, p + name));
        return UploadVector(*t, begin, count);
      };
      TP_ASSIGN_OR_RETURN(l.q_bias, bias("attn_q.bias", plan_.q_head_begin * hd,
                                         plan_.q_heads * hd));
      TP_ASSIGN_OR_RETURN(
          l.k_bias,
          bias("attn_k.bias", plan_.kv_head_begin * hd, plan_.kv_heads * hd));
      TP_ASSIGN_OR_RETURN(
          l.v_bias,
          bias("attn_v.bias", plan_.kv_head_begin * hd, plan_.kv_heads * hd));
    }
    if (c.qk_norm) {
      // One head_dim vector shared by every head: replicated.
      TP_ASSIGN_OR_RETURN(const TensorView* qn,
                          Need(model, p + "attn_q_norm.weight"));
      TP_ASSIGN_OR_RETURN(l.q_norm, UploadVector(*qn));
      TP_ASSIGN_OR_RETURN(const TensorView* kn,
                          Need(model, p + "attn_k_norm.weight"));
      TP_ASSIGN_OR_RETURN(l.k_norm, UploadVector(*kn));
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

absl::Status LlamaShard::EnsureScratch(int64_t n_tokens, int64_t n_logits) {
  if (n_tokens <= scratch_tokens_ && n_logits <= scratch_logits_) {
    return absl::OkStatus();
  }
  n_tokens = std::max(n_tokens, scratch_tokens_);
  n_logits = std::max(n_logits, scratch_logits_);
  for (float* p :
       {x_, h_, q_, k_, v_, attn_, proj_, gate_, up_, last_, local_logits_}) {
    if (p == nullptr) continue;
    backend_->Free(p);
    owned_.erase(std::find(owned_.begin(), owned_.end(), p));
  }
  const int64_t hidden = config_.hidden_size, hd = config_.head_dim;
  auto alloc = [&](int64_t floats, float** out) -> absl::Status {
    TP_ASSIGN_OR_RETURN(*out,
                        backend_->AllocFloats(static_cast<size_t>(floats)));
    owned_.push_back(*out);
    return absl::OkStatus();
  };
  TP_RETURN_IF_ERROR(alloc(n_tokens * hidden, &x_));
  TP_RETURN_IF_ERROR(alloc(n_tokens * hidden, &h_));
  TP_RETURN_IF_ERROR(alloc(n_tokens * plan_.q_heads * hd, &q_));
  TP_RETURN_IF_ERROR(alloc(n_tokens * plan_.kv_heads * hd, &k_));
  TP_RETURN_IF_ERROR(alloc(n_tokens * plan_.kv_heads * hd, &v_));
  TP_RETURN_IF_ERROR(alloc(n_tokens * plan_.q_heads * hd, &attn_));
  TP_RETURN_IF_ERROR(alloc(n_tokens * hidden, &proj_));
  TP_RETURN_IF_ERROR(alloc(n_tokens * plan_.ffn_size, &gate_));
  TP_RETURN_IF_ERROR(alloc(n_tokens * plan_.ffn_size, &up_));
  TP_RETURN_IF_ERROR(alloc(n_logits * hidden, &last_));
  TP_RETURN_IF_ERROR(alloc(n_logits * plan_.vocab_size, &local_logits_));
  scratch_tokens_ = n_tokens;
  scratch_logits_ = n_logits;
  return absl::OkStatus();
}

absl::Status LlamaShard::AllReduce(float* data, size_t count) {
  if (plan_.world == 1) return absl::OkStatus();
  return comm_->AllReduceSum(data, count);
}

absl::Status LlamaShard::Forward(const StepInput& in,
                                 std::vector<float>* logits) {
  const int64_t n = static_cast<int64_t>(in.tokens.size());
  const int64_t m = static_cast<int64_t>(in.logit_tokens.size());
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
  TP_RETURN_IF_ERROR(EnsureScratch(n, std::max<int64_t>(m, 1)));
  const ModelConfig& c = config_;
  const int64_t hidden = c.hidden_size, hd = c.head_dim;
  const float eps = static_cast<float>(c.rms_eps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  AttentionBatch batch;
  batch.n_tokens = n;
  batch.seq = in.seq;
  batch.pos = in.positions;
  batch.block_table = in.block_table;
  batch.block_offsets = in.block_offsets;
  batch.prompt_len = in.prompt_len;

  TP_RETURN_IF_ERROR(
      backend_->EmbeddingGather(token_embd_, plan_.vocab_begin, in.tokens, x_));
  TP_RETURN_IF_ERROR(AllReduce(x_, n * hidden));

  for (int64_t il = 0; il < c.n_layers; ++il) {
    const Layer& l = layers_[il];
    // Attention block.
    TP_RETURN_IF_ERROR(backend_->RmsNorm(x_, l.attn_norm, h_, n, hidden, eps));
    TP_RETURN_IF_ERROR(backend_->MatMul(l.q, h_, n, q_));
    TP_RETURN_IF_ERROR(backend_->MatMul(l.k, h_, n, k_));
    TP_RETURN_IF_ERROR(backend_->MatMul(l.v, h_, n, v_));
    const int64_t q_cols = plan_.q_heads * hd, kv_cols = plan_.kv_heads * hd;
    if (l.q_bias != nullptr) {
      TP_RETURN_IF_ERROR(backend_->AddBias(q_, l.q_bias, n, q_cols));
      TP_RETURN_IF_ERROR(backend_->AddBias(k_, l.k_bias, n, kv_cols));
      TP_RETURN_IF_ERROR(backend_->AddBias(v_, l.v_bias, n, kv_cols));
    }
    if (l.q_norm != nullptr) {
      // Each head's vector is a row of head_dim.
      TP_RETURN_IF_ERROR(
          backend_->RmsNorm(q_, l.q_norm, q_, n * plan_.q_heads, hd, eps));
      TP_RETURN_IF_ERROR(
          backend_->RmsNorm(k_, l.k_norm, k_, n * plan_.kv_heads, hd, eps));
    }
    TP_RETURN_IF_ERROR(
        backend_->Rope(q_, n, plan_.q_heads, in.positions, rope_));
    TP_RETURN_IF_ERROR(
        backend_->Rope(k_, n, plan_.kv_heads, in.positions, rope_));
    TP_RETURN_IF_ERROR(backend_->Attention(batch, kv_, k_cache_, v_cache_, il,
                                           q_, k_, v_, plan_.q_heads, scale,
                                           attn_));
    TP_RETURN_IF_ERROR(backend_->MatMul(l.o, attn_, n, proj_));
    TP_RETURN_IF_ERROR(AllReduce(proj_, n * hidden));
    TP_RETURN_IF_ERROR(backend_->Add(x_, proj_, n * hidden));
    // Feed-forward block.
    TP_RETURN_IF_ERROR(backend_->RmsNorm(x_, l.ffn_norm, h_, n, hidden, eps));
    TP_RETURN_IF_ERROR(backend_->MatMul(l.gate, h_, n, gate_));
    TP_RETURN_IF_ERROR(backend_->MatMul(l.up, h_, n, up_));
    TP_RETURN_IF_ERROR(backend_->SiluMul(gate_, up_, n * plan_.ffn_size));
    TP_RETURN_IF_ERROR(backend_->MatMul(l.down, gate_, n, proj_));
    TP_RETURN_IF_ERROR(AllReduce(proj_, n * hidden));
    TP_RETURN_IF_ERROR(backend_->Add(x_, proj_, n * hidden));
  }

  logits->clear();
  if (m == 0) return backend_->Synchronize();
  // Only the rows whose next token is wanted go through the lm_head.
  host_logits_.resize(static_cast<size_t>(n) * hidden);
  TP_RETURN_IF_ERROR(backend_->CopyToHost(x_, host_logits_.data(), n * hidden));
  host_rows_.resize(static_cast<size_t>(m) * hidden);
  for (int64_t i = 0; i < m; ++i) {
    std::memcpy(&host_rows_[i * hidden],
                &host_logits_[in.logit_tokens[i] * hidden],
                hidden * sizeof(float));
  }
  TP_RETURN_IF_ERROR(
      backend_->CopyFromHost(host_rows_.data(), last_, m * hidden));
  TP_RETURN_IF_ERROR(
      backend_->RmsNorm(last_, output_norm_, last_, m, hidden, eps));
  TP_RETURN_IF_ERROR(backend_->MatMul(lm_head_, last_, m, local_logits_));
  const size_t local = static_cast<size_t>(m) * plan_.vocab_size;
  host_logits_.resize(local);
  TP_RETURN_IF_ERROR(
      backend_->CopyToHost(local_logits_, host_logits_.data(), local));
  if (plan_.world == 1) {
    logits->assign(host_logits_.begin(), host_logits_.end());
    return absl::OkStatus();
  }
  // Gather every rank's vocabulary slice, then interleave into rows.
  std::vector<size_t> counts(plan_.world);
  std::vector<int64_t> begins(plan_.world);
  const int64_t base = c.vocab_size / plan_.world,
                extra = c.vocab_size % plan_.world;
  for (int r = 0; r < plan_.world; ++r) {
    const int64_t size = base + (r < extra ? 1 : 0);
    begins[r] = r * base + std::min<int64_t>(r, extra);
    counts[r] = static_cast<size_t>(m) * size;
  }
  gathered_.resize(static_cast<size_t>(m) * c.vocab_size);
  TP_RETURN_IF_ERROR(
      comm_->AllGatherV(host_logits_.data(), counts, gathered_.data()));
  if (plan_.rank != 0) return absl::OkStatus();
  logits->resize(static_cast<size_t>(m) * c.vocab_size);
  size_t offset = 0;
  for (int r = 0; r < plan_.world; ++r) {
    const int64_t size = counts[r] / m;
    for (int64_t i = 0; i < m; ++i) {
      std::memcpy(&(*logits)[i * c.vocab_size + begins[r]],
                  &gathered_[offset + i * size], size * sizeof(float));
    }
    offset += counts[r];
  }
  return absl::OkStatus();
}

}  // namespace tpserve
