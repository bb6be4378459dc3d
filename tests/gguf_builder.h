// Writes GGUF images in memory for tests: valid files to start from, and the
// raw pieces (lengths, counts, offsets) to corrupt on purpose. It is a test
// fixture, not a second reader: valid-file expectations also come from files
// written by the independent `gguf` Python package (tests/golden/).
#ifndef TPSERVE_TESTS_GGUF_BUILDER_H_
#define TPSERVE_TESTS_GGUF_BUILDER_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/gguf.h"

namespace tpserve::testing {

class GgufBuilder {
 public:
  explicit GgufBuilder(uint32_t version = 3) : version_(version) {}

  // Appenders for the metadata section.
  GgufBuilder& Uint32(const std::string& key, uint32_t v) {
    return Scalar(key, GgufType::kUint32, &v, 4);
  }
  GgufBuilder& Int32(const std::string& key, int32_t v) {
    return Scalar(key, GgufType::kInt32, &v, 4);
  }
  GgufBuilder& Float32(const std::string& key, float v) {
    return Scalar(key, GgufType::kFloat32, &v, 4);
  }
  GgufBuilder& Bool(const std::string& key, bool v) {
    uint8_t b = v;
    return Scalar(key, GgufType::kBool, &b, 1);
  }
  GgufBuilder& String(const std::string& key, const std::string& v) {
    Key(key, GgufType::kString);
    Str(kv_, v);
    ++n_kv_;
    return *this;
  }
  GgufBuilder& StringArray(const std::string& key,
                           const std::vector<std::string>& v) {
    Key(key, GgufType::kArray);
    Put<uint32_t>(kv_, static_cast<uint32_t>(GgufType::kString));
    Put<uint64_t>(kv_, v.size());
    for (const std::string& s : v) Str(kv_, s);
    ++n_kv_;
    return *this;
  }
  GgufBuilder& Int32Array(const std::string& key,
                          const std::vector<int32_t>& v) {
    Key(key, GgufType::kArray);
    Put<uint32_t>(kv_, static_cast<uint32_t>(GgufType::kInt32));
    Put<uint64_t>(kv_, v.size());
    for (int32_t x : v) Put<int32_t>(kv_, x);
    ++n_kv_;
    return *this;
  }
  // A copy of an entry read from another file (e.g. a vocabulary).
  GgufBuilder& Copy(const GgufKv& kv) {
    Key(kv.key, kv.type);
    if (kv.type == GgufType::kString) {
      Str(kv_, std::string(kv.strings.at(0)));
    } else if (kv.type != GgufType::kArray) {
      kv_.insert(kv_.end(), kv.data, kv.data + ScalarSize(kv.type));
    } else {
      Put<uint32_t>(kv_, static_cast<uint32_t>(kv.elem_type));
      Put<uint64_t>(kv_, kv.count);
      if (kv.elem_type == GgufType::kString) {
        for (absl::string_view e : kv.strings) Str(kv_, std::string(e));
      } else {
        kv_.insert(kv_.end(), kv.data,
                   kv.data + kv.count * ScalarSize(kv.elem_type));
      }
    }
    ++n_kv_;
    return *this;
  }
  static size_t ScalarSize(GgufType t) {
    switch (t) {
      case GgufType::kUint8:
      case GgufType::kInt8:
      case GgufType::kBool:
        return 1;
      case GgufType::kUint16:
      case GgufType::kInt16:
        return 2;
      case GgufType::kUint32:
      case GgufType::kInt32:
      case GgufType::kFloat32:
        return 4;
      default:
        return 8;
    }
  }
  // Raw bytes appended to the metadata section, counted as `kvs` entries.
  GgufBuilder& RawKv(const std::vector<uint8_t>& bytes, uint64_t kvs) {
    kv_.insert(kv_.end(), bytes.begin(), bytes.end());
    n_kv_ += kvs;
    return *this;
  }

  // An F32 tensor with the given dims (ggml order) and contents 0, 1, 2, ...
  GgufBuilder& TensorF32(const std::string& name, std::vector<uint64_t> dims) {
    uint64_t n = 1;
    for (uint64_t d : dims) n *= d;
    std::vector<uint8_t> data(n * 4);
    for (uint64_t i = 0; i < n; ++i) {
      float f = static_cast<float>(i);
      std::memcpy(&data[i * 4], &f, 4);
    }
    return Tensor(name, dims, GgmlType::kF32, data);
  }

  GgufBuilder& Tensor(const std::string& name, std::vector<uint64_t> dims,
                      GgmlType type, const std::vector<uint8_t>& data) {
    Str(ti_, name);
    Put<uint32_t>(ti_, static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) Put<uint64_t>(ti_, d);
    Put<uint32_t>(ti_, static_cast<uint32_t>(type));
    while (data_.size() % alignment_ != 0) data_.push_back(0);
    Put<uint64_t>(ti_, data_.size());
    data_.insert(data_.end(), data.begin(), data.end());
    ++n_tensors_;
    return *this;
  }

  GgufBuilder& Alignment(uint32_t a) {
    alignment_ = a;
    return Uint32("general.alignment", a);
  }

  std::vector<uint8_t> Build() const {
    std::vector<uint8_t> out;
    out.insert(out.end(), {'G', 'G', 'U', 'F'});
    Put<uint32_t>(out, version_);
    Put<uint64_t>(out, n_tensors_);
    Put<uint64_t>(out, n_kv_);
    out.insert(out.end(), kv_.begin(), kv_.end());
    out.insert(out.end(), ti_.begin(), ti_.end());
    if (n_tensors_ > 0) {
      while (out.size() % alignment_ != 0) out.push_back(0);
      out.insert(out.end(), data_.begin(), data_.end());
    }
    return out;
  }

  template <typename T>
  static void Put(std::vector<uint8_t>& out, T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
  }
  static void Str(std::vector<uint8_t>& out, const std::string& s) {
    Put<uint64_t>(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
  }

 private:
  GgufBuilder& Scalar(const std::string& key, GgufType type, const void* v,
                      size_t n) {
    Key(key, type);
    const uint8_t* p = static_cast<const uint8_t*>(v);
    kv_.insert(kv_.end(), p, p + n);
    ++n_kv_;
    return *this;
  }
  void Key(const std::string& key, GgufType type) {
    Str(kv_, key);
    Put<uint32_t>(kv_, static_cast<uint32_t>(type));
  }

  uint32_t version_;
  uint32_t alignment_ = 32;
  uint64_t n_kv_ = 0;
  uint64_t n_tensors_ = 0;
  std::vector<uint8_t> kv_, ti_, data_;
};

// A complete, valid tiny Llama (F32 weights): 2 layers, hidden 8, 2 heads,
// 1 KV head, ffn 16, vocab 10. Callers may add keys before Build().
inline GgufBuilder TinyLlama(bool tied = true) {
  GgufBuilder b;
  b.String("general.architecture", "llama")
      .String("general.name", "tiny")
      .Uint32("llama.context_length", 64)
      .Uint32("llama.embedding_length", 8)
      .Uint32("llama.block_count", 2)
      .Uint32("llama.feed_forward_length", 16)
      .Uint32("llama.attention.head_count", 2)
      .Uint32("llama.attention.head_count_kv", 1)
      .Float32("llama.attention.layer_norm_rms_epsilon", 1e-5f)
      .Float32("llama.rope.freq_base", 10000.f)
      .String("tokenizer.ggml.model", "gpt2")
      .Uint32("tokenizer.ggml.bos_token_id", 1)
      .Uint32("tokenizer.ggml.eos_token_id", 2);
  b.TensorF32("token_embd.weight", {8, 10});
  b.TensorF32("output_norm.weight", {8});
  if (!tied) b.TensorF32("output.weight", {8, 10});
  for (int i = 0; i < 2; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    b.TensorF32(p + "attn_norm.weight", {8});
    b.TensorF32(p + "attn_q.weight", {8, 8});
    b.TensorF32(p + "attn_k.weight", {8, 4});
    b.TensorF32(p + "attn_v.weight", {8, 4});
    b.TensorF32(p + "attn_output.weight", {8, 8});
    b.TensorF32(p + "ffn_norm.weight", {8});
    b.TensorF32(p + "ffn_gate.weight", {8, 16});
    b.TensorF32(p + "ffn_up.weight", {8, 16});
    b.TensorF32(p + "ffn_down.weight", {16, 8});
  }
  return b;
}

}  // namespace tpserve::testing

#endif  // TPSERVE_TESTS_GGUF_BUILDER_H_
