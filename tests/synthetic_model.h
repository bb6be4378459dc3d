// A small synthetic Llama for tests that need tensor parallelism without
// the default model: random weights (fixed seed), written as a GGUF file.
#ifndef TPSERVE_TESTS_SYNTHETIC_MODEL_H_
#define TPSERVE_TESTS_SYNTHETIC_MODEL_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "common/ggml_blocks.h"
#include "common/ggml_types.h"
#include "common/gguf.h"
#include "tests/gguf_builder.h"

namespace tpserve::testing {

inline std::vector<uint8_t> QuantizeQ8_0(const std::vector<float>& x) {
  std::vector<uint8_t> out;
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b + i]));
    const float d = amax / 127.f, id = d > 0 ? 1.f / d : 0.f;
    BlockQ8_0 block;
    block.d = Fp32ToFp16(d);
    for (int i = 0; i < 32; ++i) {
      block.qs[i] = static_cast<int8_t>(std::lround(x[b + i] * id));
    }
    const uint8_t* p = reinterpret_cast<const uint8_t*>(&block);
    out.insert(out.end(), p, p + sizeof(block));
  }
  return out;
}

// Q4_1: per 32 weights a scale d and minimum m (f16), 4-bit quants; byte
// j holds element j (low nibble) and j + 16 (high nibble).
inline std::vector<uint8_t> QuantizeQ4_1(const std::vector<float>& x) {
  std::vector<uint8_t> out;
  for (size_t b = 0; b < x.size(); b += 32) {
    float lo = x[b], hi = x[b];
    for (int i = 0; i < 32; ++i) {
      lo = std::min(lo, x[b + i]);
      hi = std::max(hi, x[b + i]);
    }
    const float d = (hi - lo) / 15.f, id = d > 0 ? 1.f / d : 0.f;
    BlockQ4_1 block;
    block.d = Fp32ToFp16(d);
    block.m = Fp32ToFp16(lo);
    for (int j = 0; j < 16; ++j) {
      auto q = [&](int i) {
        return static_cast<uint8_t>(
            std::min(15L, std::max(0L, std::lround((x[b + i] - lo) * id))));
      };
      block.qs[j] = static_cast<uint8_t>(q(j) | (q(j + 16) << 4));
    }
    const uint8_t* p = reinterpret_cast<const uint8_t*>(&block);
    out.insert(out.end(), p, p + sizeof(block));
  }
  return out;
}

// A random Llama: hidden 128, 4 query heads of 32, 2 KV heads, FFN 256,
// vocabulary 101 (splits unevenly), 2 layers; matmuls in `type` (Q8_0 or
// Q4_1), so TP slices must respect 32-element blocks (they do at TP 1, 2, 4).
// `arch` "llama" also carries rope_freqs.weight (frequency factors, as Llama
// 3.1+ files do); "qwen2" adds Q/K/V biases, "qwen3" per-head Q/K norms
// (both rotate-half RoPE).
inline std::string WriteSyntheticModel(GgmlType type,
                                       const std::string& arch = "llama") {
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.f, 0.08f);
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
  };
  auto f32 = [](const std::vector<float>& v) {
    std::vector<uint8_t> out(v.size() * 4);
    std::memcpy(out.data(), v.data(), out.size());
    return out;
  };
  const uint64_t h = 128, ffn = 256, vocab = 101, q = 128, kv = 64;
  auto quantize = [type](const std::vector<float>& v) {
    return type == GgmlType::kQ4_1 ? QuantizeQ4_1(v) : QuantizeQ8_0(v);
  };
  GgufBuilder b;
  const std::string a = arch + ".";
  b.String("general.architecture", arch)
      .String("general.name", "synthetic-tp")
      .Uint32(a + "context_length", 256)
      .Uint32(a + "embedding_length", h)
      .Uint32(a + "block_count", 2)
      .Uint32(a + "feed_forward_length", ffn)
      .Uint32(a + "attention.head_count", 4)
      .Uint32(a + "attention.head_count_kv", 2)
      .Float32(a + "attention.layer_norm_rms_epsilon", 1e-5f)
      .Float32(a + "rope.freq_base", 10000.f);
  std::vector<float> ones(h);
  for (float& x : ones) x = 1.f + normal(rng);
  b.Tensor("token_embd.weight", {h, vocab}, GgmlType::kQ8_0,
           QuantizeQ8_0(random(h * vocab)));
  b.Tensor("output_norm.weight", {h}, GgmlType::kF32, f32(ones));
  b.Tensor("output.weight", {h, vocab}, type, quantize(random(h * vocab)));
  if (arch == "llama") {
    std::vector<float> factors(16);
    for (size_t i = 0; i < factors.size(); ++i) factors[i] = 1.f + 0.5f * i;
    b.Tensor("rope_freqs.weight", {16}, GgmlType::kF32, f32(factors));
  }
  for (int i = 0; i < 2; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    b.Tensor(p + "attn_norm.weight", {h}, GgmlType::kF32, f32(ones));
    b.Tensor(p + "ffn_norm.weight", {h}, GgmlType::kF32, f32(ones));
    b.Tensor(p + "attn_q.weight", {h, q}, type, quantize(random(h * q)));
    b.Tensor(p + "attn_k.weight", {h, kv}, type, quantize(random(h * kv)));
    b.Tensor(p + "attn_v.weight", {h, kv}, type, quantize(random(h * kv)));
    b.Tensor(p + "attn_output.weight", {q, h}, type, quantize(random(q * h)));
    b.Tensor(p + "ffn_gate.weight", {h, ffn}, type, quantize(random(h * ffn)));
    b.Tensor(p + "ffn_up.weight", {h, ffn}, type, quantize(random(h * ffn)));
    b.Tensor(p + "ffn_down.weight", {ffn, h}, type, quantize(random(ffn * h)));
    if (arch == "qwen2") {
      b.Tensor(p + "attn_q.bias", {q}, GgmlType::kF32, f32(random(q)));
      b.Tensor(p + "attn_k.bias", {kv}, GgmlType::kF32, f32(random(kv)));
      b.Tensor(p + "attn_v.bias", {kv}, GgmlType::kF32, f32(random(kv)));
    } else if (arch == "qwen3") {
      std::vector<float> norm(32);
      for (float& x : norm) x = 1.f + 4 * normal(rng);
      b.Tensor(p + "attn_q_norm.weight", {32}, GgmlType::kF32, f32(norm));
      b.Tensor(p + "attn_k_norm.weight", {32}, GgmlType::kF32, f32(norm));
    }
  }
  const std::string path = ::testing::TempDir() + "/synthetic_tp_" + arch +
                           "_" + std::string(GgmlTypeName(type)) + ".gguf";
  const std::vector<uint8_t> bytes = b.Build();
  // Written aside and renamed into place: another test (or process) may
  // have the file mapped, and truncating a mapped file makes its readers
  // die of SIGBUS; a rename leaves them the old, identical inode.
  static int counter = 0;
  const std::string tmp = path + ".tmp." + std::to_string(getpid()) + "." +
                          std::to_string(counter++);
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  std::rename(tmp.c_str(), path.c_str());
  return path;
}

// A random Llama speaking a real vocabulary: every tokenizer.* entry of the
// GGUF file `vocab_path` (e.g. llama.cpp's vocabulary-only
// ggml-vocab-llama-spm.gguf) and random Q8_0 weights sized for it: hidden
// 64, 2 query heads of 32, 1 KV head, FFN 128, 2 layers, context 256. Its
// greedy output is arbitrary but fixed tokens, which is what tests of the
// text path need. Returns the written path, or "" if `vocab_path` cannot be
// read.
inline std::string WriteSyntheticModelWithVocab(const std::string& vocab_path,
                                                const std::string& name) {
  auto vocab = GgufFile::Open(vocab_path);
  if (!vocab.ok()) return "";
  auto tokens = (*vocab)->GetStringArray("tokenizer.ggml.tokens");
  if (!tokens.ok()) return "";
  const uint64_t n_vocab = tokens->size();
  const uint64_t h = 64, ffn = 128, q = 64, kv = 32;
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.f, 0.08f);
  auto q8 = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return QuantizeQ8_0(v);
  };
  std::vector<uint8_t> ones(h * 4);
  for (uint64_t i = 0; i < h; ++i) {
    const float one = 1.f;
    std::memcpy(&ones[i * 4], &one, 4);
  }
  GgufBuilder b;
  b.String("general.architecture", "llama")
      .String("general.name", name)
      .Uint32("llama.context_length", 256)
      .Uint32("llama.embedding_length", h)
      .Uint32("llama.block_count", 2)
      .Uint32("llama.feed_forward_length", ffn)
      .Uint32("llama.attention.head_count", 2)
      .Uint32("llama.attention.head_count_kv", 1)
      .Float32("llama.attention.layer_norm_rms_epsilon", 1e-5f)
      .Float32("llama.rope.freq_base", 10000.f);
  for (const GgufKv& entry : (*vocab)->metadata()) {
    if (entry.key.rfind("tokenizer.", 0) == 0) b.Copy(entry);
  }
  b.Tensor("token_embd.weight", {h, n_vocab}, GgmlType::kQ8_0, q8(h * n_vocab));
  b.Tensor("output_norm.weight", {h}, GgmlType::kF32, ones);
  b.Tensor("output.weight", {h, n_vocab}, GgmlType::kQ8_0, q8(h * n_vocab));
  for (int i = 0; i < 2; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    b.Tensor(p + "attn_norm.weight", {h}, GgmlType::kF32, ones);
    b.Tensor(p + "ffn_norm.weight", {h}, GgmlType::kF32, ones);
    b.Tensor(p + "attn_q.weight", {h, q}, GgmlType::kQ8_0, q8(h * q));
    b.Tensor(p + "attn_k.weight", {h, kv}, GgmlType::kQ8_0, q8(h * kv));
    b.Tensor(p + "attn_v.weight", {h, kv}, GgmlType::kQ8_0, q8(h * kv));
    b.Tensor(p + "attn_output.weight", {q, h}, GgmlType::kQ8_0, q8(q * h));
    b.Tensor(p + "ffn_gate.weight", {h, ffn}, GgmlType::kQ8_0, q8(h * ffn));
    b.Tensor(p + "ffn_up.weight", {h, ffn}, GgmlType::kQ8_0, q8(h * ffn));
    b.Tensor(p + "ffn_down.weight", {ffn, h}, GgmlType::kQ8_0, q8(ffn * h));
  }
  const std::string path = ::testing::TempDir() + "/" + name + ".gguf";
  const std::vector<uint8_t> bytes = b.Build();
  static int counter = 0;  // Aside and renamed, as WriteSyntheticModel does.
  const std::string tmp = path + ".tmp." + std::to_string(getpid()) + "." +
                          std::to_string(counter++);
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  std::rename(tmp.c_str(), path.c_str());
  return path;
}

}  // namespace tpserve::testing

#endif  // TPSERVE_TESTS_SYNTHETIC_MODEL_H_
