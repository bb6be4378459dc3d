// The model description every format reader produces, so the engine does not
// care whether weights came from GGUF or a Hugging Face folder.
#ifndef TPSERVE_COMMON_MODEL_CONFIG_H_
#define TPSERVE_COMMON_MODEL_CONFIG_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ggml_types.h"
#include "common/gguf.h"

namespace tpserve {

// How a model stretches RoPE beyond its training context, as its file says
// (GGUF {arch}.rope.scaling.*, Hugging Face rope_scaling). Llama 3's scaling
// is not a type here: it is ModelConfig::rope_freq_factors (GGUF files carry
// them as rope_freqs.weight; a Hugging Face "llama3" config is turned into
// them as llama.cpp's converter does).
enum class RopeScalingType { kNone, kLinear, kYarn };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;  // Context multiple: freq_scale = 1 / factor.
  // YaRN: the training context the correction dims refer to (0: the
  // model's max_positions).
  int64_t original_max_positions = 0;
  // The magnitude of cos and sin, as llama.cpp computes it for this file
  // (GGUF rope.scaling.attn_factor, and for YaRN the attention temperature
  // folded in so that ggml's rope_ext reproduces it).
  double attn_factor = 1.0;
  double beta_fast = 32.0;  // YaRN correction rotations.
  double beta_slow = 1.0;
};

// The Llama 3 frequency factors (one per rotated pair, what llama.cpp's
// converter writes as rope_freqs.weight): pair i of frequency
// f = theta^(-2i / rope_dim) with wavelength w = 2 pi / f gets 1 when w <
// orig / high, factor when w > orig / low, and 1 / ((1 - s) / factor + s),
// s = (orig / w - low) / (high - low), between.
std::vector<float> Llama3RopeFactors(double theta, int64_t rope_dim,
                                     double factor, double low_freq_factor,
                                     double high_freq_factor,
                                     int64_t original_max_positions);

// Which dimensions of a head RoPE rotates together. The same model's Q/K
// projection rows come in a different order in each format, so the engine
// must apply the style the weights were stored in:
//  - kNormal (ggml's "normal", GPT-J style): pairs (2i, 2i+1). llama.cpp's
//    converter permutes Hugging Face Q/K rows into this interleaved order,
//    so GGUF llama models use it.
//  - kNeox ("rotate_half", GPT-NeoX style): pairs (i, i + rope_dim/2). Hugging
//    Face checkpoints keep Q/K in this order and we read them unpermuted.
enum class RopeStyle { kNormal, kNeox };

// Hyper-parameters of a Llama-architecture decoder.
struct ModelConfig {
  std::string architecture;  // "llama", "qwen2" or "qwen3"
  std::string name;          // Human-readable, may be empty.
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t rope_dim = 0;  // Rotated dimensions per head (== head_dim here).
  int64_t max_positions = 0;
  double rms_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  // Empty, or rope_dim / 2 divisors of the base frequencies (GGUF
  // rope_freqs.weight; Llama 3.1+ scaling).
  std::vector<float> rope_freq_factors;
  // Qwen2: Q, K and V projections add a bias (blk.N.attn_{q,k,v}.bias).
  bool qkv_bias = false;
  // Qwen3: Q and K are RMS-normalized per head before RoPE
  // (blk.N.attn_{q,k}_norm.weight, head_dim each).
  bool qk_norm = false;
  RopeStyle rope_style = RopeStyle::kNormal;  // GGUF: kNormal, HF: kNeox.
  bool tied_embeddings = false;
  int64_t bos_token_id = -1;  // -1: none.
  int64_t eos_token_id = -1;
  // Every end-of-sequence id (HF configs may list several, e.g. Llama 3
  // Instruct's <|end_of_text|> and <|eot_id|>); eos_token_id is the first.
  // Empty when there is none.
  std::vector<int64_t> eos_token_ids;
  // The dominant weight type of the matmuls (for describe and TP checks).
  GgmlType weight_type = GgmlType::kF32;

  // Parameter count (embedding counted once when tied).
  int64_t ParameterCount() const;
};

// Checks ranges and divisibility every consumer relies on (heads divide the
// hidden size, KV heads divide the heads, sizes below sane caps).
absl::Status ValidateConfig(const ModelConfig& config);

// Reads and validates the config of a `general.architecture = llama` GGUF,
// including that every tensor the Llama forward pass needs is present with
// the expected shape.
absl::StatusOr<ModelConfig> ConfigFromGguf(const GgufFile& gguf);

// The dims (ggml order) of a tensor by canonical (GGUF) name; nullptr when
// the model has no such tensor.
using TensorDimsLookup =
    std::function<const std::vector<uint64_t>*(const std::string& name)>;

// Checks that every tensor of the Llama forward pass is present with the
// shape `config` implies (ggml order: input dimension first), whatever file
// format the tensors came from. `describe` renders a canonical name in
// errors (default: the name in quotes), e.g. to add the name in the file.
// `config` must have passed ValidateConfig (sizes are positive and small).
absl::Status CheckLlamaTensorShapes(
    const ModelConfig& config, const TensorDimsLookup& dims_of,
    const std::function<std::string(const std::string&)>& describe = nullptr);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_MODEL_CONFIG_H_
