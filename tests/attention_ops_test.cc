// The Attention op of every backend against the reference
// (kernels/reference_ops.h): mixed prefill and decode batches over paged,
// scattered blocks, grouped-query heads, both KV cache element types, long
// contexts, and the validation of bad batches. See backend_ops_test.cc for
// the other ops.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ggml_blocks.h"
#include "kernels/backend.h"
#include "kernels/reference_ops.h"
#include "tests/all_backends.h"

namespace tpserve {
namespace {

using testing::AllBackends;
using testing::NamedBackend;
using testing::RandomFloats;

// Attention against the reference (values of magnitude <= 1): float
// sums differ from the double ones by ~1e-6, and a last-bit difference in
// a softmax weight before its fp16 rounding can move that weight by one
// fp16 step (2^-11 relative): up to 2^-11 * weight * |v| per position.
constexpr float kAttentionTol = 1e-4f;

// The CUDA kernel's online softmax normalizes at the end instead of
// rounding each weight to fp16 (Backend::Attention allows it): up to
// 2^-12 |v| more.
float AttentionTolerance(const NamedBackend& nb) {
  return nb.name.rfind("cuda", 0) == 0 ? kAttentionTol + 2.5e-4f
                                       : kAttentionTol;
}

// A KV cache buffer of `layout.dtype` elements (KvCacheLayout), filled
// from floats (rounded to fp16 for kF16).
class KvBuffer {
 public:
  KvBuffer(const KvCacheLayout& layout, const std::vector<float>& values)
      : dtype_(layout.dtype), bytes_(static_cast<size_t>(layout.CacheBytes())) {
    for (size_t i = 0; i < values.size(); ++i) Set(i, values[i]);
  }
  void Set(size_t i, float f) {
    if (dtype_ == GgmlType::kF16) {
      const GgmlHalf h = Fp32ToFp16(f);
      std::memcpy(bytes_.data() + 2 * i, &h, 2);
    } else {
      std::memcpy(bytes_.data() + 4 * i, &f, 4);
    }
  }
  float Get(size_t i) const { return KvLoad(bytes_.data(), dtype_, i); }
  void* data() { return bytes_.data(); }
  // Elements [0, n) equal other's.
  bool SamePrefix(const KvBuffer& other, size_t n) const {
    const size_t b = n * (dtype_ == GgmlType::kF16 ? 2 : 4);
    return std::memcmp(bytes_.data(), other.bytes_.data(), b) == 0;
  }
  bool operator==(const KvBuffer& other) const {
    return bytes_ == other.bytes_;
  }

 private:
  GgmlType dtype_;
  std::vector<uint8_t> bytes_;
};

std::vector<float> Fp16Rounded(std::vector<float> v) {
  for (float& x : v) x = RoundToFp16(x);
  return v;
}

// ---- Attention --------------------------------------------------------------

// A mixed batch: sequence 0 prefills 5 tokens (positions 0..4), sequence 1
// decodes one token at position 9 over cache content written by earlier
// steps. Block size 4, so both cross blocks; the tables use scattered block
// ids; GQA with 3 query heads per KV head; a head_dim that is no SIMD width.
TEST(AttentionOpsTest, MixedPrefillDecode) {
  std::mt19937 rng(3);
  KvCacheLayout layout;
  layout.layers = 2;
  layout.num_blocks = 8;
  layout.block_size = 4;
  layout.kv_heads = 2;
  layout.head_dim = 20;
  const int64_t q_heads = 6, layer = 1, hd = layout.head_dim;
  const int64_t slot_floats = layout.kv_heads * hd;
  const std::vector<int32_t> table = {5, 2, 0, 7,
                                      3};  // seq0: 5 2; seq1: 0 7 3.
  const std::vector<int32_t> offsets = {0, 2, 5};
  const std::vector<int32_t> seq = {0, 0, 0, 0, 0, 1};
  const std::vector<int32_t> pos = {0, 1, 2, 3, 4, 9};
  const int64_t n = 6;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const std::vector<float> q = RandomFloats(n * q_heads * hd, rng, -2, 2);
  const std::vector<float> k = RandomFloats(n * slot_floats, rng, -2, 2);
  const std::vector<float> v = RandomFloats(n * slot_floats, rng);
  // Sequence 1's positions 0..8, written by earlier steps (so fp16 values).
  const std::vector<float> old_k =
      Fp16Rounded(RandomFloats(9 * slot_floats, rng, -2, 2));
  const std::vector<float> old_v =
      Fp16Rounded(RandomFloats(9 * slot_floats, rng));
  // What the cache holds of this step's k and v.
  const std::vector<float> k16 = Fp16Rounded(k), v16 = Fp16Rounded(v);
  const size_t cache_elements =
      layout.layers * layout.num_blocks * layout.BlockElements();
  const std::vector<float> noise = RandomFloats(cache_elements, rng, -9, 9);
  auto slot = [&](int64_t s, int64_t p) {
    const int64_t block = table[offsets[s] + p / layout.block_size];
    return ((layer * layout.num_blocks + block) * layout.block_size +
            p % layout.block_size) *
           slot_floats;
  };

  // Dense attention over each sequence's keys/values, in double.
  std::vector<float> want(n * q_heads * hd);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < q_heads; ++h) {
      const int64_t kvh = h / (q_heads / layout.kv_heads);
      auto key = [&](int64_t p) -> const float* {
        if (seq[t] == 1 && p < 9)
          return old_k.data() + p * slot_floats + kvh * hd;
        const int64_t tok = seq[t] == 1 ? 5 : p;
        return k16.data() + tok * slot_floats + kvh * hd;
      };
      auto val = [&](int64_t p) -> const float* {
        if (seq[t] == 1 && p < 9)
          return old_v.data() + p * slot_floats + kvh * hd;
        const int64_t tok = seq[t] == 1 ? 5 : p;
        return v16.data() + tok * slot_floats + kvh * hd;
      };
      std::vector<double> sc(pos[t] + 1);
      double mx = -1e300, sum = 0;
      for (int64_t p = 0; p <= pos[t]; ++p) {
        double d = 0;
        for (int64_t i = 0; i < hd; ++i) {
          d += double{RoundToFp16(q[(t * q_heads + h) * hd + i])} * key(p)[i];
        }
        sc[p] = d * scale;
        mx = std::max(mx, sc[p]);
      }
      for (double& s : sc) sum += (s = std::exp(s - mx));
      for (double& s : sc) s = RoundToFp16(static_cast<float>(s / sum));
      for (int64_t i = 0; i < hd; ++i) {
        double o = 0;
        for (int64_t p = 0; p <= pos[t]; ++p) o += sc[p] * val(p)[i];
        want[(t * q_heads + h) * hd + i] = static_cast<float>(o);
      }
    }
  }

  // seq0's five tokens are its prompt (llama.cpp's batched-prompt order),
  // seq1's token at 9 was generated (the one-token order).
  const std::vector<int32_t> prompt_len = {5, 4};
  AttentionBatch batch{n, seq, pos, table, offsets, prompt_len};
  for (NamedBackend& nb : AllBackends()) {
    // The backend's own cache type, and F32 where it takes that too.
    std::vector<GgmlType> types = {nb.backend->KvCacheType()};
    if (types[0] == GgmlType::kF16 && nb.name.rfind("cuda", 0) != 0) {
      types.push_back(GgmlType::kF32);
    }
    for (GgmlType type : types) {
      KvCacheLayout typed = layout;
      typed.dtype = type;
      const KvBuffer initial(typed, noise);
      for (bool alias : {false, true}) {
        SCOPED_TRACE(absl::StrCat(nb.name, " ", GgmlTypeName(type),
                                  alias ? " out aliases q" : ""));
        KvBuffer kc = initial, vc = initial;
        for (int64_t p = 0; p < 9; ++p) {
          for (int64_t i = 0; i < slot_floats; ++i) {
            kc.Set(slot(1, p) + i, old_k[p * slot_floats + i]);
            vc.Set(slot(1, p) + i, old_v[p * slot_floats + i]);
          }
        }
        std::vector<float> out(want.size(), NAN);
        std::vector<float> qin = q;
        float* o = alias ? qin.data() : out.data();
        ASSERT_TRUE(nb.backend
                        ->Attention(batch, typed, kc.data(), vc.data(), layer,
                                    qin.data(), k.data(), v.data(), q_heads,
                                    scale, o)
                        .ok());
        const float tol = AttentionTolerance(nb);
        for (size_t i = 0; i < want.size(); ++i) {
          ASSERT_NEAR(o[i], want[i], tol) << "element " << i;
        }
        // The new keys/values sit in their slots as fp16 values; layer 0 is
        // untouched.
        for (int64_t t = 0; t < n; ++t) {
          for (int64_t i = 0; i < slot_floats; ++i) {
            ASSERT_EQ(kc.Get(slot(seq[t], pos[t]) + i),
                      k16[t * slot_floats + i]);
            ASSERT_EQ(vc.Get(slot(seq[t], pos[t]) + i),
                      v16[t * slot_floats + i]);
          }
        }
        EXPECT_TRUE(
            kc.SamePrefix(initial, layout.num_blocks * layout.BlockElements()));
      }

      // Invalid batches are refused before anything is written.
      KvBuffer kc = initial, vc = initial;
      std::vector<float> out(want.size());
      auto attend = [&](const AttentionBatch& b, int64_t qh) {
        return nb.backend->Attention(b, typed, kc.data(), vc.data(), layer,
                                     q.data(), k.data(), v.data(), qh, scale,
                                     out.data());
      };
      const std::vector<int32_t> bad_table = {5, 2, 0, 8, 3};  // 8 >= 8.
      EXPECT_EQ(attend({n, seq, pos, bad_table, offsets, {}}, q_heads).code(),
                absl::StatusCode::kInvalidArgument);
      const std::vector<int32_t> far = {0, 1, 2, 3, 4, 12};  // Past 3 blocks.
      EXPECT_EQ(attend({n, seq, far, table, offsets, {}}, q_heads).code(),
                absl::StatusCode::kInvalidArgument);
      const std::vector<int32_t> bad_seq = {0, 0, 0, 0, 0, 2};
      EXPECT_EQ(attend({n, bad_seq, pos, table, offsets, {}}, q_heads).code(),
                absl::StatusCode::kInvalidArgument);
      const std::vector<int32_t> three_prompts = {5, 4, 1};  // 2 sequences.
      EXPECT_EQ(
          attend({n, seq, pos, table, offsets, three_prompts}, q_heads).code(),
          absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(attend(batch, 5).code(), absl::StatusCode::kInvalidArgument);
      KvCacheLayout q8 = typed;
      q8.dtype = GgmlType::kQ8_0;
      EXPECT_EQ(
          nb.backend
              ->Attention(batch, q8, kc.data(), vc.data(), layer, q.data(),
                          k.data(), v.data(), q_heads, scale, out.data())
              .code(),
          absl::StatusCode::kInvalidArgument);
      EXPECT_TRUE(kc == initial);
    }
  }
}

// Long contexts: decode tokens at positions 700 and 300 (the CUDA kernel
// splits their positions across CTAs and merges the partial softmaxes) and
// a 40-token prefill (more rows than one CUDA tile), against the reference.
TEST(AttentionOpsTest, LongContextSplits) {
  std::mt19937 rng(21);
  KvCacheLayout layout;
  layout.layers = 1;
  layout.num_blocks = 96;
  layout.block_size = 16;
  layout.kv_heads = 2;
  layout.head_dim = 64;
  const int64_t q_heads = 8, hd = layout.head_dim;
  // seq0: blocks 0..44 (decode at 700), seq1: 45..63 (decode at 300),
  // seq2: 64..66 (prefill 0..39).
  std::vector<int32_t> table;
  for (int32_t b = 0; b < 67; ++b) table.push_back(b);
  const std::vector<int32_t> offsets = {0, 45, 64, 67};
  std::vector<int32_t> seq = {0, 1}, pos = {700, 300};
  for (int32_t p = 0; p < 40; ++p) {
    seq.push_back(2);
    pos.push_back(p);
  }
  const int64_t n = static_cast<int64_t>(seq.size());
  const size_t cache_elements = layout.num_blocks * layout.BlockElements();
  // Earlier steps' keys and values: fp16 values.
  const std::vector<float> kc0 =
      Fp16Rounded(RandomFloats(cache_elements, rng, -2, 2));
  const std::vector<float> vc0 = Fp16Rounded(RandomFloats(cache_elements, rng));
  const std::vector<float> q = RandomFloats(n * q_heads * hd, rng, -1, 1);
  const std::vector<float> k =
      RandomFloats(n * layout.kv_heads * hd, rng, -2, 2);
  const std::vector<float> v = RandomFloats(n * layout.kv_heads * hd, rng);
  const float scale = 1.0f / 8;
  // seq0 and seq1 decode generated tokens, seq2's 40 tokens are a prompt.
  const std::vector<int32_t> prompt_len = {600, 0, 40};
  const AttentionBatch batch{n, seq, pos, table, offsets, prompt_len};
  for (NamedBackend& nb : AllBackends()) {
    if (nb.name == "reference") continue;  // Not compared with itself.
    SCOPED_TRACE(nb.name);
    KvCacheLayout typed = layout;
    typed.dtype = nb.backend->KvCacheType();
    KvBuffer kw(typed, kc0), vw(typed, vc0);
    std::vector<float> want(q.size());
    ASSERT_TRUE(AttentionReference(batch, typed, kw.data(), vw.data(), 0,
                                   q.data(), k.data(), v.data(), q_heads, scale,
                                   want.data())
                    .ok());
    KvBuffer kc(typed, kc0), vc(typed, vc0);
    std::vector<float> out(q.size(), NAN);
    ASSERT_TRUE(nb.backend
                    ->Attention(batch, typed, kc.data(), vc.data(), 0, q.data(),
                                k.data(), v.data(), q_heads, scale, out.data())
                    .ok());
    const float tol = AttentionTolerance(nb);
    for (size_t i = 0; i < out.size(); ++i) {
      ASSERT_NEAR(out[i], want[i], tol) << "element " << i;
    }
    EXPECT_TRUE(kc == kw);
    EXPECT_TRUE(vc == vw);
  }
}

}  // namespace
}  // namespace tpserve
