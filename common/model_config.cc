#include "common/model_config.h"

#include <cmath>
#include <functional>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace tpserve {
namespace {

absl::Status Invalid(absl::string_view field, int64_t value,
                     absl::string_view rule) {
  return absl::InvalidArgumentError(
      absl::StrCat("model config: ", field, " = ", value, " ", rule));
}

absl::Status CheckRange(absl::string_view field, int64_t value, int64_t lo,
                        int64_t hi) {
  if (value < lo || value > hi) {
    return Invalid(field, value,
                   absl::StrCat("is outside [", lo, ", ", hi, "]"));
  }
  return absl::OkStatus();
}

// Reads an optional integer key; absent keys keep `fallback`.
absl::StatusOr<int64_t> OptionalInt(const GgufFile& gguf, absl::string_view key,
                                    int64_t fallback) {
  if (gguf.FindKey(key) == nullptr) return fallback;
  return gguf.GetInt(key);
}

absl::StatusOr<double> OptionalFloat(const GgufFile& gguf,
                                     absl::string_view key, double fallback) {
  if (gguf.FindKey(key) == nullptr) return fallback;
  return gguf.GetFloat(key);
}

absl::Status ExpectTensor(
    const TensorDimsLookup& dims_of,
    const std::function<std::string(const std::string&)>& describe,
    const std::string& name, std::vector<uint64_t> dims) {
  const std::vector<uint64_t>* have = dims_of(name);
  const std::string shown =
      describe ? describe(name) : absl::StrCat("'", name, "'");
  if (have == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("model: tensor ", shown, " is missing"));
  }
  if (*have != dims) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model: tensor ", shown, " has shape [", absl::StrJoin(*have, ", "),
        "], expected [", absl::StrJoin(dims, ", "), "]"));
  }
  return absl::OkStatus();
}

}  // namespace

int64_t ModelConfig::ParameterCount() const {
  const int64_t q = n_heads * head_dim, kv = n_kv_heads * head_dim;
  const int64_t per_layer = 2 * hidden_size                         // two norms
                            + hidden_size * (q + 2 * kv)            // q, k, v
                            + q * hidden_size                       // output
                            + 3 * hidden_size * intermediate_size;  // MLP
  const int64_t embed = vocab_size * hidden_size;
  return n_layers * per_layer + hidden_size + embed * (tied_embeddings ? 1 : 2);
}

absl::Status ValidateConfig(const ModelConfig& c) {
  TP_RETURN_IF_ERROR(CheckRange("vocab_size", c.vocab_size, 1, 1 << 22));
  TP_RETURN_IF_ERROR(CheckRange("hidden_size", c.hidden_size, 1, 1 << 16));
  TP_RETURN_IF_ERROR(
      CheckRange("intermediate_size", c.intermediate_size, 1, 1 << 20));
  TP_RETURN_IF_ERROR(CheckRange("n_layers", c.n_layers, 1, 1024));
  TP_RETURN_IF_ERROR(CheckRange("n_heads", c.n_heads, 1, 1024));
  TP_RETURN_IF_ERROR(CheckRange("n_kv_heads", c.n_kv_heads, 1, c.n_heads));
  TP_RETURN_IF_ERROR(CheckRange("head_dim", c.head_dim, 2, 1024));
  TP_RETURN_IF_ERROR(CheckRange("rope_dim", c.rope_dim, 2, c.head_dim));
  TP_RETURN_IF_ERROR(CheckRange("max_positions", c.max_positions, 1, 1 << 24));
  if (c.n_heads % c.n_kv_heads != 0) {
    return Invalid(
        "n_heads", c.n_heads,
        absl::StrCat("is not a multiple of n_kv_heads = ", c.n_kv_heads));
  }
  if (c.head_dim % 2 != 0 || c.rope_dim % 2 != 0) {
    return Invalid("head_dim", c.head_dim, "and rope_dim must be even");
  }
  if (!(std::isfinite(c.rms_eps) && c.rms_eps > 0 && c.rms_eps < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model config: rms_eps = ", c.rms_eps,
                     " must be a finite number in (0, 1)"));
  }
  if (!(std::isfinite(c.rope_theta) && c.rope_theta > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model config: rope_theta = ", c.rope_theta, " must be positive"));
  }
  for (int64_t id : {c.bos_token_id, c.eos_token_id}) {
    if (id < -1 || id >= c.vocab_size) {
      return Invalid("bos/eos token id", id, "is outside the vocabulary");
    }
  }
  for (int64_t id : c.eos_token_ids) {
    if (id < 0 || id >= c.vocab_size) {
      return Invalid("eos_token_ids entry", id, "is outside the vocabulary");
    }
  }
  if (c.rope_scaling.type == RopeScalingType::kLlama3) {
    // The llama3 formula divides by (high - low) and by the factor.
    const RopeScaling& r = c.rope_scaling;
    if (!(std::isfinite(r.factor) && r.factor >= 1 && r.factor <= 1024 &&
          std::isfinite(r.low_freq_factor) && r.low_freq_factor > 0 &&
          std::isfinite(r.high_freq_factor) &&
          r.high_freq_factor > r.low_freq_factor)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model config: llama3 rope_scaling needs 1 <= factor <= 1024 and 0 "
          "< low_freq_factor < high_freq_factor (have factor = ",
          r.factor, ", low_freq_factor = ", r.low_freq_factor,
          ", high_freq_factor = ", r.high_freq_factor, ")"));
    }
    TP_RETURN_IF_ERROR(CheckRange("rope_scaling.original_max_positions",
                                  r.original_max_positions, 1, 1 << 24));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ConfigFromGguf(const GgufFile& gguf) {
  ModelConfig c;
  TP_ASSIGN_OR_RETURN(absl::string_view arch,
                      gguf.GetString("general.architecture"));
  if (arch != "llama") {
    return absl::InvalidArgumentError(absl::StrCat(
        "model: architecture '", arch,
        "' is not supported (tpserve serves Llama-family models: 'llama')"));
  }
  c.architecture = std::string(arch);
  if (gguf.FindKey("general.name") != nullptr) {
    TP_ASSIGN_OR_RETURN(absl::string_view name, gguf.GetString("general.name"));
    c.name = std::string(name);
  }
  const std::string p = c.architecture + ".";
  TP_ASSIGN_OR_RETURN(c.hidden_size, gguf.GetInt(p + "embedding_length"));
  TP_ASSIGN_OR_RETURN(c.n_layers, gguf.GetInt(p + "block_count"));
  TP_ASSIGN_OR_RETURN(c.intermediate_size,
                      gguf.GetInt(p + "feed_forward_length"));
  TP_ASSIGN_OR_RETURN(c.n_heads, gguf.GetInt(p + "attention.head_count"));
  TP_ASSIGN_OR_RETURN(
      c.n_kv_heads,
      OptionalInt(gguf, p + "attention.head_count_kv", c.n_heads));
  TP_ASSIGN_OR_RETURN(c.max_positions, gguf.GetInt(p + "context_length"));
  TP_ASSIGN_OR_RETURN(c.rms_eps,
                      gguf.GetFloat(p + "attention.layer_norm_rms_epsilon"));
  TP_ASSIGN_OR_RETURN(c.rope_theta,
                      OptionalFloat(gguf, p + "rope.freq_base", 10000.0));
  if (c.n_heads <= 0 || c.hidden_size <= 0 || c.hidden_size % c.n_heads != 0) {
    return Invalid("hidden_size", c.hidden_size,
                   absl::StrCat("is not a multiple of n_heads = ", c.n_heads));
  }
  TP_ASSIGN_OR_RETURN(c.head_dim, OptionalInt(gguf, p + "attention.key_length",
                                              c.hidden_size / c.n_heads));
  TP_ASSIGN_OR_RETURN(
      c.rope_dim, OptionalInt(gguf, p + "rope.dimension_count", c.head_dim));
  TP_ASSIGN_OR_RETURN(c.bos_token_id,
                      OptionalInt(gguf, "tokenizer.ggml.bos_token_id", -1));
  TP_ASSIGN_OR_RETURN(c.eos_token_id,
                      OptionalInt(gguf, "tokenizer.ggml.eos_token_id", -1));
  if (c.eos_token_id >= 0) c.eos_token_ids = {c.eos_token_id};

  const GgufTensor* embd = gguf.FindTensor("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2) {
    return absl::InvalidArgumentError(
        "model: tensor 'token_embd.weight' is missing or not 2-D");
  }
  c.vocab_size = static_cast<int64_t>(embd->dims[1]);
  c.tied_embeddings = gguf.FindTensor("output.weight") == nullptr;
  TP_RETURN_IF_ERROR(ValidateConfig(c));
  TP_RETURN_IF_ERROR(CheckLlamaTensorShapes(
      c, [&gguf](const std::string& name) -> const std::vector<uint64_t>* {
        const GgufTensor* t = gguf.FindTensor(name);
        return t == nullptr ? nullptr : &t->dims;
      }));
  // The dominant matmul weight type, by bytes, over the layer weights.
  std::map<GgmlType, uint64_t> bytes_by_type;
  for (const GgufTensor& t : gguf.tensors()) {
    if (t.dims.size() == 2 && t.name.rfind("blk.", 0) == 0) {
      bytes_by_type[t.type] += t.n_bytes;
    }
  }
  uint64_t best = 0;
  for (const auto& [type, bytes] : bytes_by_type) {
    if (bytes > best) best = bytes, c.weight_type = type;
  }
  return c;
}

absl::Status CheckLlamaTensorShapes(
    const ModelConfig& c, const TensorDimsLookup& dims_of,
    const std::function<std::string(const std::string&)>& describe) {
  auto expect = [&](const std::string& name, std::vector<uint64_t> dims) {
    return ExpectTensor(dims_of, describe, name, std::move(dims));
  };
  // Every tensor of the forward pass, with the shape the engine assumes
  // (ggml order: input dimension first).
  const uint64_t h = c.hidden_size, v = c.vocab_size, f = c.intermediate_size;
  const uint64_t q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  TP_RETURN_IF_ERROR(expect("token_embd.weight", {h, v}));
  TP_RETURN_IF_ERROR(expect("output_norm.weight", {h}));
  if (!c.tied_embeddings) {
    TP_RETURN_IF_ERROR(expect("output.weight", {h, v}));
  }
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string b = absl::StrCat("blk.", i, ".");
    TP_RETURN_IF_ERROR(expect(b + "attn_norm.weight", {h}));
    TP_RETURN_IF_ERROR(expect(b + "attn_q.weight", {h, q}));
    TP_RETURN_IF_ERROR(expect(b + "attn_k.weight", {h, kv}));
    TP_RETURN_IF_ERROR(expect(b + "attn_v.weight", {h, kv}));
    TP_RETURN_IF_ERROR(expect(b + "attn_output.weight", {q, h}));
    TP_RETURN_IF_ERROR(expect(b + "ffn_norm.weight", {h}));
    TP_RETURN_IF_ERROR(expect(b + "ffn_gate.weight", {h, f}));
    TP_RETURN_IF_ERROR(expect(b + "ffn_up.weight", {h, f}));
    TP_RETURN_IF_ERROR(expect(b + "ffn_down.weight", {f, h}));
  }
  return absl::OkStatus();
}

}  // namespace tpserve
