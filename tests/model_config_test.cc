#include "common/model_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "tests/gguf_builder.h"
#include "tests/test_paths.h"

namespace tpserve {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<ModelConfig> ConfigOf(const std::vector<uint8_t>& bytes) {
  auto g = GgufFile::Parse(absl::MakeConstSpan(bytes));
  if (!g.ok()) return g.status();
  return ConfigFromGguf(**g);
}

TEST(ModelConfigTest, DefaultModelIsSmolLM2_135M) {
  auto g = GgufFile::Open(testing::DefaultModelPath());
  ASSERT_TRUE(g.ok()) << g.status() << "\n" << testing::kModelHint;
  auto c = ConfigFromGguf(**g);
  ASSERT_TRUE(c.ok()) << c.status();
  // Values from the model card / config.json of SmolLM2-135M-Instruct.
  EXPECT_EQ(c->architecture, "llama");
  EXPECT_EQ(c->vocab_size, 49152);
  EXPECT_EQ(c->hidden_size, 576);
  EXPECT_EQ(c->intermediate_size, 1536);
  EXPECT_EQ(c->n_layers, 30);
  EXPECT_EQ(c->n_heads, 9);
  EXPECT_EQ(c->n_kv_heads, 3);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->max_positions, 8192);
  EXPECT_FLOAT_EQ(c->rope_theta, 100000.0);
  EXPECT_FLOAT_EQ(c->rms_eps, 1e-5);
  EXPECT_TRUE(c->tied_embeddings);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_id, 2);
  EXPECT_EQ(c->weight_type, GgmlType::kQ4_1);
  // 134.5M parameters (the "135M" of the name).
  EXPECT_NEAR(c->ParameterCount(), 134.5e6, 0.1e6);
}

TEST(ModelConfigTest, TinyGoldenFileFromGgufPackage) {
  auto g = GgufFile::Open(testing::GoldenPath("tiny_llama.gguf"));
  ASSERT_TRUE(g.ok()) << g.status();
  auto c = ConfigFromGguf(**g);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->n_kv_heads, 2);
  EXPECT_FALSE(c->tied_embeddings);
  EXPECT_EQ(c->name, "tiny-llama-golden");
}

TEST(ModelConfigTest, BuilderTinyLlamaIsValid) {
  auto c = ConfigOf(testing::TinyLlama(/*tied=*/false).Build());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->vocab_size, 10);
  EXPECT_EQ(c->head_dim, 4);
  EXPECT_FALSE(c->tied_embeddings);
}

struct BadCase {
  const char* what;
  std::vector<uint8_t> bytes;
  const char* error;
};

std::vector<uint8_t> F32Bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

// RoPE as the file says: rope_freqs.weight and the rope.scaling keys, read
// as llama.cpp reads them.
TEST(ModelConfigTest, RopeFreqsAndScalingKeys) {
  using testing::TinyLlama;
  auto c = ConfigOf(TinyLlama()
                        .Tensor("rope_freqs.weight", {2}, GgmlType::kF32,
                                F32Bytes({1.0f, 4.5f}))
                        .Build());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_freq_factors, (std::vector<float>{1.0f, 4.5f}));
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kNone);

  // A factor without a type is linear (llama.cpp's default type).
  c = ConfigOf(TinyLlama().Float32("llama.rope.scaling.factor", 4).Build());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 4);

  c = ConfigOf(TinyLlama()
                   .String("llama.rope.scaling.type", "yarn")
                   .Float32("llama.rope.scaling.factor", 4)
                   .Uint32("llama.rope.scaling.original_context_length", 16)
                   .Float32("llama.rope.scaling.attn_factor", 0.5f)
                   .Build());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kYarn);
  EXPECT_EQ(c->rope_scaling.original_max_positions, 16);
  // get_mscale(4) / (1 + 0.1 ln 4) (1 up to float rounding) times the key.
  EXPECT_NEAR(c->rope_scaling.attn_factor, 0.5, 1e-7);

  c = ConfigOf(TinyLlama()
                   .String("llama.rope.scaling.type", "none")
                   .Float32("llama.rope.scaling.factor", 4)
                   .Build());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kNone);

  // A sliding window shorter than the context caps it (TinyLlama: 64).
  c = ConfigOf(
      TinyLlama().Uint32("llama.attention.sliding_window", 32).Build());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_positions, 32);

  const BadCase bad[] = {
      {"rope_freqs size",
       TinyLlama()
           .Tensor("rope_freqs.weight", {3}, GgmlType::kF32,
                   F32Bytes({1, 1, 1}))
           .Build(),
       "'rope_freqs.weight' must be F32 [2]"},
      {"rope_freqs zero",
       TinyLlama()
           .Tensor("rope_freqs.weight", {2}, GgmlType::kF32, F32Bytes({1, 0}))
           .Build(),
       "rope frequency factor 0 must be finite and positive"},
      {"longrope",
       TinyLlama().String("llama.rope.scaling.type", "longrope").Build(),
       "rope.scaling.type 'longrope' is not supported"},
      {"deepseek yarn",
       TinyLlama()
           .String("llama.rope.scaling.type", "yarn")
           .Float32("llama.rope.scaling.factor", 4)
           .Float32("llama.rope.scaling.yarn_log_multiplier", 0.1f)
           .Build(),
       "yarn_log_multiplier"},
      {"negative factor",
       TinyLlama().Float32("llama.rope.scaling.factor", -2).Build(),
       "rope scaling factor = -2"},
  };
  for (const BadCase& b : bad) {
    auto config = ConfigOf(b.bytes);
    ASSERT_FALSE(config.ok()) << b.what;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(b.error))
        << b.what;
  }
}

TEST(ModelConfigTest, RefusesBrokenModelsWithClearErrors) {
  using testing::GgufBuilder;
  using testing::TinyLlama;
  std::vector<BadCase> cases = {
      {"not llama",
       GgufBuilder().String("general.architecture", "gpt2").Build(),
       "architecture 'gpt2' is not supported"},
      {"no architecture", GgufBuilder().Build(),
       "'general.architecture' is missing"},
      {"wrong key type",
       GgufBuilder()
           .String("general.architecture", "llama")
           .String("llama.embedding_length", "wide")
           .Build(),
       "'llama.embedding_length' is string"},
      {"missing tensor",
       [] {
         auto b = GgufBuilder();
         b.String("general.architecture", "llama")
             .Uint32("llama.context_length", 64)
             .Uint32("llama.embedding_length", 8)
             .Uint32("llama.block_count", 1)
             .Uint32("llama.feed_forward_length", 16)
             .Uint32("llama.attention.head_count", 2)
             .Float32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
         b.TensorF32("token_embd.weight", {8, 10});
         b.TensorF32("output_norm.weight", {8});
         return b.Build();
       }(),
       "tensor 'blk.0.attn_norm.weight' is missing"},
      {"kv heads not dividing heads",
       TinyLlama().Uint32("llama.attention.head_count_kv", 3).Build(),
       // A duplicate key is refused before the config is read.
       "duplicate metadata key"},
  };
  for (const BadCase& c : cases) {
    auto config = ConfigOf(c.bytes);
    ASSERT_FALSE(config.ok()) << c.what;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.error))
        << c.what;
  }
}

TEST(ModelConfigTest, ValidateConfigRules) {
  ModelConfig good;
  good.vocab_size = 100;
  good.hidden_size = 64;
  good.intermediate_size = 128;
  good.n_layers = 2;
  good.n_heads = 4;
  good.n_kv_heads = 2;
  good.head_dim = 16;
  good.rope_dim = 16;
  good.max_positions = 128;
  ASSERT_TRUE(ValidateConfig(good).ok());
  struct Rule {
    void (*mutate)(ModelConfig&);
    const char* error;
  };
  const Rule rules[] = {
      {[](ModelConfig& c) { c.n_kv_heads = 3; },
       "not a multiple of n_kv_heads"},
      {[](ModelConfig& c) { c.n_kv_heads = 8; }, "n_kv_heads = 8 is outside"},
      {[](ModelConfig& c) { c.vocab_size = 0; }, "vocab_size = 0"},
      {[](ModelConfig& c) { c.rms_eps = std::nan(""); }, "rms_eps"},
      {[](ModelConfig& c) { c.rope_theta = -1; }, "rope_theta"},
      {[](ModelConfig& c) { c.eos_token_id = 100; }, "outside the vocabulary"},
      {[](ModelConfig& c) { c.head_dim = 15, c.rope_dim = 15; }, "even"},
  };
  for (const Rule& r : rules) {
    ModelConfig c = good;
    r.mutate(c);
    absl::Status s = ValidateConfig(c);
    EXPECT_THAT(std::string(s.message()), HasSubstr(r.error));
  }
}

}  // namespace
}  // namespace tpserve
