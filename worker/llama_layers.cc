// The parts of LlamaShard::Forward, one function per part of the model
// (see the header comment of worker/llama_shard.h for the equations). Each
// part reads and writes the step's Activations; the op order is fixed (the
// golden tests compare with llama.cpp bit for bit), so reorder nothing here
// without rerunning them.
//
// Tensor parallelism (Megatron-style): column-parallel matmuls (Q, K, V,
// gate, up) produce this rank's heads or FFN columns; the row-parallel ones
// (output projection, down) produce partial sums of the whole hidden
// vector, which AllReduce completes before the residual add. So act_.x is
// the same on every rank between parts.
#include <cmath>
#include <cstring>

#include "common/status_macros.h"
#include "worker/llama_shard.h"

namespace tpserve {

absl::Status LlamaShard::Embed(absl::Span<const int32_t> tokens) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  // Each rank fills the rows of its vocabulary slice (zeros elsewhere); the
  // all-reduce completes every row.
  TP_RETURN_IF_ERROR(backend_->EmbeddingGather(token_embd_, plan_.vocab_begin,
                                               tokens, act_.x));
  return AllReduce(act_.x, n * config_.hidden_size);
}

absl::Status LlamaShard::AttentionBlock(int64_t il,
                                        const AttentionBatch& batch) {
  const Layer& l = layers_[il];
  const int64_t n = batch.n_tokens;
  const int64_t hidden = config_.hidden_size, hd = config_.head_dim;
  const int64_t q_cols = plan_.q_heads * hd, kv_cols = plan_.kv_heads * hd;
  const float eps = static_cast<float>(config_.rms_eps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  Activations& a = act_;
  TP_RETURN_IF_ERROR(backend_->RmsNorm(a.x, l.attn_norm, a.h, n, hidden, eps));
  TP_RETURN_IF_ERROR(backend_->MatMul(l.q, a.h, n, a.q));
  TP_RETURN_IF_ERROR(backend_->MatMul(l.k, a.h, n, a.k));
  TP_RETURN_IF_ERROR(backend_->MatMul(l.v, a.h, n, a.v));
  if (l.q_bias != nullptr) {  // Qwen2.
    TP_RETURN_IF_ERROR(backend_->AddBias(a.q, l.q_bias, n, q_cols));
    TP_RETURN_IF_ERROR(backend_->AddBias(a.k, l.k_bias, n, kv_cols));
    TP_RETURN_IF_ERROR(backend_->AddBias(a.v, l.v_bias, n, kv_cols));
  }
  if (l.q_norm != nullptr) {  // Qwen3: each head's vector is a row.
    TP_RETURN_IF_ERROR(
        backend_->RmsNorm(a.q, l.q_norm, a.q, n * plan_.q_heads, hd, eps));
    TP_RETURN_IF_ERROR(
        backend_->RmsNorm(a.k, l.k_norm, a.k, n * plan_.kv_heads, hd, eps));
  }
  TP_RETURN_IF_ERROR(backend_->Rope(a.q, n, plan_.q_heads, batch.pos, rope_));
  TP_RETURN_IF_ERROR(backend_->Rope(a.k, n, plan_.kv_heads, batch.pos, rope_));
  // Writes this step's K and V into the cache, then attends over it.
  TP_RETURN_IF_ERROR(backend_->Attention(batch, kv_, k_cache_, v_cache_, il,
                                         a.q, a.k, a.v, plan_.q_heads, scale,
                                         a.attn));
  TP_RETURN_IF_ERROR(backend_->MatMul(l.o, a.attn, n, a.proj));
  TP_RETURN_IF_ERROR(AllReduce(a.proj, n * hidden));
  return backend_->Add(a.x, a.proj, n * hidden);
}

absl::Status LlamaShard::FeedForward(int64_t il, int64_t n) {
  const Layer& l = layers_[il];
  const int64_t hidden = config_.hidden_size;
  const float eps = static_cast<float>(config_.rms_eps);
  Activations& a = act_;
  TP_RETURN_IF_ERROR(backend_->RmsNorm(a.x, l.ffn_norm, a.h, n, hidden, eps));
  TP_RETURN_IF_ERROR(backend_->MatMul(l.gate, a.h, n, a.gate));
  TP_RETURN_IF_ERROR(backend_->MatMul(l.up, a.h, n, a.up));
  TP_RETURN_IF_ERROR(backend_->SiluMul(a.gate, a.up, n * plan_.ffn_size));
  TP_RETURN_IF_ERROR(backend_->MatMul(l.down, a.gate, n, a.proj));
  TP_RETURN_IF_ERROR(AllReduce(a.proj, n * hidden));
  return backend_->Add(a.x, a.proj, n * hidden);
}

absl::Status LlamaShard::LmHead(absl::Span<const int32_t> rows) {
  const int64_t m = static_cast<int64_t>(rows.size());
  const int64_t hidden = config_.hidden_size;
  const float eps = static_cast<float>(config_.rms_eps);
  // Only the rows whose next token is wanted go through the final norm and
  // the LM head; they are picked on the backend (rows < n: CheckStep).
  TP_RETURN_IF_ERROR(backend_->GatherRows(act_.x, hidden, rows, act_.last));
  TP_RETURN_IF_ERROR(
      backend_->RmsNorm(act_.last, output_norm_, act_.last, m, hidden, eps));
  return backend_->MatMul(lm_head_, act_.last, m, act_.logits);
}

absl::Status LlamaShard::GatherLogits(int64_t m, std::vector<float>* logits) {
  const int64_t vocab = config_.vocab_size;
  const size_t local = static_cast<size_t>(m) * plan_.vocab_size;
  host_logits_.resize(local);
  // Waits for the step (the copy to host synchronizes).
  TP_RETURN_IF_ERROR(
      backend_->CopyToHost(act_.logits, host_logits_.data(), local));
  if (plan_.world == 1) {
    logits->assign(host_logits_.begin(), host_logits_.end());
    return absl::OkStatus();
  }
  // Every rank's [m, its vocab slice] block, in rank order, then
  // interleaved into whole rows on rank 0. The slices are the plan's.
  std::vector<size_t> counts(plan_.world);
  std::vector<VocabSlice> slices(plan_.world);
  for (int r = 0; r < plan_.world; ++r) {
    slices[r] = RankVocab(vocab, plan_.world, r);
    counts[r] = static_cast<size_t>(m) * slices[r].size;
  }
  gathered_.resize(static_cast<size_t>(m) * vocab);
  TP_RETURN_IF_ERROR(
      comm_->AllGatherV(host_logits_.data(), counts, gathered_.data()));
  if (plan_.rank != 0) return absl::OkStatus();
  logits->resize(static_cast<size_t>(m) * vocab);
  size_t offset = 0;
  for (int r = 0; r < plan_.world; ++r) {
    const int64_t size = slices[r].size;
    for (int64_t i = 0; i < m; ++i) {
      std::memcpy(&(*logits)[i * vocab + slices[r].begin],
                  &gathered_[offset + i * size], size * sizeof(float));
    }
    offset += counts[r];
  }
  return absl::OkStatus();
}

}  // namespace tpserve
