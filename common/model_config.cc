#include "common/model_config.h"

#include <cmath>
#include <cstring>
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

// The RoPE keys of a GGUF file, read as llama.cpp reads them
// (llama_model::load_hparams and llama_context's YaRN set-up):
// rope.scaling.type (default "linear": a factor alone means linear),
// rope.scaling.factor (or the older rope.scale_linear), attn_factor,
// original_context_length (default: the context length), YaRN's betas
// (llama.cpp's defaults 32 and 1), and the frequency factors of
// rope_freqs.weight.
absl::Status ReadGgufRope(const GgufFile& gguf, const std::string& p,
                          ModelConfig& c) {
  std::string type = "linear";
  if (gguf.FindKey(p + "rope.scaling.type") != nullptr) {
    TP_ASSIGN_OR_RETURN(absl::string_view t,
                        gguf.GetString(p + "rope.scaling.type"));
    type = std::string(t);
  }
  double factor = 0;
  if (gguf.FindKey(p + "rope.scaling.factor") != nullptr) {
    TP_ASSIGN_OR_RETURN(factor, gguf.GetFloat(p + "rope.scaling.factor"));
  } else {
    TP_ASSIGN_OR_RETURN(factor,
                        OptionalFloat(gguf, p + "rope.scale_linear", 0));
  }
  RopeScaling& r = c.rope_scaling;
  TP_ASSIGN_OR_RETURN(r.attn_factor,
                      OptionalFloat(gguf, p + "rope.scaling.attn_factor", 1.0));
  TP_ASSIGN_OR_RETURN(
      r.original_max_positions,
      OptionalInt(gguf, p + "rope.scaling.original_context_length",
                  c.max_positions));
  TP_ASSIGN_OR_RETURN(
      r.beta_fast, OptionalFloat(gguf, p + "rope.scaling.yarn_beta_fast", 32));
  TP_ASSIGN_OR_RETURN(
      r.beta_slow, OptionalFloat(gguf, p + "rope.scaling.yarn_beta_slow", 1));
  TP_ASSIGN_OR_RETURN(
      double log_mul,
      OptionalFloat(gguf, p + "rope.scaling.yarn_log_multiplier", 0));
  if (type == "none") {
    r.type = RopeScalingType::kNone;
  } else if (type == "linear") {
    r.type = factor == 0 || factor == 1 ? RopeScalingType::kNone
                                        : RopeScalingType::kLinear;
  } else if (type == "yarn") {
    r.type = RopeScalingType::kYarn;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "model: ", p, "rope.scaling.type '", type,
        "' is not supported (tpserve implements none, linear and yarn)"));
  }
  if (log_mul != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model: ", p,
        "rope.scaling.yarn_log_multiplier is set (DeepSeek-V2 YaRN); tpserve "
        "implements plain YaRN only"));
  }
  r.factor = factor == 0 ? 1.0 : factor;
  if (r.type == RopeScalingType::kYarn) {
    // llama_context: get_mscale(factor) / (1 + 0.1 ln factor), in float
    // (ggml's rope multiplies the second factor back in).
    const float f = static_cast<float>(r.factor);
    float attn = f <= 1.0f ? 1.0f : std::fma(0.1f, std::log(f), 1.0f);
    attn *= 1.0f / std::fma(0.1f, std::log(f), 1.0f);
    r.attn_factor = attn * static_cast<float>(r.attn_factor);
  }

  const GgufTensor* freqs = gguf.FindTensor("rope_freqs.weight");
  if (freqs != nullptr) {
    const uint64_t want = static_cast<uint64_t>(c.rope_dim / 2);
    if (freqs->type != GgmlType::kF32 || freqs->dims.size() != 1 ||
        freqs->dims[0] != want) {
      return absl::InvalidArgumentError(
          absl::StrCat("model: tensor 'rope_freqs.weight' must be F32 [", want,
                       "] (rope_dim / 2), has ", GetGgmlType(freqs->type).name,
                       " [", absl::StrJoin(freqs->dims, ", "), "]"));
    }
    c.rope_freq_factors.resize(want);
    std::memcpy(c.rope_freq_factors.data(), freqs->data, want * sizeof(float));
  }
  return absl::OkStatus();
}

// Mistral-style files may name a sliding attention window. Within the
// window, sliding-window attention is plain causal attention, so a window
// shorter than the context caps the context at the window: the engine then
// computes exactly what the model defines and refuses longer prompts.
absl::Status ApplySlidingWindow(const GgufFile& gguf, const std::string& p,
                                ModelConfig& c) {
  TP_ASSIGN_OR_RETURN(int64_t window,
                      OptionalInt(gguf, p + "attention.sliding_window", 0));
  if (window < 0) {
    return Invalid("attention.sliding_window", window, "is negative");
  }
  if (window > 0 && window < c.max_positions) c.max_positions = window;
  return absl::OkStatus();
}

}  // namespace

std::vector<float> Llama3RopeFactors(double theta, int64_t rope_dim,
                                     double factor, double low_freq_factor,
                                     double high_freq_factor,
                                     int64_t original_max_positions) {
  const double kPi = 3.14159265358979323846;
  const double orig = static_cast<double>(original_max_positions);
  const double low_wavelen = orig / low_freq_factor;
  const double high_wavelen = orig / high_freq_factor;
  std::vector<float> factors(static_cast<size_t>(rope_dim / 2));
  for (int64_t i = 0; i < rope_dim / 2; ++i) {
    // The converter's base frequencies are float32 (torch.arange float32).
    const float freq = static_cast<float>(
        1.0 / std::pow(theta, static_cast<double>(2 * i) / rope_dim));
    const double wavelen = 2 * kPi / freq;
    double f;
    if (wavelen < high_wavelen) {
      f = 1;
    } else if (wavelen > low_wavelen) {
      f = factor;
    } else {
      const double smooth = (orig / wavelen - low_freq_factor) /
                            (high_freq_factor - low_freq_factor);
      f = 1 / ((1 - smooth) / factor + smooth);
    }
    factors[i] = static_cast<float>(f);
  }
  return factors;
}

int64_t ModelConfig::ParameterCount() const {
  const int64_t q = n_heads * head_dim, kv = n_kv_heads * head_dim;
  const int64_t per_layer = 2 * hidden_size                        // two norms
                            + hidden_size * (q + 2 * kv)           // q, k, v
                            + q * hidden_size                      // output
                            + 3 * hidden_size * intermediate_size  // MLP
                            + (qkv_bias ? q + 2 * kv : 0) +
                            (qk_norm ? 2 * head_dim : 0);
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
  const RopeScaling& r = c.rope_scaling;
  if (r.type != RopeScalingType::kNone) {
    if (!(std::isfinite(r.factor) && r.factor > 0 && r.factor <= 1024)) {
      return absl::InvalidArgumentError(
          absl::StrCat("model config: rope scaling factor = ", r.factor,
                       " must be in (0, 1024]"));
    }
  }
  if (r.type == RopeScalingType::kYarn) {
    TP_RETURN_IF_ERROR(CheckRange("rope_scaling.original_max_positions",
                                  r.original_max_positions, 1, 1 << 24));
    if (!(std::isfinite(r.beta_fast) && std::isfinite(r.beta_slow) &&
          r.beta_fast > 0 && r.beta_slow > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("model config: YaRN beta_fast = ", r.beta_fast,
                       ", beta_slow = ", r.beta_slow, " must be positive"));
    }
  }
  if (!(std::isfinite(r.attn_factor) && r.attn_factor > 0 &&
        r.attn_factor < 100)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model config: rope attn_factor = ", r.attn_factor,
                     " must be in (0, 100)"));
  }
  if (!c.rope_freq_factors.empty()) {
    if (static_cast<int64_t>(c.rope_freq_factors.size()) != c.rope_dim / 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model config: ", c.rope_freq_factors.size(),
          " rope frequency factors, expected rope_dim / 2 = ", c.rope_dim / 2));
    }
    for (float f : c.rope_freq_factors) {
      if (!(std::isfinite(f) && f > 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("model config: rope frequency factor ", f,
                         " must be finite and positive"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ConfigFromGguf(const GgufFile& gguf) {
  ModelConfig c;
  TP_ASSIGN_OR_RETURN(absl::string_view arch,
                      gguf.GetString("general.architecture"));
  if (arch != "llama" && arch != "qwen2" && arch != "qwen3") {
    return absl::InvalidArgumentError(absl::StrCat(
        "model: architecture '", arch,
        "' is not supported (tpserve serves Llama-family models: 'llama', "
        "'qwen2', 'qwen3')"));
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
  // llama.cpp's rope types: llama rotates interleaved pairs (its converter
  // permutes Q/K rows for that), Qwen keeps Hugging Face's rotate_half.
  c.rope_style = arch == "llama" ? RopeStyle::kNormal : RopeStyle::kNeox;
  c.qkv_bias = arch == "qwen2";
  c.qk_norm = arch == "qwen3";
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
  TP_RETURN_IF_ERROR(ReadGgufRope(gguf, p, c));
  TP_RETURN_IF_ERROR(ApplySlidingWindow(gguf, p, c));

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
    if (c.qkv_bias) {
      TP_RETURN_IF_ERROR(expect(b + "attn_q.bias", {q}));
      TP_RETURN_IF_ERROR(expect(b + "attn_k.bias", {kv}));
      TP_RETURN_IF_ERROR(expect(b + "attn_v.bias", {kv}));
    }
    if (c.qk_norm) {
      const uint64_t hd = c.head_dim;
      TP_RETURN_IF_ERROR(expect(b + "attn_q_norm.weight", {hd}));
      TP_RETURN_IF_ERROR(expect(b + "attn_k_norm.weight", {hd}));
    }
    TP_RETURN_IF_ERROR(expect(b + "attn_output.weight", {q, h}));
    TP_RETURN_IF_ERROR(expect(b + "ffn_norm.weight", {h}));
    TP_RETURN_IF_ERROR(expect(b + "ffn_gate.weight", {h, f}));
    TP_RETURN_IF_ERROR(expect(b + "ffn_up.weight", {h, f}));
    TP_RETURN_IF_ERROR(expect(b + "ffn_down.weight", {f, h}));
  }
  return absl::OkStatus();
}

}  // namespace tpserve
