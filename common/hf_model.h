// Reader for Hugging Face Llama model folders:
//   config.json                      LlamaForCausalLM hyper-parameters
//   model.safetensors                the weights, in one file, or
//   model.safetensors.index.json     {"weight_map": {tensor: shard file}}
//     + the shard files it names     (model-00001-of-0000N.safetensors ...)
// producing the same ModelWeights view as a GGUF (common/model_weights.h):
// tensors renamed to llama.cpp's GGUF names, dims reversed to ggml order,
// and rope_style = kNeox because HF keeps Q/K rows in rotate-half order.
//
// Every file is untrusted: config.json and the index are parsed with bounded
// JSON (common/json_util.h), errors name the file and field, shard names
// must be plain file names inside the folder (no '/', no '..'), and the
// index must agree with the shards' contents.
#ifndef TPSERVE_COMMON_HF_MODEL_H_
#define TPSERVE_COMMON_HF_MODEL_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model_config.h"
#include "common/model_weights.h"

namespace tpserve {

inline constexpr char kHfConfigFile[] = "config.json";
inline constexpr char kHfSingleWeightsFile[] = "model.safetensors";
inline constexpr char kHfIndexFile[] = "model.safetensors.index.json";

// Reads config.json text of a Llama model (model_type "llama" /
// LlamaForCausalLM) and validates it with ValidateConfig. Absent optional
// keys take transformers' LlamaConfig defaults (num_key_value_heads = heads,
// rms_norm_eps 1e-6, rope_theta 10000, max_position_embeddings 2048,
// tie_word_embeddings false); absent or null bos/eos ids become -1.
// rope_scaling may be absent, null, "default" or "llama3" (also read from
// transformers v5's "rope_parameters"); other types are Unimplemented, as
// are attention/MLP biases and activations other than silu. The name is
// "_name_or_path" when set; weight_type is left for the weights to decide.
absl::StatusOr<ModelConfig> ConfigFromHfJson(absl::string_view json_text);

// Reads model.safetensors.index.json text: tensor name -> shard file name.
// Every shard name must be a plain file name ending in ".safetensors"
// (no '/', '\', NUL, and not "." or ".."), so it stays inside the folder.
absl::StatusOr<std::map<std::string, std::string>> ParseSafetensorsIndex(
    absl::string_view json_text);

// The canonical (GGUF) name of a Hugging Face Llama tensor name, "" for a
// tensor that is ignored on purpose (the rotary inv_freq buffer older
// checkpoints carry), or InvalidArgument for a name tpserve does not know
// (biases, other architectures' weights): silently dropping a weight would
// compute the wrong thing.
absl::StatusOr<std::string> CanonicalTensorName(absl::string_view hf_name);

// The Hugging Face name of a canonical tensor name, or "" if none.
std::string HfTensorName(absl::string_view canonical_name);

// Opens a model folder. Prefers model.safetensors, as transformers does,
// and otherwise the shards model.safetensors.index.json lists. With tied
// embeddings a stored lm_head.weight is ignored (transformers ignores it).
absl::StatusOr<std::unique_ptr<ModelWeights>> OpenHfModel(
    const std::string& folder);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_HF_MODEL_H_
