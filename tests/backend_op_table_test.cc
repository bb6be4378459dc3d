// The op-case table, in the style of llama.cpp's test-backend-ops: one row
// per (op, shape, weight or cache type, tolerance), run on every compiled
// backend against the reference functions of kernels/reference_ops.h (the
// CPU backend at 1-3 threads always; the CUDA backend, both matmul paths,
// when it is compiled and a device is present, else those rows skip).
// The reference backend is not among the compared backends: its ops are the
// reference functions themselves, and no row compares a function with
// itself. Refused inputs are a second table that every backend, the
// reference included (and the CUDA backend itself, given host pointers it
// must not touch), refuses with the same code.
//
// Tolerance: max |got - want| / (1 + |want|) <= tol (0: bit for bit). For
// MatMul the scale is instead sum_c |w_c x_c|, the condition-free size of
// the dot product, plus the backend's bf16 GEMM error (matmul_rel_err);
// backends that quantize activations are compared with the Q8 reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/dequantize.h"
#include "common/ggml_blocks.h"
#include "kernels/backend.h"
#include "kernels/reference_ops.h"
#include "tests/all_backends.h"

namespace tpserve {
namespace {

using testing::AllBackends;
using testing::NamedBackend;
using testing::RandomFloats;
using testing::RandomWeights;

enum class Op {
  kEmbeddingGather,
  kRmsNorm,
  kMatMul,
  kRope,
  kSiluMul,
  kAdd,
  kAddBias,
  kGatherRows,
  kAttention,
};
constexpr Op kAllOps[] = {
    Op::kEmbeddingGather, Op::kRmsNorm, Op::kMatMul,  Op::kRope,
    Op::kSiluMul,         Op::kAdd,     Op::kAddBias, Op::kGatherRows,
    Op::kAttention};

const char* OpName(Op op) {
  switch (op) {
    case Op::kEmbeddingGather:
      return "EmbeddingGather";
    case Op::kRmsNorm:
      return "RmsNorm";
    case Op::kMatMul:
      return "MatMul";
    case Op::kRope:
      return "Rope";
    case Op::kSiluMul:
      return "SiluMul";
    case Op::kAdd:
      return "Add";
    case Op::kAddBias:
      return "AddBias";
    case Op::kGatherRows:
      return "GatherRows";
    case Op::kAttention:
      return "Attention";
  }
  return "?";
}

// RoPE variants of a Rope row (shape.variant).
enum RopeVariant { kNormal, kNeox, kPartial, kYarn, kFreqFactors };

// Shape fields by op:
//   EmbeddingGather: a = table rows, b = cols, c = ids (row_begin = 100)
//   RmsNorm: a = rows, b = cols (variant 1: y aliases x)
//   MatMul: a = rows, b = cols, c = n (variant: bytes of row padding)
//   Rope: a = n, b = heads, c = head_dim, variant = RopeVariant
//   SiluMul, Add: a = n
//   AddBias: a = rows, b = cols
//   GatherRows: a = rows of x, b = cols, c = rows gathered
//   Attention: a = head_dim, b = kv_heads, c = q_heads (type: KV dtype)
struct Shape {
  int64_t a = 0, b = 0, c = 0;
  int variant = 0;
};

struct OpCase {
  Op op;
  Shape shape;
  GgmlType type;  // Weights (MatMul, EmbeddingGather), KV cache (Attention).
  double tol;
};

constexpr GgmlType kWeightTypes[] = {
    GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16, GgmlType::kQ8_0,
    GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1,
    GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K};

std::vector<OpCase> Table() {
  constexpr GgmlType kF32 = GgmlType::kF32;
  std::vector<OpCase> t;
  for (GgmlType type : kWeightTypes) {
    const int64_t bs = GetGgmlType(type).block_size;
    const int64_t c1 = bs == 1 ? 33 : bs == 32 ? 96 : 256;
    const int64_t c2 = bs == 1 ? 577 : bs == 32 ? 1536 + 256 : 512;
    // Odd rows, n with remainders against the CPU's 4-row groups, decode,
    // and a column slice's row padding.
    t.push_back({Op::kMatMul, {17, c1, 5, 0}, type, 1e-5});
    t.push_back({Op::kMatMul, {33, c2, 1, 6}, type, 1e-5});
    t.push_back({Op::kMatMul, {3, c1, 33, 0}, type, 1e-5});
    // Vocabulary-parallel: ids on both sides of this rank's rows.
    t.push_back({Op::kEmbeddingGather, {10, c2, 7}, type, 0});
  }
  t.push_back({Op::kRmsNorm, {3, 577, 0, 1}, kF32, 1e-5});
  t.push_back({Op::kRmsNorm, {1, 1, 0, 0}, kF32, 1e-5});
  t.push_back({Op::kRmsNorm, {5, 4097, 0, 0}, kF32, 1e-5});
  // Float angles (ggml's) drift by ~(2i + 8) 2^-24 relative: at the
  // positions used here (< 100) that is below 1e-3.
  for (int v : {kNormal, kNeox, kPartial, kYarn, kFreqFactors}) {
    t.push_back({Op::kRope, {4, 3, v == kPartial ? 80 : 64, v}, kF32, 1e-3});
  }
  t.push_back({Op::kSiluMul, {1731}, kF32, 1e-6});
  t.push_back({Op::kSiluMul, {100003}, kF32, 1e-6});
  t.push_back({Op::kAdd, {1731}, kF32, 0});
  t.push_back({Op::kAdd, {100003}, kF32, 0});
  t.push_back({Op::kAddBias, {1, 64}, kF32, 0});
  t.push_back({Op::kAddBias, {5, 384}, kF32, 0});
  t.push_back({Op::kAddBias, {0, 8}, kF32, 0});
  t.push_back({Op::kGatherRows, {1, 49152, 1}, kF32, 0});
  t.push_back({Op::kGatherRows, {9, 577, 5}, kF32, 0});
  t.push_back({Op::kGatherRows, {4, 3, 0}, kF32, 0});
  // See attention_ops_test.cc for the attention tolerance.
  t.push_back({Op::kAttention, {64, 2, 6}, GgmlType::kF32, 1e-4});
  t.push_back({Op::kAttention, {20, 1, 1}, GgmlType::kF32, 1e-4});
  t.push_back({Op::kAttention, {64, 2, 6}, GgmlType::kF16, 1e-4});
  return t;
}

const std::vector<OpCase>& Cases() {
  static const auto* cases = new std::vector<OpCase>(Table());
  return *cases;
}

// The compared backends (AllBackends() less the reference), made once.
const char* const kBackendNames[] = {"cpu/1", "cpu/2", "cpu/3", "cuda",
                                     "cuda/gemv"};

std::vector<NamedBackend>& Backends() {
  static auto* backends = new std::vector<NamedBackend>(AllBackends());
  return *backends;
}

NamedBackend* FindBackend(const std::string& name) {
  for (NamedBackend& nb : Backends()) {
    if (nb.name == name) return &nb;
  }
  return nullptr;
}

// max |got - want| / (1 + |want|) <= tol, or over `scale[i]` when given.
void ExpectClose(const std::vector<float>& got, const std::vector<float>& want,
                 double tol, const std::vector<double>* scale = nullptr) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const double s = scale ? (*scale)[i] + 1e-30 : 1 + std::fabs(want[i]);
    const double err = std::fabs(double{got[i]} - want[i]);
    if (tol == 0 ? std::memcmp(&got[i], &want[i], 4) != 0 : !(err <= tol * s)) {
      ADD_FAILURE() << "element " << i << " got " << got[i] << " want "
                    << want[i] << " err " << err << " > " << tol * s;
      return;
    }
  }
}

RopeParams MakeRope(int variant, int64_t head_dim) {
  RopeParams p;
  p.head_dim = head_dim;
  p.rope_dim = head_dim;
  p.neox = variant != kNormal && variant != kFreqFactors;
  if (variant == kPartial) p.rope_dim = 32;
  if (variant == kYarn) {
    p.theta = 1000000;
    p.freq_scale = 0.25;
    p.ext_factor = 1;
    p.original_max_positions = 4096;
  }
  if (variant == kFreqFactors) {
    p.theta = 500000;
    for (int64_t i = 0; i < p.rope_dim / 2; ++i) {
      p.freq_factors.push_back(1.0f + static_cast<float>(i % 8));
    }
  }
  return p;
}

void RunMatMul(const OpCase& oc, NamedBackend& nb, std::mt19937& rng) {
  const Shape& s = oc.shape;
  const size_t stride = *GgmlRowBytes(oc.type, s.b) + s.variant;
  std::vector<uint8_t> data = RandomWeights(oc.type, s.a, s.b, stride, rng);
  const WeightMatrix w{oc.type, s.a, s.b, data.data(), stride};
  std::vector<float> x = RandomFloats(s.c * s.b, rng);
  // An all-zero activation block (amax 0) and an outlier.
  std::fill(x.begin(), x.begin() + std::min<int64_t>(s.b, 32), 0.0f);
  x.back() = 7.5f;
  std::vector<float> want(s.c * s.a), got(s.c * s.a, NAN);
  ASSERT_TRUE((nb.quantizes_acts
                   ? MatMulReferenceQ8Activations(w, x.data(), s.c, want.data())
                   : MatMulReference(w, x.data(), s.c, want.data()))
                  .ok());
  // sum_c |w x|: the reference over |w| (decoded) and |x|.
  std::vector<float> wabs(s.a * s.b);
  const size_t packed = *GgmlRowBytes(oc.type, s.b);
  for (int64_t r = 0; r < s.a; ++r) {
    ASSERT_TRUE(DequantizeRow(oc.type, data.data() + r * stride, packed, s.b,
                              wabs.data() + r * s.b)
                    .ok());
  }
  for (float& f : wabs) f = std::fabs(f);
  std::vector<float> xabs = x, abs_sum(s.c * s.a);
  for (float& f : xabs) f = std::fabs(f);
  const WeightMatrix wa{GgmlType::kF32, s.a, s.b,
                        reinterpret_cast<const uint8_t*>(wabs.data()),
                        static_cast<size_t>(s.b) * 4};
  ASSERT_TRUE(MatMulReference(wa, xabs.data(), s.c, abs_sum.data()).ok());
  const std::vector<double> scale(abs_sum.begin(), abs_sum.end());
  ASSERT_TRUE(nb.backend->MatMul(w, x.data(), s.c, got.data()).ok());
  ExpectClose(got, want, oc.tol + nb.matmul_rel_err, &scale);
}

void RunAttention(const OpCase& oc, NamedBackend& nb, std::mt19937& rng) {
  if (oc.type != GgmlType::kF32 && nb.backend->KvCacheType() != oc.type) {
    GTEST_SKIP() << nb.name << " keeps its KV cache in "
                 << GgmlTypeName(nb.backend->KvCacheType());
  }
  KvCacheLayout layout;
  layout.layers = 2;
  layout.num_blocks = 8;
  layout.block_size = 4;
  layout.head_dim = oc.shape.a;
  layout.kv_heads = oc.shape.b;
  layout.dtype = oc.type;
  const int64_t q_heads = oc.shape.c, hd = layout.head_dim;
  // seq0 (blocks 5 2): a 5-token prompt; seq1 (blocks 0 7 3): a decode
  // at position 9 over positions 0..8 already in the cache.
  const std::vector<int32_t> table = {5, 2, 0, 7, 3}, offsets = {0, 2, 5};
  const std::vector<int32_t> seq = {0, 0, 0, 0, 0, 1};
  const std::vector<int32_t> pos = {0, 1, 2, 3, 4, 9};
  const std::vector<int32_t> prompt_len = {5, 0};
  const int64_t n = 6, slot = layout.kv_heads * hd;
  const AttentionBatch batch{n, seq, pos, table, offsets, prompt_len};
  const std::vector<float> q = RandomFloats(n * q_heads * hd, rng, -2, 2);
  const std::vector<float> k = RandomFloats(n * slot, rng, -2, 2);
  const std::vector<float> v = RandomFloats(n * slot, rng);
  const size_t elems =
      layout.layers * layout.num_blocks * layout.BlockElements();
  const std::vector<float> init = RandomFloats(elems, rng);
  const size_t bytes = static_cast<size_t>(layout.CacheBytes());
  std::vector<uint8_t> kc(bytes), vc(bytes);
  for (size_t i = 0; i < elems; ++i) {
    KvStore(kc.data(), layout.dtype, i, init[i]);
    KvStore(vc.data(), layout.dtype, i, -init[i]);
  }
  std::vector<uint8_t> kw = kc, vw = vc;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> want(q.size()), got(q.size(), NAN);
  ASSERT_TRUE(AttentionReference(batch, layout, kw.data(), vw.data(), 1,
                                 q.data(), k.data(), v.data(), q_heads, scale,
                                 want.data())
                  .ok());
  ASSERT_TRUE(nb.backend
                  ->Attention(batch, layout, kc.data(), vc.data(), 1, q.data(),
                              k.data(), v.data(), q_heads, scale, got.data())
                  .ok());
  // The CUDA kernel's online softmax (Backend::Attention allows it).
  const double tol = oc.tol + (nb.name.rfind("cuda", 0) == 0 ? 2.5e-4 : 0);
  ExpectClose(got, want, tol);
  EXPECT_TRUE(kc == kw) << "K cache";
  EXPECT_TRUE(vc == vw) << "V cache";
}

void RunCase(const OpCase& oc, NamedBackend& nb) {
  std::mt19937 rng(1234);
  const Shape& s = oc.shape;
  Backend& b = *nb.backend;
  switch (oc.op) {
    case Op::kMatMul:
      return RunMatMul(oc, nb, rng);
    case Op::kAttention:
      return RunAttention(oc, nb, rng);
    case Op::kEmbeddingGather: {
      const size_t stride = *GgmlRowBytes(oc.type, s.b);
      std::vector<uint8_t> data = RandomWeights(oc.type, s.a, s.b, stride, rng);
      const WeightMatrix table{oc.type, s.a, s.b, data.data(), stride};
      const int64_t begin = 100;
      std::vector<int32_t> ids;
      for (int64_t i = 0; i < s.c; ++i) {
        ids.push_back(static_cast<int32_t>(begin - 1 + (i * 7) % (s.a + 2)));
      }
      ids.push_back(-1);
      std::vector<float> want(ids.size() * s.b), got(want.size(), NAN);
      ASSERT_TRUE(
          EmbeddingGatherReference(table, begin, ids, want.data()).ok());
      ASSERT_TRUE(b.EmbeddingGather(table, begin, ids, got.data()).ok());
      return ExpectClose(got, want, oc.tol);
    }
    case Op::kRmsNorm: {
      const std::vector<float> x = RandomFloats(s.a * s.b, rng, -3, 3);
      const std::vector<float> w = RandomFloats(s.b, rng);
      std::vector<float> want(x.size()), got(x.size(), NAN);
      ASSERT_TRUE(
          RmsNormReference(x.data(), w.data(), want.data(), s.a, s.b, 1e-5f)
              .ok());
      if (s.variant == 1) {
        got = x;  // In place.
        ASSERT_TRUE(
            b.RmsNorm(got.data(), w.data(), got.data(), s.a, s.b, 1e-5f).ok());
      } else {
        ASSERT_TRUE(
            b.RmsNorm(x.data(), w.data(), got.data(), s.a, s.b, 1e-5f).ok());
      }
      return ExpectClose(got, want, oc.tol);
    }
    case Op::kRope: {
      const RopeParams p = MakeRope(s.variant, s.c);
      std::vector<int32_t> pos;
      for (int64_t t = 0; t < s.a; ++t) pos.push_back((t * 37) % 97);
      std::vector<float> want = RandomFloats(s.a * s.b * s.c, rng);
      std::vector<float> got = want;
      ASSERT_TRUE(RopeReference(want.data(), s.a, s.b, pos, p).ok());
      ASSERT_TRUE(b.Rope(got.data(), s.a, s.b, pos, p).ok());
      return ExpectClose(got, want, oc.tol);
    }
    case Op::kSiluMul:
    case Op::kAdd: {
      const std::vector<float> x = RandomFloats(s.a, rng, -3, 3);
      const std::vector<float> y = RandomFloats(s.a, rng, -3, 3);
      std::vector<float> want = x, got = x;
      if (oc.op == Op::kAdd) {
        ASSERT_TRUE(AddReference(want.data(), y.data(), s.a).ok());
        ASSERT_TRUE(b.Add(got.data(), y.data(), s.a).ok());
      } else {
        ASSERT_TRUE(SiluMulReference(want.data(), y.data(), s.a).ok());
        ASSERT_TRUE(b.SiluMul(got.data(), y.data(), s.a).ok());
      }
      return ExpectClose(got, want, oc.tol);
    }
    case Op::kAddBias: {
      const std::vector<float> x = RandomFloats(s.a * s.b, rng, -3, 3);
      const std::vector<float> bias = RandomFloats(s.b, rng);
      std::vector<float> want = x, got = x;
      ASSERT_TRUE(AddBiasReference(want.data(), bias.data(), s.a, s.b).ok());
      ASSERT_TRUE(b.AddBias(got.data(), bias.data(), s.a, s.b).ok());
      return ExpectClose(got, want, oc.tol);
    }
    case Op::kGatherRows: {
      const std::vector<float> x = RandomFloats(s.a * s.b, rng);
      std::vector<int32_t> rows;
      for (int64_t i = 0; i < s.c; ++i) {
        rows.push_back(
            static_cast<int32_t>(((s.a - 1 - 2 * i) % s.a + s.a) % s.a));
      }
      std::vector<float> want(s.c * s.b), got(want.size(), NAN);
      ASSERT_TRUE(GatherRowsReference(x.data(), s.b, rows, want.data()).ok());
      ASSERT_TRUE(b.GatherRows(x.data(), s.b, rows, got.data()).ok());
      return ExpectClose(got, want, oc.tol);
    }
  }
}

std::string ShapeName(const OpCase& oc) {
  return absl::StrCat(OpName(oc.op), "_", GgmlTypeName(oc.type), "_",
                      oc.shape.a, "x", oc.shape.b, "x", oc.shape.c, "_",
                      oc.shape.variant);
}

// Test names: letters, digits and underscores only.
std::string Sanitize(std::string s) {
  for (char& ch : s) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return s;
}

using CaseParam = std::tuple<size_t, const char*>;

class OpTableTest : public ::testing::TestWithParam<CaseParam> {};

TEST_P(OpTableTest, MatchesReference) {
  const auto [row, backend] = GetParam();
  const OpCase& oc = Cases()[row];
  NamedBackend* nb = FindBackend(backend);
  if (nb == nullptr) {
    GTEST_SKIP() << backend << " is not built or has no device here";
  }
  ASSERT_NE(nb->name, "reference") << "would compare the reference with itself";
  SCOPED_TRACE(absl::StrCat(ShapeName(oc), " on ", nb->name));
  RunCase(oc, *nb);
}

INSTANTIATE_TEST_SUITE_P(
    Ops, OpTableTest,
    ::testing::Combine(::testing::Range(size_t{0}, Cases().size()),
                       ::testing::ValuesIn(kBackendNames)),
    [](const ::testing::TestParamInfo<CaseParam>& info) {
      return Sanitize(absl::StrCat(ShapeName(Cases()[std::get<0>(info.param)]),
                                   "_", std::get<1>(info.param)));
    });

// Every op is in the table, MatMul and EmbeddingGather with every weight
// type, and no compared backend is the reference.
TEST(OpTableCoverageTest, EveryOpAndTypeNoSelfComparison) {
  for (Op op : kAllOps) {
    EXPECT_TRUE(std::any_of(Cases().begin(), Cases().end(),
                            [&](const OpCase& c) { return c.op == op; }))
        << OpName(op);
  }
  for (GgmlType type : kWeightTypes) {
    for (Op op : {Op::kMatMul, Op::kEmbeddingGather}) {
      EXPECT_TRUE(std::any_of(
          Cases().begin(), Cases().end(),
          [&](const OpCase& c) { return c.op == op && c.type == type; }))
          << OpName(op) << " " << GgmlTypeName(type);
    }
  }
  for (const char* name : kBackendNames) EXPECT_STRNE(name, "reference");
}

// ---- Refused inputs ---------------------------------------------------------

struct Refused {
  std::string what;
  absl::StatusCode code;
  std::function<absl::Status(Backend&)> call;
};

std::vector<Refused> RefusedTable() {
  // Host buffers: a backend must refuse before it touches any of them.
  static std::vector<float> f(4096);
  static std::vector<uint8_t> wd(4096);
  static std::vector<int32_t> one = {0}, two = {0, 1}, neg = {0, -1};
  float* x = f.data();
  const WeightMatrix w{GgmlType::kQ4_0, 2, 32, wd.data(), 18};
  RopeParams rp;
  rp.head_dim = rp.rope_dim = 64;
  auto rope = [=](RopeParams p) {
    return [=](Backend& b) { return b.Rope(x, 1, 1, one, p); };
  };
  KvCacheLayout kv;
  kv.layers = 1;
  kv.num_blocks = 2;
  kv.block_size = 4;
  kv.kv_heads = 1;
  kv.head_dim = 8;
  static std::vector<int32_t> blocks = {0, 1}, offs = {0, 2}, pos = {0},
                              far = {8}, bad_block = {0, 2}, seq1 = {1};
  const AttentionBatch ab{1, one, pos, blocks, offs, {}};
  auto attend = [=](AttentionBatch batch, KvCacheLayout l, int64_t layer = 0,
                    int64_t q_heads = 1) {
    return [=](Backend& b) {
      return b.Attention(batch, l, x, x + 64, layer, x, x, x, q_heads, 1, x);
    };
  };
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  std::vector<Refused> t = {
      {"gather_neg_row", kInvalid,
       [=](Backend& b) { return b.GatherRows(x, 4, neg, x + 64); }},
      {"gather_cols_0", kInvalid,
       [=](Backend& b) { return b.GatherRows(x, 0, one, x + 64); }},
      {"gather_null_out", kInvalid,
       [=](Backend& b) { return b.GatherRows(x, 4, one, nullptr); }},
      {"embed_null_out", kInvalid,
       [=](Backend& b) { return b.EmbeddingGather(w, 0, one, nullptr); }},
      {"rmsnorm_rows_neg", kInvalid,
       [=](Backend& b) { return b.RmsNorm(x, x, x, -1, 4, 1e-5f); }},
      {"rmsnorm_cols_0", kInvalid,
       [=](Backend& b) { return b.RmsNorm(x, x, x, 1, 0, 1e-5f); }},
      {"rmsnorm_eps_0", kInvalid,
       [=](Backend& b) { return b.RmsNorm(x, x, x, 1, 4, 0.0f); }},
      {"rmsnorm_null_w", kInvalid,
       [=](Backend& b) { return b.RmsNorm(x, nullptr, x, 1, 4, 1e-5f); }},
      {"matmul_cols_not_blocks", kInvalid,
       [=](Backend& b) {
         return b.MatMul({GgmlType::kQ4_0, 2, 48, wd.data(), 40}, x, 1, x);
       }},
      {"matmul_short_stride", kInvalid,
       [=](Backend& b) {
         return b.MatMul({GgmlType::kQ4_0, 2, 32, wd.data(), 17}, x, 1, x);
       }},
      {"matmul_null_weights", kInvalid,
       [=](Backend& b) {
         return b.MatMul({GgmlType::kQ4_0, 2, 32, nullptr, 18}, x, 1, x);
       }},
      {"matmul_n_neg", kInvalid,
       [=](Backend& b) { return b.MatMul(w, x, -1, x); }},
      {"matmul_null_x", kInvalid,
       [=](Backend& b) { return b.MatMul(w, nullptr, 1, x); }},
      {"matmul_q2_k", absl::StatusCode::kUnimplemented,
       [=](Backend& b) {
         return b.MatMul({GgmlType::kQ2_K, 2, 256, wd.data(), 84}, x, 1, x);
       }},
      {"silu_null", kInvalid,
       [=](Backend& b) { return b.SiluMul(x, nullptr, 4); }},
      {"silu_n_neg", kInvalid, [=](Backend& b) { return b.SiluMul(x, x, -1); }},
      {"add_null", kInvalid, [=](Backend& b) { return b.Add(nullptr, x, 4); }},
      {"add_n_neg", kInvalid, [=](Backend& b) { return b.Add(x, x, -1); }},
      {"addbias_rows_neg", kInvalid,
       [=](Backend& b) { return b.AddBias(x, x, -1, 8); }},
      {"addbias_cols_0", kInvalid,
       [=](Backend& b) { return b.AddBias(x, x, 1, 0); }},
      {"addbias_null", kInvalid,
       [=](Backend& b) { return b.AddBias(x, nullptr, 1, 8); }},
      {"rope_positions", kInvalid,
       [=](Backend& b) { return b.Rope(x, 1, 1, two, rp); }},
      {"rope_heads_0", kInvalid,
       [=](Backend& b) { return b.Rope(x, 1, 0, one, rp); }},
      {"rope_null_x", kInvalid,
       [=](Backend& b) { return b.Rope(nullptr, 1, 1, one, rp); }},
  };
  std::vector<RopeParams> bad(7, rp);
  bad[0].rope_dim = 63;
  bad[1].freq_factors = {1, 2};  // Not rope_dim / 2 of them.
  bad[2].freq_factors.assign(32, 1);
  bad[2].freq_factors[3] = 0;
  bad[3].freq_scale = 0;
  bad[4].ext_factor = 1;  // YaRN without an original context.
  bad[5].attn_factor = NAN;
  bad[6].rope_dim = 66;  // > head_dim.
  for (size_t i = 0; i < bad.size(); ++i) {
    t.push_back({absl::StrCat("rope_params_", i), kInvalid, rope(bad[i])});
  }
  KvCacheLayout no_heads = kv, f8 = kv;
  no_heads.kv_heads = 0;
  f8.dtype = GgmlType::kQ8_0;
  t.push_back({"attn_layout", kInvalid, attend(ab, no_heads)});
  t.push_back({"attn_dtype", kInvalid, attend(ab, f8)});
  t.push_back({"attn_layer", kInvalid, attend(ab, kv, 1)});
  t.push_back({"attn_q_heads", kInvalid, attend(ab, kv, 0, 0)});
  t.push_back({"attn_block_id", kInvalid,
               attend({1, one, pos, bad_block, offs, {}}, kv)});
  t.push_back({"attn_pos_outside", kInvalid,
               attend({1, one, far, blocks, offs, {}}, kv)});
  t.push_back(
      {"attn_seq", kInvalid, attend({1, seq1, pos, blocks, offs, {}}, kv)});
  t.push_back({"attn_prompt_len", kInvalid,
               attend({1, one, pos, blocks, offs, two}, kv)});
  t.push_back({"attn_null_q", kInvalid, [=](Backend& b) {
                 return b.Attention(ab, kv, x, x + 64, 0, nullptr, x, x, 1, 1,
                                    x);
               }});
  return t;
}

const std::vector<Refused>& RefusedCases() {
  static const auto* cases = new std::vector<Refused>(RefusedTable());
  return *cases;
}

class RefusedTest : public ::testing::TestWithParam<CaseParam> {};

TEST_P(RefusedTest, EveryBackendRefuses) {
  const auto [row, backend] = GetParam();
  const Refused& rc = RefusedCases()[row];
  NamedBackend* nb = FindBackend(backend);
  if (nb == nullptr) {
    GTEST_SKIP() << backend << " is not built or has no device here";
  }
  for (Backend* b : {nb->backend.get(), nb->unstaged}) {
    EXPECT_EQ(rc.call(*b).code(), rc.code) << rc.what << " on " << nb->name;
  }
}

const char* const kAllBackendNames[] = {"reference", "cpu/1", "cpu/2",
                                        "cpu/3",     "cuda",  "cuda/gemv"};

INSTANTIATE_TEST_SUITE_P(
    Ops, RefusedTest,
    ::testing::Combine(::testing::Range(size_t{0}, RefusedCases().size()),
                       ::testing::ValuesIn(kAllBackendNames)),
    [](const ::testing::TestParamInfo<CaseParam>& info) {
      return Sanitize(absl::StrCat(RefusedCases()[std::get<0>(info.param)].what,
                                   "_", std::get<1>(info.param)));
    });

// ---- The reference itself, against values worked out by hand ---------------

TEST(ReferenceOpsTest, RmsNormHandComputed) {
  // Row [3, 4]: mean square 12.5 -> scale 1/sqrt(12.5 + eps).
  std::vector<float> x = {3, 4, -1, 1}, w = {1, 2}, y(4);
  ASSERT_TRUE(RmsNormReference(x.data(), w.data(), y.data(), 2, 2, 1e-6f).ok());
  const double s0 = 1 / std::sqrt(12.5 + 1e-6), s1 = 1 / std::sqrt(1 + 1e-6);
  EXPECT_FLOAT_EQ(y[0], 3 * s0);
  EXPECT_FLOAT_EQ(y[1], 8 * s0);
  EXPECT_FLOAT_EQ(y[2], -1 * s1);
  EXPECT_FLOAT_EQ(y[3], 2 * s1);
  // In place, unit weight: unit RMS.
  std::vector<float> z(3 * 576), ones(576, 1.f);
  for (size_t i = 0; i < z.size(); ++i) z[i] = std::sin(0.1 * i) * (i % 7);
  ASSERT_TRUE(
      RmsNormReference(z.data(), ones.data(), z.data(), 3, 576, 1e-5f).ok());
  for (int r = 0; r < 3; ++r) {
    double ss = 0;
    for (int i = 0; i < 576; ++i) ss += z[r * 576 + i] * z[r * 576 + i];
    EXPECT_NEAR(std::sqrt(ss / 576), 1.0, 1e-4);
  }
}

TEST(ReferenceOpsTest, GatherRowsAndEmbeddingByHand) {
  const std::vector<float> x = {0, 1, 10, 11, 20, 21};
  const std::vector<int32_t> rows = {2, 0, 2};
  std::vector<float> out(6);
  ASSERT_TRUE(GatherRowsReference(x.data(), 2, rows, out.data()).ok());
  EXPECT_EQ(out, (std::vector<float>{20, 21, 0, 1, 20, 21}));
  // An F32 table of rows 100..102: ids outside give zeros.
  const WeightMatrix table{GgmlType::kF32, 3, 2,
                           reinterpret_cast<const uint8_t*>(x.data()), 8};
  const std::vector<int32_t> ids = {101, 99, 103, 102};
  std::vector<float> emb(8, NAN);
  ASSERT_TRUE(EmbeddingGatherReference(table, 100, ids, emb.data()).ok());
  EXPECT_EQ(emb, (std::vector<float>{10, 11, 0, 0, 0, 0, 20, 21}));
}

}  // namespace
}  // namespace tpserve
