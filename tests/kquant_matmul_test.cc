// The CPU K-quant matmuls (Q4_K, Q5_K, Q6_K; kernels/cpu/matmul_kquant.h)
// bit for bit against an independent scalar model of ggml's x86 arithmetic,
// written here from ggml-cpu's code (llama.cpp as vendored by
// llama-cpp-python 0.3.36): quantize_row_q8_K_ref for the activations,
// the AVX2 branches of ggml_vec_dot_q{4,5,6}_K_q8_K, and the repacked
// ggml_gemv/gemm_q4_K_8x8_q8_K a default llama.cpp build uses for Q4_K
// weights with a multiple of 8 rows, and for a batch (MatMulArgs::
// ggml_batch) the repacked gemm and the tiled kernel ggml-cpu/tiled. Every
// Highway target this CPU runs (AVX2, AVX-512, and the scalar fallback)
// must give the model's bits, for decode (n = 1) and batches of every
// remainder against the kernels' tiles.
#include <gtest/gtest.h>
#include <hwy/highway.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ggml_blocks.h"
#include "common/ggml_types.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/matmul.h"
#include "kernels/reference_ops.h"

namespace tpserve {
namespace {

// ---- The model of ggml ------------------------------------------------------

struct Q8K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

// ggml's nearest_int: the float add of 1.5 * 2^23 rounds to an integer.
int NearestInt(float f) {
  const float v = f + 12582912.f;
  int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// quantize_row_q8_K_ref, one block.
Q8K QuantizeQ8K(const float* x) {
  Q8K y{};
  float max = 0, amax = 0;
  for (int j = 0; j < kQK_K; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  if (amax == 0) return y;  // (ggml leaves bsums unset; they meet d = 0.)
  const float iscale = -127.f / max;
  for (int j = 0; j < kQK_K; ++j) {
    y.qs[j] = static_cast<int8_t>(std::min(127, NearestInt(iscale * x[j])));
  }
  for (int g = 0; g < kQK_K / 16; ++g) {
    int sum = 0;
    for (int t = 0; t < 16; ++t) sum += y.qs[16 * g + t];
    y.bsums[g] = static_cast<int16_t>(sum);
  }
  y.d = 1 / iscale;
  return y;
}

float Hsum8(const float* v) {  // hsum_float_8
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

// Q4_K/Q5_K quant of element 64 j + 32 h + l (h = 0 low nibble, 1 high).
int QuantQ45(const uint8_t* qs, const uint8_t* qh, int j, int h, int l) {
  const uint8_t b = qs[32 * j + l];
  int q = h == 0 ? (b & 0xF) : (b >> 4);
  if (qh != nullptr) q |= ((qh[l] >> (2 * j + h)) & 1) << 4;
  return q;
}

// ggml_vec_dot_q4_K_q8_K / q5_K (AVX2): `five` selects Q5_K.
float VecDotQ45K(const uint8_t* row, const Q8K* y, int nb, bool five) {
  float acc[8] = {}, acc_m[4] = {}, summs = 0;
  const size_t bytes = five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  for (int i = 0; i < nb; ++i) {
    const uint8_t* blk = row + i * bytes;
    GgmlHalf xd, xdmin;
    std::memcpy(&xd, blk, 2);
    std::memcpy(&xdmin, blk + 2, 2);
    const uint8_t* scales = blk + 4;
    const uint8_t* qh = five ? blk + 16 : nullptr;
    const uint8_t* qs = five ? blk + 48 : blk + 16;
    const float d = y[i].d * Fp16ToFp32(xd);
    const float dmin = -y[i].d * Fp16ToFp32(xdmin);
    uint8_t sc[8], m[8];
    for (int s = 0; s < 8; ++s) GetScaleMinK4(s, scales, &sc[s], &m[s]);
    int32_t q8s[8], prod[4];
    for (int t = 0; t < 8; ++t)
      q8s[t] = y[i].bsums[2 * t] + y[i].bsums[2 * t + 1];
    for (int u = 0; u < 4; ++u) {
      prod[u] = m[2 * u] * q8s[2 * u] + m[2 * u + 1] * q8s[2 * u + 1];
    }
    int32_t sumi[8] = {};
    for (int j = 0; j < 4; ++j) {
      for (int h = 0; h < 2; ++h) {
        for (int l = 0; l < 32; ++l) {
          sumi[l / 4] += sc[2 * j + h] * QuantQ45(qs, qh, j, h, l) *
                         y[i].qs[64 * j + 32 * h + l];
        }
      }
    }
    for (int l = 0; l < 8; ++l) {
      acc[l] = std::fma(d, static_cast<float>(sumi[l]), acc[l]);
    }
    if (five) {
      summs = std::fma(
          dmin, static_cast<float>((prod[0] + prod[1]) + (prod[2] + prod[3])),
          summs);
    } else {
      for (int u = 0; u < 4; ++u) {
        acc_m[u] = std::fma(dmin, static_cast<float>(prod[u]), acc_m[u]);
      }
    }
  }
  if (five) return Hsum8(acc) + summs;
  return Hsum8(acc) + ((acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]));
}

// ggml_gemv_q4_K_8x8_q8_K / ggml_gemm_q4_K_8x8_q8_K, one output column.
float RepackDotQ4K(const uint8_t* row, const Q8K* y, int nb) {
  float acc = 0, acc_min = 0;
  for (int i = 0; i < nb; ++i) {
    const uint8_t* blk = row + i * sizeof(BlockQ4_K);
    GgmlHalf xd, xdmin;
    std::memcpy(&xd, blk, 2);
    std::memcpy(&xdmin, blk + 2, 2);
    int32_t iacc = 0, imin = 0;
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, m;
      GetScaleMinK4(s, blk + 4, &sc, &m);
      int32_t dot = 0;
      for (int l = 0; l < 32; ++l) {
        dot +=
            QuantQ45(blk + 16, nullptr, s / 2, s % 2, l) * y[i].qs[32 * s + l];
      }
      iacc += sc * dot;
      imin += m * (y[i].bsums[2 * s] + y[i].bsums[2 * s + 1]);
    }
    acc = std::fma(static_cast<float>(iacc), Fp16ToFp32(xd) * y[i].d, acc);
    acc_min =
        std::fma(static_cast<float>(imin), Fp16ToFp32(xdmin) * y[i].d, acc_min);
  }
  return acc - acc_min;
}

// ggml_gemm_q4_K_8x8_q8_K (the rows of whole groups of four in a batch),
// one output: the FMAs per 64 elements (two sub-blocks), not per 256.
float RepackGemmDotQ4K(const uint8_t* row, const Q8K* y, int nb) {
  float acc = 0, acc_min = 0;
  for (int i = 0; i < nb; ++i) {
    const uint8_t* blk = row + i * sizeof(BlockQ4_K);
    GgmlHalf xd, xdmin;
    std::memcpy(&xd, blk, 2);
    std::memcpy(&xdmin, blk + 2, 2);
    for (int j = 0; j < 4; ++j) {
      int32_t iacc = 0, imin = 0;
      for (int s = 2 * j; s < 2 * j + 2; ++s) {
        uint8_t sc, m;
        GetScaleMinK4(s, blk + 4, &sc, &m);
        int32_t dot = 0;
        for (int l = 0; l < 32; ++l) {
          dot += QuantQ45(blk + 16, nullptr, s / 2, s % 2, l) *
                 y[i].qs[32 * s + l];
        }
        iacc += sc * dot;
        imin += m * (y[i].bsums[2 * s] + y[i].bsums[2 * s + 1]);
      }
      acc = std::fma(static_cast<float>(iacc), Fp16ToFp32(xd) * y[i].d, acc);
      acc_min = std::fma(static_cast<float>(imin), Fp16ToFp32(xdmin) * y[i].d,
                         acc_min);
    }
  }
  return acc - acc_min;
}

// The tiled K-quant matmul (ggml-cpu/tiled, batches of >= 8 rows; its
// AVX512-VNNI microkernel), one output: per super-block the exact scale
// sum s1 and min sum s2, t = float(s1) * d - dmin * float(s2) (one
// rounding, vfnmadd), acc = fma(t, d_act, acc) (GCC contracts its mul and
// add; checked in the built libggml-cpu.so).
float TiledDot(GgmlType type, const uint8_t* row, const Q8K* y, int nb) {
  float acc = 0;
  const size_t bytes = GetGgmlType(type).type_size;
  for (int i = 0; i < nb; ++i) {
    const uint8_t* blk = row + i * bytes;
    int32_t s1 = 0, s2 = 0;
    float d, dmin = 0;
    if (type == GgmlType::kQ6_K) {
      const auto* x = reinterpret_cast<const BlockQ6_K*>(blk);
      d = Fp16ToFp32(x->d);
      for (int e = 0; e < kQK_K; ++e) {
        const int j = e / 128, g = (e % 128) / 32, l = e % 32;
        const int lo = g % 2 == 0 ? x->ql[64 * j + l] : x->ql[64 * j + 32 + l];
        const int q = (g < 2 ? (lo & 0xF) : (lo >> 4)) |
                      (((x->qh[32 * j + l] >> (2 * g)) & 3) << 4);
        s1 += x->scales[e / 16] * (q - 32) * y[i].qs[e];
      }
    } else {
      const bool five = type == GgmlType::kQ5_K;
      GgmlHalf xd, xdmin;
      std::memcpy(&xd, blk, 2);
      std::memcpy(&xdmin, blk + 2, 2);
      d = Fp16ToFp32(xd);
      dmin = Fp16ToFp32(xdmin);
      const uint8_t* qh = five ? blk + 16 : nullptr;
      const uint8_t* qs = five ? blk + 48 : blk + 16;
      for (int s = 0; s < 8; ++s) {
        uint8_t sc, m;
        GetScaleMinK4(s, blk + 4, &sc, &m);
        int32_t dot = 0;
        for (int l = 0; l < 32; ++l) {
          dot += QuantQ45(qs, qh, s / 2, s % 2, l) * y[i].qs[32 * s + l];
        }
        s1 += sc * dot;
        s2 += m * (y[i].bsums[2 * s] + y[i].bsums[2 * s + 1]);
      }
    }
    const float t =
        std::fma(-dmin, static_cast<float>(s2), static_cast<float>(s1) * d);
    acc = std::fma(t, y[i].d, acc);
  }
  return acc;
}

// ggml_vec_dot_q6_K_q8_K (AVX2).
float VecDotQ6K(const uint8_t* row, const Q8K* y, int nb) {
  float acc[8] = {};
  for (int i = 0; i < nb; ++i) {
    const auto* x =
        reinterpret_cast<const BlockQ6_K*>(row + i * sizeof(BlockQ6_K));
    const float d = y[i].d * Fp16ToFp32(x->d);
    int32_t sumi[8] = {};
    for (int j = 0; j < 2; ++j) {  // 128-element halves.
      const uint8_t* ql = x->ql + 64 * j;
      const uint8_t* qh = x->qh + 32 * j;
      for (int g = 0; g < 4; ++g) {
        for (int l = 0; l < 32; ++l) {
          const int lo = g % 2 == 0 ? ql[l] : ql[32 + l];
          const int q = (g < 2 ? (lo & 0xF) : (lo >> 4)) |
                        (((qh[l] >> (2 * g)) & 3) << 4);
          const int e = 128 * j + 32 * g + l;
          sumi[l / 4] += x->scales[e / 16] * q * y[i].qs[e];
        }
      }
    }
    for (int l = 0; l < 8; ++l) {
      sumi[l] -= 32 * (y[i].bsums[2 * l] * x->scales[2 * l] +
                       y[i].bsums[2 * l + 1] * x->scales[2 * l + 1]);
      acc[l] = std::fma(d, static_cast<float>(sumi[l]), acc[l]);
    }
  }
  return Hsum8(acc);
}

// y = x w^T as llama.cpp computes it: as one batch of n rows (a prompt),
// or (one_batch false) each row as a batch of its own (decode).
std::vector<float> GgmlMatMul(const WeightMatrix& w, const float* x, int64_t n,
                              bool one_batch = false) {
  const int nb = static_cast<int>(w.cols / kQK_K);
  std::vector<float> y(n * w.rows);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<Q8K> q(nb);
    for (int b = 0; b < nb; ++b) q[b] = QuantizeQ8K(x + i * w.cols + b * kQK_K);
    for (int64_t r = 0; r < w.rows; ++r) {
      const uint8_t* row = w.data + r * w.row_stride;
      float v;
      if (w.type == GgmlType::kQ4_K && w.rows % 8 == 0) {  // CPU_REPACK.
        v = one_batch && i < n - n % 4 ? RepackGemmDotQ4K(row, q.data(), nb)
                                       : RepackDotQ4K(row, q.data(), nb);
      } else if (one_batch && n >= 8) {
        v = TiledDot(w.type, row, q.data(), nb);
      } else if (w.type == GgmlType::kQ6_K) {
        v = VecDotQ6K(row, q.data(), nb);
      } else {
        v = VecDotQ45K(row, q.data(), nb, w.type == GgmlType::kQ5_K);
      }
      y[i * w.rows + r] = v;
    }
  }
  return y;
}

// ggml_vec_dot_q5_0_q8_0 and ggml_vec_dot_q5_1_q8_1 (AVX2; llamafile's
// tinyBLAS, which takes Q5_0 batches, sums the same way), on the project's
// q8_0/q8_1 activations (QuantizeActivationBlock, ggml's x86 quantizer).
float VecDotQ5Legacy(GgmlType type, const uint8_t* row, const float* x,
                     int nb) {
  const bool q5_1 = type == GgmlType::kQ5_1;
  const size_t bytes = GetGgmlType(type).type_size;
  float acc[8] = {}, summs = 0;
  for (int b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * bytes;
    int8_t q[32];
    float yd, ys;
    QuantizeActivationBlock(x + 32 * b, q, &yd, &ys);
    GgmlHalf xd, xm = 0;
    std::memcpy(&xd, blk, 2);
    if (q5_1) std::memcpy(&xm, blk + 2, 2);
    const uint8_t* qh = blk + (q5_1 ? 4 : 2);
    const uint8_t* qs = qh + 4;
    uint32_t h;
    std::memcpy(&h, qh, 4);
    int32_t lane[8] = {};
    for (int e = 0; e < 32; ++e) {
      const int nib = e < 16 ? (qs[e] & 0xF) : (qs[e - 16] >> 4);
      const int w = (nib | (((h >> e) & 1) << 4)) - (q5_1 ? 0 : 16);
      lane[e / 4] += w * q[e];
    }
    const float d = Fp16ToFp32(xd) * yd;
    for (int l = 0; l < 8; ++l) {
      acc[l] = std::fma(static_cast<float>(lane[l]), d, acc[l]);
    }
    if (q5_1) summs = std::fma(Fp16ToFp32(xm), ys, summs);
  }
  return Hsum8(acc) + summs;
}

// ---- Inputs -------------------------------------------------------------

// Random blocks with sane fp16 scales; `extreme` makes every quant and
// scale maximal (integer lanes past 2^24, so the int -> float conversion
// rounds).
std::vector<uint8_t> RandomWeights(GgmlType type, int64_t rows, int64_t cols,
                                   size_t stride, bool extreme,
                                   std::mt19937& rng) {
  std::vector<uint8_t> data(rows * stride);
  for (uint8_t& b : data) b = extreme ? 0xFF : static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  const size_t bytes = GetGgmlType(type).type_size;
  auto put = [](uint8_t* p, float f) {
    const GgmlHalf h = Fp32ToFp16(f);
    std::memcpy(p, &h, 2);
  };
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < cols / kQK_K; ++b) {
      uint8_t* blk = data.data() + r * stride + b * bytes;
      if (type == GgmlType::kQ6_K) {
        auto* q6 = reinterpret_cast<BlockQ6_K*>(blk);
        if (extreme) std::memset(q6->scales, 127, sizeof(q6->scales));
        put(blk + offsetof(BlockQ6_K, d), scale(rng) * 0.1f);
      } else {
        put(blk, scale(rng));
        put(blk + 2, scale(rng));
      }
    }
  }
  return data;
}

// Activations with the cases q8_K quantization must get right: an
// all-zero block, a block whose largest |x| occurs with both signs (the
// first one sets the sign of d), exact rounding ties, and outliers.
std::vector<float> Activations(int64_t n, int64_t cols, bool extreme,
                               std::mt19937& rng) {
  std::normal_distribution<float> dist(0, 1);
  std::vector<float> x(n * cols);
  for (float& v : x) v = extreme ? 1.0f : dist(rng);
  if (extreme) return x;
  std::fill(x.begin(), x.begin() + kQK_K, 0.0f);
  if (cols >= 2 * kQK_K) {
    float* b = x.data() + kQK_K;  // The second block: ties.
    b[0] = -127;                  // max = -127: iscale = 1, x * iscale is x.
    b[5] = 127;
    for (int j = 1; j < 5; ++j) b[j] = 0.5f + j;  // 1.5, 2.5, ... (to even).
    b[6] = -2.5f;
  }
  x.back() = 40.0f;
  return x;
}

struct Case {
  GgmlType type;
  int64_t rows, cols, n;
  size_t pad;
  bool extreme;
};

std::string Name(const Case& c) {
  return absl::StrCat(GgmlTypeName(c.type), " rows=", c.rows, " cols=", c.cols,
                      " n=", c.n, " pad=", c.pad, c.extreme ? " extreme" : "");
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (GgmlType type : {GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K}) {
    // rows % 8 == 0 and not (Q4_K's two orders); n covering every tile
    // remainder (1 .. 4 rows, and more than one group).
    for (int64_t rows : {8, 24, 13}) {
      for (int64_t n : {1, 2, 3, 4, 5, 8, 11}) {
        cases.push_back({type, rows, 512, n, n % 2 == 0 ? 6u : 0u, false});
      }
    }
    cases.push_back({type, 64, 1536 + 256, 7, 0, false});
    cases.push_back({type, 40, 256, 1, 0, false});
    cases.push_back({type, 16, 2048, 3, 0, true});
  }
  return cases;
}

// ---- Tests ------------------------------------------------------------------

// The activations of the CPU backend's K-quant path are ggml's q8_K blocks.
TEST(KQuantMatMulTest, ActivationsAreGgmlQ8K) {
  std::mt19937 rng(5);
  const int64_t n = 3, cols = 1024;
  const std::vector<float> x = Activations(n, cols, false, rng);
  std::vector<int8_t> q(n * cols);
  std::vector<float> d(n * cols / 32);
  std::vector<int16_t> sums(n * cols / 16);
  std::vector<float> dsum(n * cols / 32);
  for (GgmlType type : {GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K}) {
    cpu::QuantizeActRows(type, x.data(), cols, 0, n, q.data(), d.data(),
                         sums.data(), dsum.data());
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t b = 0; b < cols / kQK_K; ++b) {
        const Q8K want = QuantizeQ8K(x.data() + i * cols + b * kQK_K);
        SCOPED_TRACE(
            absl::StrCat(GgmlTypeName(type), " row ", i, " block ", b));
        EXPECT_EQ(0, std::memcmp(&want.d, &d[i * cols / 32 + b], 4));
        EXPECT_EQ(0, std::memcmp(want.qs, &q[i * cols + b * kQK_K], kQK_K));
        EXPECT_EQ(0, std::memcmp(want.bsums, &sums[(i * cols + b * kQK_K) / 16],
                                 sizeof(want.bsums)));
      }
    }
  }
}

// MatMul on every SIMD target equals the model of ggml bit for bit, and so
// the AVX2 and AVX-512 kernels (and the scalar one) equal each other.
TEST(KQuantMatMulTest, MatMulIsGgmlBitForBitOnEveryTarget) {
  std::mt19937 rng(77);
  std::unique_ptr<Backend> backend = MakeCpuBackend(2);
  for (const Case& c : Cases()) {
    SCOPED_TRACE(Name(c));
    const size_t stride = *GgmlRowBytes(c.type, c.cols) + c.pad;
    std::vector<uint8_t> data =
        RandomWeights(c.type, c.rows, c.cols, stride, c.extreme, rng);
    const WeightMatrix w{c.type, c.rows, c.cols, data.data(), stride};
    const std::vector<float> x = Activations(c.n, c.cols, c.extreme, rng);
    const std::vector<float> want = GgmlMatMul(w, x.data(), c.n);
    int targets = 0;
    for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
      hwy::SetSupportedTargetsForTest(target);
      SCOPED_TRACE(hwy::TargetName(target));
      std::vector<float> y(c.n * c.rows, NAN);
      ASSERT_TRUE(backend->MatMul(w, x.data(), c.n, y.data()).ok());
      for (size_t k = 0; k < y.size(); ++k) {
        ASSERT_EQ(Fp32Bits(y[k]), Fp32Bits(want[k]))
            << "output " << k << ": got " << y[k] << " want " << want[k];
      }
      ++targets;
    }
    hwy::SetSupportedTargetsForTest(0);
    EXPECT_GE(targets, 1);
  }
}

// MatMulArgs::ggml_batch: the n rows as llama.cpp computes one batch of n
// (the repacked Q4_K gemm for whole groups of four rows, the tiled kernel
// for n >= 8), on every target and for any split of the weight rows.
TEST(KQuantMatMulTest, OneGgmlBatchIsGgmlBitForBit) {
  std::mt19937 rng(31);
  for (const Case& c : Cases()) {
    SCOPED_TRACE(Name(c));
    const size_t stride = *GgmlRowBytes(c.type, c.cols) + c.pad;
    std::vector<uint8_t> data =
        RandomWeights(c.type, c.rows, c.cols, stride, c.extreme, rng);
    const WeightMatrix w{c.type, c.rows, c.cols, data.data(), stride};
    const std::vector<float> x = Activations(c.n, c.cols, c.extreme, rng);
    const std::vector<float> want = GgmlMatMul(w, x.data(), c.n, true);
    std::vector<int8_t> q(c.n * c.cols);
    std::vector<float> d(c.n * c.cols / 32), dsum(c.n * c.cols / 32);
    std::vector<int16_t> sums(c.n * c.cols / 16);
    cpu::QuantizeActRows(c.type, x.data(), c.cols, 0, c.n, q.data(), d.data(),
                         sums.data(), dsum.data());
    for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
      hwy::SetSupportedTargetsForTest(target);
      SCOPED_TRACE(hwy::TargetName(target));
      std::vector<float> y(c.n * c.rows, NAN);
      cpu::MatMulArgs args{
          w,
          x.data(),
          {q.data(), d.data(), sums.data(), dsum.data(), c.cols},
          c.n,
          y.data()};
      args.ggml_batch = true;
      const int64_t split = c.rows / 3;
      cpu::MatMulRows(args, 0, split);
      cpu::MatMulRows(args, split, c.rows);
      for (size_t k = 0; k < y.size(); ++k) {
        ASSERT_EQ(Fp32Bits(y[k]), Fp32Bits(want[k]))
            << "output " << k << ": got " << y[k] << " want " << want[k];
      }
    }
    hwy::SetSupportedTargetsForTest(0);
  }
}

// Q5_0 and Q5_1, the legacy fall-backs of the K-quant mixes (llama-quantize
// writes them where a row is not a multiple of 256), on the x86 kernels.
TEST(KQuantMatMulTest, LegacyQ5IsGgmlBitForBitOnX86) {
  std::mt19937 rng(3);
  std::unique_ptr<Backend> backend = MakeCpuBackend(2);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  for (GgmlType type : {GgmlType::kQ5_0, GgmlType::kQ5_1}) {
    for (const auto& [rows, cols, n] :
         {std::tuple<int64_t, int64_t, int64_t>{33, 576, 1},
          {64, 288, 5},
          {17, 1536, 9}}) {
      SCOPED_TRACE(absl::StrCat(GgmlTypeName(type), " rows=", rows,
                                " cols=", cols, " n=", n));
      const size_t bytes = GetGgmlType(type).type_size;
      const size_t stride = *GgmlRowBytes(type, cols);
      std::vector<uint8_t> data(rows * stride);
      for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
      for (size_t off = 0; off < data.size(); off += bytes) {
        const GgmlHalf d = Fp32ToFp16(scale(rng)), m = Fp32ToFp16(-scale(rng));
        std::memcpy(&data[off], &d, 2);
        if (type == GgmlType::kQ5_1) std::memcpy(&data[off + 2], &m, 2);
      }
      const WeightMatrix w{type, rows, cols, data.data(), stride};
      const std::vector<float> x = Activations(n, cols, false, rng);
      int checked = 0;
      for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
        const std::string name = hwy::TargetName(target);
        if (name != "AVX2" && name.rfind("AVX3", 0) != 0) continue;
        hwy::SetSupportedTargetsForTest(target);
        SCOPED_TRACE(name);
        std::vector<float> y(n * rows, NAN);
        ASSERT_TRUE(backend->MatMul(w, x.data(), n, y.data()).ok());
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t r = 0; r < rows; ++r) {
            const float want = VecDotQ5Legacy(type, data.data() + r * stride,
                                              x.data() + i * cols,
                                              static_cast<int>(cols / 32));
            ASSERT_EQ(Fp32Bits(y[i * rows + r]), Fp32Bits(want))
                << "row " << i << " col " << r;
          }
        }
        ++checked;
      }
      hwy::SetSupportedTargetsForTest(0);
      if (checked == 0) GTEST_SKIP() << "no x86 AVX2/AVX-512 target here";
    }
  }
}

// By default one token's outputs do not depend on the batch it is computed
// in (each row as llama.cpp's decode computes it; the CPU kernels' tiles
// must not change that either).
TEST(KQuantMatMulTest, BatchInvariant) {
  std::mt19937 rng(9);
  std::unique_ptr<Backend> backend = MakeCpuBackend(2);
  for (GgmlType type : {GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K}) {
    const int64_t rows = 48, cols = 768, n = 9;
    const size_t stride = *GgmlRowBytes(type, cols);
    std::vector<uint8_t> data =
        RandomWeights(type, rows, cols, stride, false, rng);
    const WeightMatrix w{type, rows, cols, data.data(), stride};
    const std::vector<float> x = Activations(n, cols, false, rng);
    std::vector<float> batch(n * rows);
    ASSERT_TRUE(backend->MatMul(w, x.data(), n, batch.data()).ok());
    for (int64_t i = 0; i < n; ++i) {
      std::vector<float> one(rows);
      ASSERT_TRUE(backend->MatMul(w, x.data() + i * cols, 1, one.data()).ok());
      EXPECT_EQ(0, std::memcmp(one.data(), batch.data() + i * rows, rows * 4))
          << GgmlTypeName(type) << " row " << i;
    }
  }
}

}  // namespace
}  // namespace tpserve
