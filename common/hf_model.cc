#include "common/hf_model.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/json_util.h"
#include "common/mapped_file.h"
#include "common/safetensors.h"
#include "common/status_macros.h"

namespace tpserve {
namespace {

using nlohmann::json;

// Bounds for the JSON files of a folder. Real config.json files are a few
// KiB; an index lists a few thousand tensors (~100 KiB).
constexpr uint64_t kMaxConfigBytes = 16ull << 20;
constexpr uint64_t kMaxIndexBytes = 64ull << 20;
constexpr size_t kMaxShards = 4096;

// Reads keys of one JSON object; `scope` prefixes key names in errors
// ("rope_scaling."). Absent and null keys are treated alike, as
// transformers does.
class Fields {
 public:
  Fields(const json& object, std::string scope)
      : object_(object), scope_(std::move(scope)) {}

  const json* Find(const char* key) const {
    auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }
  std::string Label(const char* key) const {
    return absl::StrCat("config.json: '", scope_, key, "'");
  }
  absl::Status Missing(const char* key) const {
    return absl::InvalidArgumentError(absl::StrCat(Label(key), " is missing"));
  }
  absl::StatusOr<int64_t> Int(const char* key) const {
    const json* v = Find(key);
    if (v == nullptr) return Missing(key);
    return JsonToInt(*v, Label(key));
  }
  absl::StatusOr<int64_t> Int(const char* key, int64_t fallback) const {
    const json* v = Find(key);
    return v == nullptr ? fallback : JsonToInt(*v, Label(key));
  }
  absl::StatusOr<double> Double(const char* key) const {
    const json* v = Find(key);
    if (v == nullptr) return Missing(key);
    return JsonToDouble(*v, Label(key));
  }
  absl::StatusOr<double> Double(const char* key, double fallback) const {
    const json* v = Find(key);
    return v == nullptr ? fallback : JsonToDouble(*v, Label(key));
  }
  absl::StatusOr<bool> Bool(const char* key, bool fallback) const {
    const json* v = Find(key);
    return v == nullptr ? fallback : JsonToBool(*v, Label(key));
  }
  absl::StatusOr<std::string> String(const char* key,
                                     std::string fallback) const {
    const json* v = Find(key);
    return v == nullptr ? fallback : JsonToString(*v, Label(key));
  }

 private:
  const json& object_;
  std::string scope_;
};

absl::Status Unsupported(absl::string_view what) {
  return absl::UnimplementedError(
      absl::StrCat("config.json: ", what, " is not supported"));
}

// The Hugging Face families tpserve runs, and the engine architecture each
// is. Mistral checkpoints are Llama's architecture under another name.
struct HfFamily {
  const char* model_type;
  const char* class_name;
  const char* architecture;
};
constexpr HfFamily kHfFamilies[] = {
    {"llama", "LlamaForCausalLM", "llama"},
    {"mistral", "MistralForCausalLM", "llama"},
    {"qwen2", "Qwen2ForCausalLM", "qwen2"},
    {"qwen3", "Qwen3ForCausalLM", "qwen3"},
};

// The engine architecture of the config's model_type / architectures.
absl::StatusOr<std::string> CheckArchitecture(const Fields& f) {
  TP_ASSIGN_OR_RETURN(std::string model_type, f.String("model_type", ""));
  std::vector<std::string> supported;
  for (const HfFamily& h : kHfFamilies) {
    supported.push_back(absl::StrCat(h.model_type, " (", h.class_name, ")"));
  }
  const HfFamily* family = nullptr;
  if (!model_type.empty()) {
    for (const HfFamily& h : kHfFamilies) {
      if (model_type == h.model_type) family = &h;
    }
    if (family == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json: model_type '", EscapeForMessage(model_type),
          "' is not supported (tpserve serves Llama-family models: ",
          absl::StrJoin(supported, ", "), ")"));
    }
  }
  const json* archs = f.Find("architectures");
  if (archs != nullptr) {
    if (!archs->is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat("config.json: 'architectures' is ", JsonTypeName(*archs),
                       ", expected an array of strings"));
    }
    std::vector<std::string> names;
    const HfFamily* by_class = nullptr;
    for (const json& a : *archs) {
      TP_ASSIGN_OR_RETURN(
          std::string name,
          JsonToString(a, "config.json: 'architectures' entry"));
      for (const HfFamily& h : kHfFamilies) {
        if (name == h.class_name &&
            (family == nullptr ||
             std::string(family->architecture) == h.architecture)) {
          by_class = &h;
        }
      }
      names.push_back(EscapeForMessage(name));
    }
    if (by_class == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json: architectures [", absl::StrJoin(names, ", "),
          "] do not include a supported class",
          family == nullptr
              ? ""
              : absl::StrCat(" for model_type '", family->model_type, "'"),
          " (", absl::StrJoin(supported, ", "), ")"));
    }
    if (family == nullptr) family = by_class;
  } else if (model_type.empty()) {
    return absl::InvalidArgumentError(
        "config.json: has neither 'model_type' nor 'architectures'; expected "
        "a Llama-family model (model_type 'llama')");
  }
  return std::string(family->architecture);
}

// rope_scaling (transformers v4) or rope_parameters (v5, which also holds
// rope_theta): default, linear, llama3 and yarn, as transformers'
// modeling_rope_utils computes them. `rope_dim` must be set.
absl::Status ReadRope(const Fields& top, ModelConfig& c) {
  TP_ASSIGN_OR_RETURN(c.rope_theta, top.Double("rope_theta", 10000.0));
  const char* which = "rope_scaling";
  const json* rope = top.Find(which);
  if (rope == nullptr) {
    which = "rope_parameters";
    rope = top.Find(which);
  }
  if (rope == nullptr) return absl::OkStatus();
  if (!rope->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        top.Label(which), " is ", JsonTypeName(*rope), ", expected an object"));
  }
  const Fields r(*rope, absl::StrCat(which, "."));
  if (r.Find("rope_theta") != nullptr) {
    TP_ASSIGN_OR_RETURN(c.rope_theta, r.Double("rope_theta"));
  }
  TP_ASSIGN_OR_RETURN(std::string type, r.String("rope_type", ""));
  if (type.empty()) {
    TP_ASSIGN_OR_RETURN(type, r.String("type", "default"));
  }
  if (type == "default") return absl::OkStatus();
  RopeScaling& s = c.rope_scaling;
  if (type == "linear") {
    s.type = RopeScalingType::kLinear;
    TP_ASSIGN_OR_RETURN(s.factor, r.Double("factor"));
    return absl::OkStatus();
  }
  if (type == "llama3") {
    TP_ASSIGN_OR_RETURN(double factor, r.Double("factor"));
    TP_ASSIGN_OR_RETURN(double low, r.Double("low_freq_factor"));
    TP_ASSIGN_OR_RETURN(double high, r.Double("high_freq_factor"));
    TP_ASSIGN_OR_RETURN(int64_t orig,
                        r.Int("original_max_position_embeddings"));
    // The formula divides by (high - low) and by the factor.
    if (!(std::isfinite(factor) && factor >= 1 && factor <= 1024 &&
          std::isfinite(low) && low > 0 && std::isfinite(high) && high > low &&
          orig >= 1 && orig <= (1 << 24))) {
      return absl::InvalidArgumentError(absl::StrCat(
          top.Label(which),
          " llama3 needs 1 <= factor <= 1024, 0 < low_freq_factor < "
          "high_freq_factor and original_max_position_embeddings in [1, "
          "2^24] (have factor = ",
          factor, ", low_freq_factor = ", low, ", high_freq_factor = ", high,
          ", original_max_position_embeddings = ", orig, ")"));
    }
    c.rope_freq_factors =
        Llama3RopeFactors(c.rope_theta, c.rope_dim, factor, low, high, orig);
    return absl::OkStatus();
  }
  if (type == "yarn") {
    s.type = RopeScalingType::kYarn;
    TP_ASSIGN_OR_RETURN(s.factor, r.Double("factor"));
    TP_ASSIGN_OR_RETURN(
        s.original_max_positions,
        r.Int("original_max_position_embeddings", c.max_positions));
    TP_ASSIGN_OR_RETURN(s.beta_fast, r.Double("beta_fast", 32.0));
    TP_ASSIGN_OR_RETURN(s.beta_slow, r.Double("beta_slow", 1.0));
    TP_ASSIGN_OR_RETURN(bool truncate, r.Bool("truncate", true));
    if (!truncate) {
      return Unsupported(absl::StrCat(which,
                                      ".truncate = false (YaRN "
                                      "correction dims are rounded)"));
    }
    for (const char* key : {"mscale", "mscale_all_dim"}) {
      if (r.Find(key) != nullptr) {
        return Unsupported(
            absl::StrCat(which, ".", key, " (DeepSeek YaRN); plain YaRN only"));
      }
    }
    // HF scales cos and sin by attention_factor (default 0.1 ln(factor) +
    // 1); ggml's rope multiplies attn_factor by 1 + 0.1 ln(factor) itself.
    if (!(std::isfinite(s.factor) && s.factor > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(top.Label(which), " yarn factor must be positive"));
    }
    const double temperature = 1 + 0.1 * std::log(s.factor);
    TP_ASSIGN_OR_RETURN(
        double attention_factor,
        r.Double("attention_factor", s.factor <= 1 ? 1.0 : temperature));
    s.attn_factor = attention_factor / temperature;
    return absl::OkStatus();
  }
  return absl::UnimplementedError(absl::StrCat(
      top.Label(which), " type '", EscapeForMessage(type),
      "' is not supported (supported: default, linear, llama3, yarn)"));
}

// eos_token_id: an integer or a list of integers (Llama 3 Instruct).
absl::Status ReadEos(const Fields& f, ModelConfig& c) {
  const json* eos = f.Find("eos_token_id");
  if (eos == nullptr) return absl::OkStatus();
  if (eos->is_array()) {
    for (size_t i = 0; i < eos->size(); ++i) {
      TP_ASSIGN_OR_RETURN(
          int64_t id, JsonToInt((*eos)[i], absl::StrCat(f.Label("eos_token_id"),
                                                        "[", i, "]")));
      c.eos_token_ids.push_back(id);
    }
  } else {
    TP_ASSIGN_OR_RETURN(int64_t id, JsonToInt(*eos, f.Label("eos_token_id")));
    c.eos_token_ids.push_back(id);
  }
  if (!c.eos_token_ids.empty()) c.eos_token_id = c.eos_token_ids.front();
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ParseConfig(const json& j) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json: is ", JsonTypeName(j), ", expected a JSON object"));
  }
  const Fields f(j, "");
  ModelConfig c;
  TP_ASSIGN_OR_RETURN(c.architecture, CheckArchitecture(f));
  c.rope_style = RopeStyle::kNeox;
  c.qkv_bias = c.architecture == "qwen2";
  c.qk_norm = c.architecture == "qwen3";
  TP_ASSIGN_OR_RETURN(c.name, f.String("_name_or_path", ""));
  TP_ASSIGN_OR_RETURN(c.vocab_size, f.Int("vocab_size"));
  TP_ASSIGN_OR_RETURN(c.hidden_size, f.Int("hidden_size"));
  TP_ASSIGN_OR_RETURN(c.intermediate_size, f.Int("intermediate_size"));
  TP_ASSIGN_OR_RETURN(c.n_layers, f.Int("num_hidden_layers"));
  TP_ASSIGN_OR_RETURN(c.n_heads, f.Int("num_attention_heads"));
  TP_ASSIGN_OR_RETURN(c.n_kv_heads, f.Int("num_key_value_heads", c.n_heads));
  TP_ASSIGN_OR_RETURN(c.max_positions, f.Int("max_position_embeddings", 2048));
  TP_ASSIGN_OR_RETURN(c.rms_eps, f.Double("rms_norm_eps", 1e-6));
  TP_ASSIGN_OR_RETURN(c.tied_embeddings, f.Bool("tie_word_embeddings", false));
  TP_ASSIGN_OR_RETURN(c.bos_token_id, f.Int("bos_token_id", -1));
  TP_RETURN_IF_ERROR(ReadEos(f, c));
  if (f.Find("head_dim") != nullptr) {
    TP_ASSIGN_OR_RETURN(c.head_dim, f.Int("head_dim"));
  } else {
    if (c.n_heads <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("config.json: num_attention_heads = ", c.n_heads,
                       " must be positive"));
    }
    if (c.hidden_size % c.n_heads != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json: hidden_size = ", c.hidden_size,
          " is not a multiple of num_attention_heads = ", c.n_heads));
    }
    c.head_dim = c.hidden_size / c.n_heads;
  }
  c.rope_dim = c.head_dim;
  TP_ASSIGN_OR_RETURN(double partial, f.Double("partial_rotary_factor", 1.0));
  if (partial != 1.0) {
    return Unsupported(absl::StrCat("partial_rotary_factor ", partial));
  }
  if (c.rope_dim < 2 || c.rope_dim > 1024 || c.rope_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json: head_dim = ", c.rope_dim, " must be even, in [2, 1024]"));
  }
  TP_RETURN_IF_ERROR(ReadRope(f, c));
  // Sliding-window attention equals causal attention within the window
  // (Mistral v0.1 declares 4096): cap the context there, as the GGUF
  // reader does. Qwen configs carry a window that use_sliding_window
  // (default false) leaves off.
  TP_ASSIGN_OR_RETURN(bool use_window,
                      f.Bool("use_sliding_window", c.architecture == "llama"));
  if (use_window && f.Find("sliding_window") != nullptr) {
    TP_ASSIGN_OR_RETURN(int64_t window, f.Int("sliding_window"));
    if (window <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json: sliding_window = ", window, " must be positive"));
    }
    c.max_positions = std::min(c.max_positions, window);
  }

  // Informational, but a wrong type still means a broken file.
  TP_RETURN_IF_ERROR(f.String("torch_dtype", "").status());
  TP_RETURN_IF_ERROR(f.String("dtype", "").status());
  // What the engine does not implement must not be silently ignored.
  TP_ASSIGN_OR_RETURN(std::string act, f.String("hidden_act", "silu"));
  if (act != "silu") {
    return Unsupported(
        absl::StrCat("hidden_act '", EscapeForMessage(act), "' (only silu)"));
  }
  // Qwen2's Q/K/V biases are part of the architecture (no flag); Llama's
  // optional ones are not implemented.
  TP_ASSIGN_OR_RETURN(bool attention_bias, f.Bool("attention_bias", false));
  if (attention_bias && c.architecture != "qwen2") {
    return Unsupported("'attention_bias': true");
  }
  TP_ASSIGN_OR_RETURN(bool mlp_bias, f.Bool("mlp_bias", false));
  if (mlp_bias) return Unsupported("'mlp_bias': true");
  auto valid = ValidateConfig(c);
  if (!valid.ok()) {
    return absl::Status(valid.code(),
                        absl::StrCat("config.json: ", valid.message()));
  }
  return c;
}

struct LayerName {
  const char* hf;    // After "model.layers.N."
  const char* gguf;  // After "blk.N."
};
constexpr LayerName kLayerNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},  // Qwen2.
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},  // Qwen3.
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};
constexpr LayerName kGlobalNames[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};
// A buffer, not a weight: the engine computes the frequencies itself.
constexpr char kInvFreq[] = "self_attn.rotary_emb.inv_freq";

// Splits "<prefix>N.<rest>" into N and rest. N must be a canonical decimal
// (no sign, no leading zero) so that two spellings cannot name one layer.
bool SplitLayer(absl::string_view name, absl::string_view prefix,
                absl::string_view& number, absl::string_view& rest) {
  if (!absl::ConsumePrefix(&name, prefix)) return false;
  size_t dot = name.find('.');
  if (dot == absl::string_view::npos || dot == 0 || dot > 6) return false;
  number = name.substr(0, dot);
  rest = name.substr(dot + 1);
  if (number.size() > 1 && number[0] == '0') return false;
  return std::all_of(number.begin(), number.end(), absl::ascii_isdigit);
}

absl::Status Prefixed(const absl::Status& s, absl::string_view prefix) {
  return absl::Status(s.code(), absl::StrCat(prefix, ": ", s.message()));
}

std::string TextOf(const MappedFile& f) {
  return std::string(reinterpret_cast<const char*>(f.data()), f.size());
}

bool IsFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
}

// Reads a JSON file of the folder after checking its size.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          uint64_t max_bytes) {
  TP_ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  if (file.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " is ", file.size(), " bytes; the limit is ", max_bytes));
  }
  return TextOf(file);
}

}  // namespace

absl::StatusOr<ModelConfig> ConfigFromHfJson(absl::string_view json_text) {
  JsonLimits limits;
  limits.max_bytes = kMaxConfigBytes;
  limits.max_values = 1 << 20;
  TP_ASSIGN_OR_RETURN(json j,
                      ParseUntrustedJson(json_text, "config.json", limits));
  return ParseConfig(j);
}

absl::StatusOr<std::map<std::string, std::string>> ParseSafetensorsIndex(
    absl::string_view json_text) {
  JsonLimits limits;
  limits.max_bytes = kMaxIndexBytes;
  TP_ASSIGN_OR_RETURN(json j,
                      ParseUntrustedJson(json_text, kHfIndexFile, limits));
  const std::string what = kHfIndexFile;
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": is ", JsonTypeName(j), ", expected a JSON object"));
  }
  auto it = j.find("weight_map");
  if (it == j.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": 'weight_map' is missing"));
  }
  if (!it->is_object() || it->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": 'weight_map' is ", JsonTypeName(*it),
                     it->is_object() ? " with no entries" : "",
                     ", expected an object of tensor name -> shard file"));
  }
  std::map<std::string, std::string> map;
  std::set<std::string> shards;
  for (const auto& [tensor, shard_json] : it->items()) {
    const std::string label = absl::StrCat(what, ": 'weight_map' entry for '",
                                           EscapeForMessage(tensor), "'");
    TP_ASSIGN_OR_RETURN(std::string shard, JsonToString(shard_json, label));
    // A path would let a crafted index read any file ("../../etc/x").
    if (shard.empty() || shard == "." || shard == ".." ||
        shard.find_first_of(std::string("/\\\0", 3)) != std::string::npos ||
        !absl::EndsWith(shard, ".safetensors") || shard.size() > 255) {
      return absl::InvalidArgumentError(absl::StrCat(
          label, " names shard '", EscapeForMessage(shard),
          "', which is not a plain *.safetensors file name in the model "
          "folder"));
    }
    shards.insert(shard);
    if (shards.size() > kMaxShards) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": more than ", kMaxShards, " shard files"));
    }
    map.emplace(tensor, std::move(shard));
  }
  return map;
}

absl::StatusOr<std::string> CanonicalTensorName(absl::string_view hf_name) {
  for (const LayerName& n : kGlobalNames) {
    if (hf_name == n.hf) return std::string(n.gguf);
  }
  absl::string_view layer, rest;
  if (SplitLayer(hf_name, "model.layers.", layer, rest)) {
    for (const LayerName& n : kLayerNames) {
      if (rest == n.hf) return absl::StrCat("blk.", layer, ".", n.gguf);
    }
    if (rest == kInvFreq) return std::string();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "tensor '", EscapeForMessage(hf_name),
      "' is not a weight of a Llama, Mistral, Qwen2 or Qwen3 model"));
}

std::string HfTensorName(absl::string_view canonical_name) {
  for (const LayerName& n : kGlobalNames) {
    if (canonical_name == n.gguf) return n.hf;
  }
  absl::string_view layer, rest;
  if (SplitLayer(canonical_name, "blk.", layer, rest)) {
    for (const LayerName& n : kLayerNames) {
      if (rest == n.gguf)
        return absl::StrCat("model.layers.", layer, ".", n.hf);
    }
  }
  return "";
}

absl::StatusOr<std::unique_ptr<ModelWeights>> OpenHfModel(
    const std::string& folder) {
  auto join = [&folder](absl::string_view name) {
    return absl::StrCat(folder, "/", name);
  };
  TP_ASSIGN_OR_RETURN(std::string config_text,
                      ReadSmallFile(join(kHfConfigFile), kMaxConfigBytes));
  auto config = ConfigFromHfJson(config_text);
  if (!config.ok()) return Prefixed(config.status(), folder);
  if (config->name.empty()) {
    absl::string_view base = folder;
    while (absl::ConsumeSuffix(&base, "/")) {
    }
    size_t slash = base.rfind('/');
    config->name = std::string(
        slash == absl::string_view::npos ? base : base.substr(slash + 1));
  }

  // Shard file names, sorted, and (sharded case) which tensor is where.
  std::vector<std::string> shard_names;
  std::map<std::string, std::string> weight_map;
  if (IsFile(join(kHfSingleWeightsFile))) {
    shard_names.push_back(kHfSingleWeightsFile);
  } else if (IsFile(join(kHfIndexFile))) {
    TP_ASSIGN_OR_RETURN(std::string index_text,
                        ReadSmallFile(join(kHfIndexFile), kMaxIndexBytes));
    auto parsed = ParseSafetensorsIndex(index_text);
    if (!parsed.ok()) return Prefixed(parsed.status(), folder);
    weight_map = *std::move(parsed);
    std::set<std::string> unique;
    for (const auto& [tensor, shard] : weight_map) unique.insert(shard);
    shard_names.assign(unique.begin(), unique.end());
  } else {
    return absl::NotFoundError(absl::StrCat(
        folder, ": has neither ", kHfSingleWeightsFile, " nor ", kHfIndexFile,
        " (only safetensors weights are supported)"));
  }

  std::vector<std::unique_ptr<SafetensorsFile>> shards;
  for (const std::string& name : shard_names) {
    auto shard = SafetensorsFile::Open(join(name));
    if (!shard.ok()) {
      if (!weight_map.empty() && absl::IsNotFound(shard.status())) {
        return absl::NotFoundError(
            absl::StrCat(folder, ": ", kHfIndexFile, " lists shard '", name,
                         "', which is missing: ", shard.status().message()));
      }
      return shard.status();
    }
    shards.push_back(*std::move(shard));
  }

  if (!weight_map.empty()) {
    // The index and the shards must agree, so that no tensor is read from
    // two places or silently skipped.
    for (size_t i = 0; i < shards.size(); ++i) {
      for (const SafetensorsTensor& t : shards[i]->tensors()) {
        auto it = weight_map.find(t.name);
        if (it == weight_map.end() || it->second != shard_names[i]) {
          return absl::InvalidArgumentError(absl::StrCat(
              folder, ": shard '", shard_names[i], "' holds tensor '",
              EscapeForMessage(t.name), "', which ", kHfIndexFile,
              it == weight_map.end()
                  ? " does not list"
                  : absl::StrCat(" places in '", it->second, "'")));
        }
      }
    }
    for (const auto& [tensor, shard] : weight_map) {
      size_t i =
          std::lower_bound(shard_names.begin(), shard_names.end(), shard) -
          shard_names.begin();
      if (shards[i]->FindTensor(tensor) == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(folder, ": ", kHfIndexFile, " places tensor '",
                         EscapeForMessage(tensor), "' in '", shard,
                         "', which does not hold it"));
      }
    }
  }

  std::vector<TensorView> views;
  for (size_t i = 0; i < shards.size(); ++i) {
    for (const SafetensorsTensor& t : shards[i]->tensors()) {
      const std::string where = join(shard_names[i]);
      auto canonical = CanonicalTensorName(t.name);
      if (!canonical.ok()) return Prefixed(canonical.status(), where);
      if (canonical->empty()) continue;
      // Tied: transformers uses the embedding and ignores a stored copy.
      if (config->tied_embeddings && *canonical == "output.weight") continue;
      // A weight the architecture does not use would be ignored silently.
      const bool bias = absl::EndsWith(*canonical, ".bias");
      const bool qk_norm = absl::EndsWith(*canonical, "_q_norm.weight") ||
                           absl::EndsWith(*canonical, "_k_norm.weight");
      if ((bias && !config->qkv_bias) || (qk_norm && !config->qk_norm)) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": tensor '", EscapeForMessage(t.name),
            "' is not part of a '", config->architecture, "' model"));
      }
      auto type = GgmlTypeOfSafetensor(t);
      if (!type.ok()) return Prefixed(type.status(), where);
      // Row-major [out, in] is ggml [in, out]: the same bytes, dims reversed.
      std::vector<uint64_t> dims(t.shape.rbegin(), t.shape.rend());
      views.push_back(TensorView{*std::move(canonical), t.name, std::move(dims),
                                 *type, t.data, t.n_elements, t.n_bytes()});
    }
  }
  auto describe = [](const std::string& canonical) {
    const std::string hf = HfTensorName(canonical);
    if (hf.empty()) return absl::StrCat("'", canonical, "'");
    return absl::StrCat("'", hf, "' ('", canonical,
                        "'; shapes in ggml order, the safetensors shape "
                        "reversed)");
  };
  auto model = ModelWeights::FromSafetensors(folder, *std::move(config),
                                             std::move(shards),
                                             std::move(views), describe);
  if (!model.ok()) return Prefixed(model.status(), folder);
  return model;
}

}  // namespace tpserve
