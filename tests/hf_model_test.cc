// Hugging Face folders (config.json + safetensors) through the unified model
// view: the golden folder written by the `safetensors` package, the same
// model as the golden GGUF where the formats agree, and broken folders.
#include "common/hf_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/model_weights.h"
#include "tests/safetensors_builder.h"
#include "tests/test_paths.h"

namespace tpserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::BuildSafetensors;
using testing::FreshDir;
using ::testing::HasSubstr;
using testing::StTensor;
using testing::WriteFile;

uint64_t Fnv1a64(const uint8_t* p, uint64_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint64_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

const char kGoldenFolder[] = "tests/golden/hf_tiny";

TEST(HfModelTest, GoldenFolderConfig) {
  auto m = OpenHfModel(kGoldenFolder);
  ASSERT_TRUE(m.ok()) << m.status();
  const ModelConfig& c = (*m)->config();
  EXPECT_EQ((*m)->format(), ModelFormat::kHuggingFace);
  EXPECT_EQ((*m)->gguf(), nullptr);
  EXPECT_EQ((*m)->shards().size(), 2u);
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.name, "hf_tiny");  // No _name_or_path: the folder's name.
  EXPECT_EQ(c.vocab_size, 96);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 128);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.rope_dim, 16);
  EXPECT_EQ(c.max_positions, 256);
  EXPECT_DOUBLE_EQ(c.rms_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_style, RopeStyle::kNeox);
  // llama3 scaling becomes frequency factors, as llama.cpp's converter
  // writes them into rope_freqs.weight.
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::kNone);
  EXPECT_EQ(c.rope_freq_factors, Llama3RopeFactors(10000, 16, 8, 1, 4, 64));
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2, 5}));
  // Layer matmuls by bytes: BF16 88 KiB, F16 52 KiB, F32 8 KiB.
  EXPECT_EQ(c.weight_type, GgmlType::kBF16);
}

TEST(HfModelTest, GoldenFolderTensorsMatchThePackage) {
  auto m = OpenHfModel(kGoldenFolder);
  ASSERT_TRUE(m.ok()) << m.status();
  const json golden = json::parse(
      testing::ReadFileOrEmpty(testing::GoldenPath("hf_tiny.json")));
  size_t weights = 0;
  uint64_t bytes = 0;
  for (const auto& [shard, want] : golden["shards"].items()) {
    for (const json& w : want["tensors"]) {
      const std::string hf = w["name"].get<std::string>();
      SCOPED_TRACE(hf);
      auto canonical = CanonicalTensorName(hf);
      ASSERT_TRUE(canonical.ok()) << canonical.status();
      if (canonical->empty()) {  // rotary inv_freq: ignored on purpose.
        EXPECT_THAT(hf, HasSubstr("inv_freq"));
        continue;
      }
      EXPECT_EQ(HfTensorName(*canonical), hf);
      const TensorView* t = (*m)->Find(*canonical);
      ASSERT_NE(t, nullptr) << *canonical;
      ++weights;
      bytes += t->n_bytes;
      EXPECT_EQ(t->source_name, hf);
      auto shape = w["shape"].get<std::vector<uint64_t>>();
      EXPECT_EQ(t->dims, std::vector<uint64_t>(shape.rbegin(), shape.rend()));
      const std::string dtype = w["dtype"].get<std::string>();
      EXPECT_EQ(t->type, dtype == "F32"   ? GgmlType::kF32
                         : dtype == "F16" ? GgmlType::kF16
                                          : GgmlType::kBF16);
      EXPECT_EQ(t->n_bytes, w["n_bytes"].get<uint64_t>());
      EXPECT_EQ(absl::StrFormat("%016x", Fnv1a64(t->data, t->n_bytes)),
                w["fnv1a64"].get<std::string>());
    }
  }
  EXPECT_EQ(weights, 3u + 9u * 2u);
  EXPECT_EQ((*m)->tensors().size(), weights);
  EXPECT_EQ((*m)->weight_bytes(), bytes);
  EXPECT_EQ((*m)->Find("model.embed_tokens.weight"), nullptr);
  // The embedding [vocab, hidden] in HF is ggml [hidden, vocab].
  EXPECT_EQ((*m)->Find("token_embd.weight")->dims,
            (std::vector<uint64_t>{64, 96}));
  EXPECT_EQ((*m)->Find("blk.1.ffn_down.weight")->dims,
            (std::vector<uint64_t>{128, 64}));
}

TEST(HfModelTest, GgufAndHfOpenTheSameWay) {
  auto hf = OpenModel(kGoldenFolder);
  ASSERT_TRUE(hf.ok()) << hf.status();
  auto gguf = OpenModel(testing::GoldenPath("tiny_llama.gguf"));
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  EXPECT_EQ((*gguf)->format(), ModelFormat::kGguf);
  EXPECT_NE((*gguf)->gguf(), nullptr);
  const ModelConfig& a = (*gguf)->config();
  const ModelConfig& b = (*hf)->config();
  // The same hyper-parameters (the golden files were made to agree).
  EXPECT_EQ(a.architecture, b.architecture);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.n_layers, b.n_layers);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.n_kv_heads, b.n_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.rope_dim, b.rope_dim);
  EXPECT_EQ(a.max_positions, b.max_positions);
  EXPECT_NEAR(a.rms_eps, b.rms_eps, 1e-12);  // GGUF stores a float32.
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.tied_embeddings, b.tied_embeddings);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_id, b.eos_token_id);
  EXPECT_EQ(a.ParameterCount(), b.ParameterCount());
  // Where the formats differ by design.
  EXPECT_EQ(a.rope_style, RopeStyle::kNormal);
  EXPECT_EQ(b.rope_style, RopeStyle::kNeox);
  EXPECT_EQ(a.eos_token_ids, (std::vector<int64_t>{2}));
  // Both expose the same canonical tensors with the same ggml dims.
  ASSERT_EQ((*gguf)->tensors().size(), (*hf)->tensors().size());
  for (const TensorView& t : (*gguf)->tensors()) {
    const TensorView* other = (*hf)->Find(t.name);
    ASSERT_NE(other, nullptr) << t.name;
    EXPECT_EQ(t.dims, other->dims) << t.name;
  }
}

TEST(HfModelTest, OpenModelRefusesOtherPaths) {
  for (const std::string& path :
       {testing::GoldenPath("hf_tiny.json"), std::string("tests/golden"),
        testing::GoldenPath("hf_tiny/model-00001-of-00002.safetensors")}) {
    auto m = OpenModel(path);
    ASSERT_FALSE(m.ok()) << path;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(
        std::string(m.status().message()),
        HasSubstr("not a GGUF file or a Hugging Face folder with config.json"));
  }
  auto missing = OpenModel("tests/golden/no_such_model");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

// config.json of a valid tiny model, to mutate.
json TinyConfig() {
  return json{{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"hidden_size", 8},
              {"intermediate_size", 16},
              {"num_hidden_layers", 1},
              {"num_attention_heads", 2},
              {"num_key_value_heads", 1},
              {"vocab_size", 10},
              {"max_position_embeddings", 32},
              {"rms_norm_eps", 1e-5},
              {"tie_word_embeddings", false}};
}

TEST(HfModelTest, ConfigDefaultsAndVariants) {
  json j = TinyConfig();
  j.erase("num_key_value_heads");
  j.erase("max_position_embeddings");
  j.erase("rms_norm_eps");
  j["num_key_value_heads"] = nullptr;
  auto c = ConfigFromHfJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->n_kv_heads, 2);  // Defaults to the attention heads.
  EXPECT_EQ(c->max_positions, 2048);
  EXPECT_DOUBLE_EQ(c->rms_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kNone);
  EXPECT_EQ(c->bos_token_id, -1);
  EXPECT_TRUE(c->eos_token_ids.empty());

  j = TinyConfig();
  j["eos_token_id"] = 3;
  j["head_dim"] = 8;  // Explicit: q has 2 x 8 = 16 rows, not hidden_size.
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5e5}};
  j["_name_or_path"] = "meta-llama/Tiny";
  c = ConfigFromHfJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{3}));
  EXPECT_EQ(c->head_dim, 8);
  EXPECT_DOUBLE_EQ(c->rope_theta, 5e5);
  EXPECT_EQ(c->name, "meta-llama/Tiny");

  j = TinyConfig();
  j["rope_scaling"] = {{"type", "llama3"},
                       {"factor", 32},
                       {"low_freq_factor", 1},
                       {"high_freq_factor", 4},
                       {"original_max_position_embeddings", 8192}};
  c = ConfigFromHfJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kNone);
  EXPECT_EQ(c->rope_freq_factors,
            Llama3RopeFactors(10000, c->rope_dim, 32, 1, 4, 8192));

  j = TinyConfig();
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 4}};
  c = ConfigFromHfJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 4);
  EXPECT_TRUE(c->rope_freq_factors.empty());

  // YaRN as Qwen2.5 ships it; HF's attention_factor (default 0.1 ln f + 1)
  // is kept as ggml's attn_factor, which ggml's rope multiplies by that
  // same temperature again.
  j = TinyConfig();
  j["rope_scaling"] = {{"type", "yarn"},
                       {"factor", 4.0},
                       {"original_max_position_embeddings", 32768}};
  c = ConfigFromHfJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kYarn);
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 4);
  EXPECT_EQ(c->rope_scaling.original_max_positions, 32768);
  EXPECT_DOUBLE_EQ(c->rope_scaling.attn_factor, 1.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.beta_fast, 32);
  EXPECT_DOUBLE_EQ(c->rope_scaling.beta_slow, 1);
  j["rope_scaling"]["attention_factor"] = 1.5;
  c = ConfigFromHfJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope_scaling.attn_factor,
                   1.5 / (1 + 0.1 * std::log(4.0)));
}

// Mistral is Llama's architecture; Qwen2 adds Q/K/V biases, Qwen3 per-head
// Q/K norms; a sliding window caps the context.
TEST(HfModelTest, ConfigFamilies) {
  json j = TinyConfig();
  j["model_type"] = "mistral";
  j["architectures"] = {"MistralForCausalLM"};
  j["max_position_embeddings"] = 32768;
  j["sliding_window"] = 4096;
  auto c = ConfigFromHfJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "llama");
  EXPECT_EQ(c->max_positions, 4096);
  EXPECT_FALSE(c->qkv_bias);
  j["sliding_window"] = nullptr;  // Mistral v0.2+: no window.
  c = ConfigFromHfJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_positions, 32768);

  j = TinyConfig();
  j["model_type"] = "qwen2";
  j["architectures"] = {"Qwen2ForCausalLM"};
  j["sliding_window"] = 16;  // Off unless use_sliding_window.
  j["use_sliding_window"] = false;
  c = ConfigFromHfJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "qwen2");
  EXPECT_TRUE(c->qkv_bias);
  EXPECT_FALSE(c->qk_norm);
  EXPECT_EQ(c->rope_style, RopeStyle::kNeox);
  EXPECT_EQ(c->max_positions, 32);

  j = TinyConfig();
  j["model_type"] = "qwen3";
  j["architectures"] = {"Qwen3ForCausalLM"};
  j["attention_bias"] = false;
  c = ConfigFromHfJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "qwen3");
  EXPECT_FALSE(c->qkv_bias);
  EXPECT_TRUE(c->qk_norm);

  j["architectures"] = {"LlamaForCausalLM"};  // Disagrees with model_type.
  c = ConfigFromHfJson(j.dump());
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              ::testing::HasSubstr("for model_type 'qwen3'"));
}

TEST(HfModelTest, BrokenConfigsGetClearErrors) {
  struct Case {
    const char* what;
    void (*mutate)(json&);
    const char* error;
  };
  const Case cases[] = {
      {"string for int", [](json& j) { j["hidden_size"] = "8"; },
       "'hidden_size' is a string, expected an integer"},
      {"float for int", [](json& j) { j["num_hidden_layers"] = 1.5; },
       "'num_hidden_layers' is a floating-point number, expected an integer"},
      {"missing vocab", [](json& j) { j.erase("vocab_size"); },
       "'vocab_size' is missing"},
      {"missing hidden", [](json& j) { j.erase("hidden_size"); },
       "'hidden_size' is missing"},
      {"heads not dividing hidden",
       [](json& j) { j["num_attention_heads"] = 3; },
       "hidden_size = 8 is not a multiple of num_attention_heads = 3"},
      {"zero heads", [](json& j) { j["num_attention_heads"] = 0; },
       "num_attention_heads = 0 must be positive"},
      {"kv heads not dividing heads",
       [](json& j) {
         j["num_attention_heads"] = 4;
         j["num_key_value_heads"] = 3;
       },
       "n_heads = 4 is not a multiple of n_kv_heads = 3"},
      {"negative layers", [](json& j) { j["num_hidden_layers"] = -1; },
       "n_layers = -1 is outside"},
      {"bool as string", [](json& j) { j["tie_word_embeddings"] = "false"; },
       "'tie_word_embeddings' is a string, expected true or false"},
      {"other architecture", [](json& j) { j["model_type"] = "gemma"; },
       "model_type 'gemma' is not supported"},
      {"other class",
       [](json& j) { j["architectures"] = {"LlamaForSequenceClassification"}; },
       "do not include a supported class"},
      {"no architecture",
       [](json& j) {
         j.erase("architectures");
         j.erase("model_type");
       },
       "neither 'model_type' nor 'architectures'"},
      {"dynamic",
       [](json& j) {
         j["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2}};
       },
       "'rope_scaling' type 'dynamic' is not supported"},
      {"yarn without factor",
       [](json& j) {
         j["rope_scaling"] = {{"rope_type", "yarn"}};
       },
       "'rope_scaling.factor' is missing"},
      {"deepseek yarn",
       [](json& j) {
         j["rope_scaling"] = {
             {"rope_type", "yarn"}, {"factor", 4}, {"mscale_all_dim", 1}};
       },
       "mscale_all_dim (DeepSeek YaRN)"},
      {"negative window", [](json& j) { j["sliding_window"] = -4; },
       "sliding_window = -4 must be positive"},
      {"llama3 without factor",
       [](json& j) {
         j["rope_scaling"] = {{"rope_type", "llama3"},
                              {"low_freq_factor", 1},
                              {"high_freq_factor", 4},
                              {"original_max_position_embeddings", 64}};
       },
       "'rope_scaling.factor' is missing"},
      {"llama3 bad factors",
       [](json& j) {
         j["rope_scaling"] = {{"rope_type", "llama3"},
                              {"factor", 8},
                              {"low_freq_factor", 4},
                              {"high_freq_factor", 4},
                              {"original_max_position_embeddings", 64}};
       },
       "low_freq_factor < high_freq_factor"},
      {"rope_scaling not object", [](json& j) { j["rope_scaling"] = 2; },
       "'rope_scaling' is an integer, expected an object"},
      {"eos strings", [](json& j) { j["eos_token_id"] = {"2"}; },
       "'eos_token_id'[0] is a string"},
      {"eos outside vocab",
       [](json& j) {
         j["eos_token_id"] = {2, 10};
       },
       "eos_token_ids entry = 10 is outside the vocabulary"},
      {"bias", [](json& j) { j["attention_bias"] = true; },
       "'attention_bias': true is not supported"},
      {"activation", [](json& j) { j["hidden_act"] = "gelu"; },
       "hidden_act 'gelu' (only silu) is not supported"},
      {"dtype type", [](json& j) { j["torch_dtype"] = 16; },
       "'torch_dtype' is an integer, expected a string"},
      {"not an object", [](json& j) { j = json::array({1}); },
       "config.json: is an array, expected a JSON object"},
  };
  for (const Case& c : cases) {
    json j = TinyConfig();
    c.mutate(j);
    auto config = ConfigFromHfJson(j.dump());
    ASSERT_FALSE(config.ok()) << c.what;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.error))
        << c.what;
  }
  for (const auto& [text, error] :
       std::vector<std::pair<std::string, std::string>>{
           {"{\"hidden_size\": ", "config.json: invalid JSON at byte"},
           {"{\"a\": 1, \"a\": 2}", "config.json: duplicate key 'a'"},
           {std::string(100, '[') + std::string(100, ']'),
            "config.json: JSON nesting is deeper than 32"},
           {"", "config.json: invalid JSON"}}) {
    auto config = ConfigFromHfJson(text);
    ASSERT_FALSE(config.ok()) << text;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(error));
  }
}

TEST(HfModelTest, IndexRefusesPathsAndBadEntries) {
  auto ok = ParseSafetensorsIndex(
      R"({"metadata": {"total_size": 8}, "weight_map": {"a": "x.safetensors",
          "b": "x.safetensors", "c": "y.safetensors"}})");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->size(), 3u);
  EXPECT_EQ(ok->at("c"), "y.safetensors");
  const std::pair<const char*, const char*> cases[] = {
      {R"({"weight_map": {"a": "../x.safetensors"}})", "not a plain"},
      {R"({"weight_map": {"a": "sub/x.safetensors"}})", "not a plain"},
      {R"({"weight_map": {"a": "/etc/x.safetensors"}})", "not a plain"},
      {R"({"weight_map": {"a": ".."}})", "not a plain"},
      {R"({"weight_map": {"a": "pytorch_model.bin"}})", "not a plain"},
      {R"({"weight_map": {"a": ""}})", "not a plain"},
      {R"({"weight_map": {"a": 3}})",
       "'weight_map' entry for 'a' is an integer, expected a string"},
      {R"({"weight_map": {}})", "with no entries"},
      {R"({"weight_map": []})", "'weight_map' is an array"},
      {R"({"metadata": {}})", "'weight_map' is missing"},
      {R"([])", "is an array, expected a JSON object"},
  };
  for (const auto& [text, error] : cases) {
    auto index = ParseSafetensorsIndex(text);
    ASSERT_FALSE(index.ok()) << text;
    EXPECT_THAT(std::string(index.status().message()), HasSubstr(error))
        << text;
  }
}

TEST(HfModelTest, TensorNames) {
  EXPECT_EQ(*CanonicalTensorName("model.layers.12.mlp.down_proj.weight"),
            "blk.12.ffn_down.weight");
  EXPECT_EQ(*CanonicalTensorName("lm_head.weight"), "output.weight");
  EXPECT_EQ(
      *CanonicalTensorName("model.layers.3.self_attn.rotary_emb.inv_freq"), "");
  EXPECT_EQ(*CanonicalTensorName("model.layers.1.self_attn.q_proj.bias"),
            "blk.1.attn_q.bias");
  EXPECT_EQ(*CanonicalTensorName("model.layers.2.self_attn.k_norm.weight"),
            "blk.2.attn_k_norm.weight");
  for (const char* bad :
       {"model.layers.01.mlp.up_proj.weight",
        "model.layers.-1.mlp.up_proj.weight",
        "model.layers..mlp.up_proj.weight", "model.embed_tokens.weight.x",
        "transformer.h.0.attn.c_attn.weight"}) {
    auto name = CanonicalTensorName(bad);
    EXPECT_FALSE(name.ok()) << bad;
    EXPECT_THAT(
        std::string(name.status().message()),
        HasSubstr("is not a weight of a Llama, Mistral, Qwen2 or Qwen3"));
  }
  EXPECT_EQ(HfTensorName("blk.0.attn_output.weight"),
            "model.layers.0.self_attn.o_proj.weight");
  EXPECT_EQ(HfTensorName("rope_freqs.weight"), "");
}

// A complete 1-layer model for TinyConfig(), in HF layout [out, in].
std::vector<StTensor> TinyTensors() {
  std::vector<StTensor> t = {
      {"model.embed_tokens.weight", "F32", {10, 8}, ""},
      {"model.norm.weight", "F32", {8}, ""},
      {"lm_head.weight", "F16", {10, 8}, ""},
  };
  const std::string p = "model.layers.0.";
  t.push_back({p + "input_layernorm.weight", "F32", {8}, ""});
  t.push_back({p + "self_attn.q_proj.weight", "BF16", {8, 8}, ""});
  t.push_back({p + "self_attn.k_proj.weight", "BF16", {4, 8}, ""});
  t.push_back({p + "self_attn.v_proj.weight", "BF16", {4, 8}, ""});
  t.push_back({p + "self_attn.o_proj.weight", "BF16", {8, 8}, ""});
  t.push_back({p + "post_attention_layernorm.weight", "F32", {8}, ""});
  t.push_back({p + "mlp.gate_proj.weight", "F16", {16, 8}, ""});
  t.push_back({p + "mlp.up_proj.weight", "F16", {16, 8}, ""});
  t.push_back({p + "mlp.down_proj.weight", "F16", {8, 16}, ""});
  return t;
}

fs::path WriteFolder(const std::string& name, const json& config,
                     const std::vector<StTensor>& tensors) {
  fs::path dir = FreshDir(name);
  WriteFile(dir / "config.json", config.dump());
  WriteFile(dir / "model.safetensors", BuildSafetensors(tensors));
  return dir;
}

void SetShape(std::vector<StTensor>& tensors, const std::string& name,
              std::vector<uint64_t> shape) {
  for (StTensor& t : tensors) {
    if (t.name == name) t.shape = shape;
  }
}

TEST(HfModelTest, SingleFileFolder) {
  auto m = OpenModel(WriteFolder("single", TinyConfig(), TinyTensors()));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->shards().size(), 1u);
  EXPECT_EQ((*m)->Find("blk.0.attn_k.weight")->dims,
            (std::vector<uint64_t>{8, 4}));
  EXPECT_NE((*m)->Find("output.weight"), nullptr);

  // Tied: a stored lm_head is ignored, as transformers ignores it.
  json tied = TinyConfig();
  tied["tie_word_embeddings"] = true;
  m = OpenModel(WriteFolder("tied", tied, TinyTensors()));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->Find("output.weight"), nullptr);
  EXPECT_TRUE((*m)->config().tied_embeddings);
}

TEST(HfModelTest, FoldersWithWrongTensorsGetClearErrors) {
  struct Case {
    const char* what;
    void (*mutate)(std::vector<StTensor>&);
    const char* error;
  };
  const Case cases[] = {
      {"wrong q shape",
       [](std::vector<StTensor>& t) {
         SetShape(t, "model.layers.0.self_attn.q_proj.weight", {4, 8});
       },
       "tensor 'model.layers.0.self_attn.q_proj.weight' ('blk.0.attn_q.weight'"
       "; shapes in ggml order, the safetensors shape reversed) has shape "
       "[8, 4], expected [8, 8]"},
      {"transposed down",
       [](std::vector<StTensor>& t) {
         SetShape(t, "model.layers.0.mlp.down_proj.weight", {16, 8});
       },
       "has shape [8, 16], expected [16, 8]"},
      {"wrong vocab",
       [](std::vector<StTensor>& t) {
         SetShape(t, "model.embed_tokens.weight", {11, 8});
       },
       "'model.embed_tokens.weight' ('token_embd.weight'"},
      {"missing lm_head",
       [](std::vector<StTensor>& t) { t.erase(t.begin() + 2); },
       "tensor 'lm_head.weight' ('output.weight'; shapes in ggml order, the "
       "safetensors shape reversed) is missing"},
      {"extra layer",
       [](std::vector<StTensor>& t) {
         t.push_back({"model.layers.1.input_layernorm.weight", "F32", {8}, ""});
       },
       "'model.layers.1.input_layernorm.weight' ('blk.1.attn_norm.weight'; "
       "shapes in ggml order, the safetensors shape reversed) is not used by a "
       "1-layer Llama"},
      {"bias",
       [](std::vector<StTensor>& t) {
         t.push_back({"model.layers.0.self_attn.q_proj.bias", "F32", {8}, ""});
       },
       "model.safetensors: tensor 'model.layers.0.self_attn.q_proj.bias' is "
       "not part of a 'llama' model"},
      {"q norm",
       [](std::vector<StTensor>& t) {
         t.push_back(
             {"model.layers.0.self_attn.q_norm.weight", "F32", {4}, ""});
       },
       "tensor 'model.layers.0.self_attn.q_norm.weight' is not part of a "
       "'llama' model"},
      {"quantized dtype", [](std::vector<StTensor>& t) { t[4].dtype = "I8"; },
       "tensor 'model.layers.0.self_attn.q_proj.weight' has dtype I8"},
  };
  for (const Case& c : cases) {
    std::vector<StTensor> tensors = TinyTensors();
    c.mutate(tensors);
    auto m = OpenModel(WriteFolder("bad", TinyConfig(), tensors));
    ASSERT_FALSE(m.ok()) << c.what;
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(c.error))
        << c.what;
  }
  // Broken config.json in a folder: the error names the folder and field.
  json config = TinyConfig();
  config["vocab_size"] = "ten";
  fs::path dir = WriteFolder("badconfig", config, TinyTensors());
  auto m = OpenModel(dir.string());
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr(dir.string() +
                        ": config.json: 'vocab_size' is a string, expected "
                        "an integer"));
}

// A copy of the golden folder to damage.
fs::path CopyGolden(const std::string& name) {
  fs::path dir = FreshDir(name);
  for (const auto& e : fs::directory_iterator(kGoldenFolder)) {
    fs::copy_file(e.path(), dir / e.path().filename());
  }
  return dir;
}

json GoldenIndex() {
  return json::parse(testing::ReadFileOrEmpty(std::string(kGoldenFolder) +
                                              "/model.safetensors.index.json"));
}

TEST(HfModelTest, ShardedFoldersWithBrokenIndexes) {
  struct Case {
    const char* what;
    void (*mutate)(json& index, const fs::path& dir);
    absl::StatusCode code;
    const char* error;
  };
  const Case cases[] = {
      {"missing shard",
       [](json&, const fs::path& dir) {
         fs::remove(dir / "model-00002-of-00002.safetensors");
       },
       absl::StatusCode::kNotFound,
       "lists shard 'model-00002-of-00002.safetensors', which is missing"},
      {"path traversal",
       [](json& index, const fs::path&) {
         index["weight_map"]["model.norm.weight"] = "../x.safetensors";
       },
       absl::StatusCode::kInvalidArgument,
       "'weight_map' entry for 'model.norm.weight' names shard "
       "'../x.safetensors', which is not a plain"},
      {"tensor in the wrong shard",
       [](json& index, const fs::path&) {
         index["weight_map"]["model.norm.weight"] =
             "model-00001-of-00002.safetensors";
       },
       absl::StatusCode::kInvalidArgument,
       "shard 'model-00002-of-00002.safetensors' holds tensor "
       "'model.norm.weight', which model.safetensors.index.json places in "
       "'model-00001-of-00002.safetensors'"},
      {"unlisted tensor",
       [](json& index, const fs::path&) {
         index["weight_map"].erase("lm_head.weight");
       },
       absl::StatusCode::kInvalidArgument,
       "holds tensor 'lm_head.weight', which model.safetensors.index.json "
       "does not list"},
      {"listed tensor not in its shard",
       [](json& index, const fs::path&) {
         index["weight_map"]["model.layers.9.mlp.up_proj.weight"] =
             "model-00001-of-00002.safetensors";
       },
       absl::StatusCode::kInvalidArgument,
       "places tensor 'model.layers.9.mlp.up_proj.weight' in "
       "'model-00001-of-00002.safetensors', which does not hold it"},
      {"no weights",
       [](json&, const fs::path& dir) {
         fs::remove(dir / "model.safetensors.index.json");
       },
       absl::StatusCode::kNotFound,
       "has neither model.safetensors nor model.safetensors.index.json"},
  };
  for (const Case& c : cases) {
    fs::path dir = CopyGolden("sharded");
    json index = GoldenIndex();
    c.mutate(index, dir);
    if (fs::exists(dir / "model.safetensors.index.json")) {
      WriteFile(dir / "model.safetensors.index.json", index.dump());
    }
    auto m = OpenModel(dir.string());
    ASSERT_FALSE(m.ok()) << c.what;
    EXPECT_EQ(m.status().code(), c.code) << c.what << ": " << m.status();
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(c.error))
        << c.what;
  }
  // The undamaged copy opens.
  auto m = OpenModel(CopyGolden("sharded-ok").string());
  EXPECT_TRUE(m.ok()) << m.status();
}

}  // namespace
}  // namespace tpserve
