// Every op of every compiled backend against the CPU reference
// (kernels/reference_ops.h), in the spirit of llama.cpp's test-backend-ops:
// odd shapes (columns that are not multiples of a SIMD width or of two
// blocks, odd row counts, batch sizes that leave remainders), every weight
// type, several thread counts and, for the CPU matmul, every SIMD target
// Highway compiled that this machine runs.
//
// Error measure for a dot product y = sum_c w_c x_c: |y - y_ref| divided by
// sum_c |w_c x_c| (the condition-free scale of the sum), so cancellation in
// random data cannot make a correct kernel look wrong.
//
// The op-case table (backend_op_table_test.cc) runs every op, shape and
// type on every compiled backend, and the refused inputs; this file keeps
// the matmul's SIMD-target sweep, real model rows and the RoPE formulas.
//
// Device backends (CUDA, when compiled in and a GPU is present) run the
// same tests through HostStagingBackend, which copies each op's host
// arguments to the device and its results back; without a GPU they are
// left out and BackendOpsTest.CudaBackendPresent is skipped.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hwy/highway.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/dequantize.h"
#include "common/ggml_blocks.h"
#include "common/gguf.h"
#include "common/model_config.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/matmul.h"
#include "kernels/reference_ops.h"
#include "tests/all_backends.h"
#include "tests/test_paths.h"
#include "worker/backend_factory.h"

#if TPSERVE_TEST_CUDA
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/ops.h"
#endif

namespace tpserve {
namespace {

using testing::AllBackends;
using testing::CudaUsable;
using testing::NamedBackend;
using testing::RandomFloats;
using testing::RandomWeights;

TEST(BackendOpsTest, CudaBackendPresent) {
#if !TPSERVE_TEST_CUDA
  GTEST_SKIP() << "this build has no CUDA backend";
#else
  if (!CudaUsable()) GTEST_SKIP() << "no CUDA device";
  int cuda = 0;
  for (const NamedBackend& nb : AllBackends()) {
    if (nb.name.rfind("cuda", 0) == 0) ++cuda;
  }
  EXPECT_EQ(cuda, 2);
#endif
}

// sum_c |w[r, c] x[i, c]| and the activation-quantization error bound
// sum_b (amax_b / 254) sum_{c in b} |w[r, c]| (|x - d q| <= d / 2 =
// amax / 254 per element), in double, [n, rows].
void Scales(const WeightMatrix& w, const std::vector<float>& x, int64_t n,
            std::vector<double>* abs_sum, std::vector<double>* q_bound) {
  abs_sum->assign(n * w.rows, 0);
  q_bound->assign(n * w.rows, 0);
  std::vector<float> wr(w.cols);
  const size_t row_bytes = *GgmlRowBytes(w.type, w.cols);
  for (int64_t r = 0; r < w.rows; ++r) {
    ASSERT_TRUE(DequantizeRow(w.type, w.data + r * w.row_stride, row_bytes,
                              w.cols, wr.data())
                    .ok());
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x.data() + i * w.cols;
      double s = 0, qb = 0;
      // K-quant activations are q8_K blocks of 256 (one float scale).
      const int64_t act_block =
          GetGgmlType(w.type).block_size == kQK_K ? kQK_K : kActBlock;
      for (int64_t c0 = 0; c0 < w.cols; c0 += act_block) {
        const int64_t c1 = std::min<int64_t>(w.cols, c0 + act_block);
        double amax = 0, wsum = 0;
        for (int64_t c = c0; c < c1; ++c) {
          s += std::fabs(double{wr[c]} * xi[c]);
          amax = std::max(amax, std::fabs(double{xi[c]}));
          wsum += std::fabs(double{wr[c]});
        }
        // Half a quantization step per element, plus the fp16 rounding of
        // the block scale (<= 2^-11 d) over up to 127 steps.
        qb += (amax / 254 + amax / 2048) * wsum;
        if (w.type == GgmlType::kQ4_1 || w.type == GgmlType::kQ5_1) {
          // The q8_1 sum s = d * sum(q) (|.| <= 32 amax) rounded to fp16,
          // times the block's min m (|m| <= the block's largest |w|).
          double wmax = 0;
          for (int64_t c = c0; c < c1; ++c) {
            wmax = std::max(wmax, std::fabs(double{wr[c]}));
          }
          qb += 32 * amax / 2048 * wmax;
        }
      }
      (*abs_sum)[i * w.rows + r] = s;
      (*q_bound)[i * w.rows + r] = qb;
    }
  }
}

// Float accumulation over at most a few hundred partial sums of exact (or
// once-rounded) terms: relative error (to the abs sum) well under 1e-5.
constexpr double kFloatTol = 1e-5;

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want,
                 const std::vector<double>& abs_sum,
                 const std::vector<double>* extra, double tol,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const double bound = tol * abs_sum[i] + (extra ? (*extra)[i] : 0.0) + 1e-30;
    const double err = std::fabs(double{got[i]} - want[i]);
    if (!(err <= bound)) {
      ADD_FAILURE() << what << ": element " << i << " got " << got[i]
                    << " want " << want[i] << " err " << err << " > bound "
                    << bound;
      return;
    }
  }
}

struct MatMulCase {
  GgmlType type;
  int64_t rows, cols, n;
  size_t pad;  // Extra bytes per row (a column slice's stride).
};

// Runs one shape on every backend (and, for the CPU backends, every SIMD
// target) against both references.
void CheckMatMul(const MatMulCase& mc, std::vector<NamedBackend>& backends,
                 std::mt19937& rng) {
  SCOPED_TRACE(absl::StrCat(GgmlTypeName(mc.type), " rows=", mc.rows,
                            " cols=", mc.cols, " n=", mc.n, " pad=", mc.pad));
  const size_t stride = *GgmlRowBytes(mc.type, mc.cols) + mc.pad;
  std::vector<uint8_t> wdata =
      RandomWeights(mc.type, mc.rows, mc.cols, stride, rng);
  const WeightMatrix w{mc.type, mc.rows, mc.cols, wdata.data(), stride};
  std::vector<float> x = RandomFloats(mc.n * mc.cols, rng);
  // An all-zero activation block (amax 0) and an outlier.
  std::fill(x.begin(), x.begin() + std::min<int64_t>(mc.cols, 32), 0.0f);
  x.back() = 7.5f;
  std::vector<float> exact(mc.n * mc.rows), q8(mc.n * mc.rows);
  ASSERT_TRUE(MatMulReference(w, x.data(), mc.n, exact.data()).ok());
  ASSERT_TRUE(MatMulReferenceQ8Activations(w, x.data(), mc.n, q8.data()).ok());
  std::vector<double> abs_sum, q_bound;
  Scales(w, x, mc.n, &abs_sum, &q_bound);
  for (NamedBackend& nb : backends) {
    // Q8_0 and Q4_1 outputs of the x86 integer targets (AVX2, and AVX-512
    // with or without VNNI), which all follow ggml's order of operations.
    std::vector<std::pair<std::string, std::vector<float>>> ggml_order;
    auto run = [&](const std::string& label) {
      std::vector<float> y(mc.n * mc.rows, NAN);
      ASSERT_TRUE(nb.backend->MatMul(w, x.data(), mc.n, y.data()).ok());
      const std::string target = label.substr(label.rfind('/') + 1);
      if ((mc.type == GgmlType::kQ8_0 || mc.type == GgmlType::kQ4_1) &&
          (target == "AVX2" || target.rfind("AVX3", 0) == 0)) {
        ggml_order.emplace_back(label, y);
      }
      if (nb.quantizes_acts) {
        // Tight: the integer path computes exactly what the Q8 reference
        // does, up to float rounding.
        ExpectClose(y, q8, abs_sum, nullptr, kFloatTol, label + " vs q8 ref");
        // Loose, but a proven bound: the activation rounding error.
        ExpectClose(y, exact, abs_sum, &q_bound, kFloatTol,
                    label + " vs exact ref");
      } else {
        ExpectClose(y, exact, abs_sum, nullptr, kFloatTol + nb.matmul_rel_err,
                    label + " vs exact ref");
      }
    };
    if (!nb.quantizes_acts) {
      run(nb.name);
      continue;
    }
    for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
      hwy::SetSupportedTargetsForTest(target);
      run(absl::StrCat(nb.name, "/", hwy::TargetName(target)));
    }
    hwy::SetSupportedTargetsForTest(0);
    for (size_t i = 1; i < ggml_order.size(); ++i) {
      EXPECT_EQ(ggml_order[i].second, ggml_order[0].second)
          << ggml_order[i].first << " and " << ggml_order[0].first
          << " differ: both should sum in ggml's order";
    }
  }
}

TEST(BackendOpsTest, MatMulEveryTypeOddShapes) {
  std::mt19937 rng(1234);
  std::vector<NamedBackend> backends = AllBackends();
  const std::vector<GgmlType> types = {
      GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16, GgmlType::kQ8_0,
      GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1,
      GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K};
  // (rows, n) pairs cycled over the column sizes: odd rows, n with
  // remainders against the 4-row groups of the CPU kernels.
  const std::pair<int64_t, int64_t> rn[] = {{1, 1}, {3, 2}, {17, 5}, {5, 33}};
  for (GgmlType type : types) {
    const int bs = static_cast<int>(GetGgmlType(type).block_size);
    std::vector<int64_t> cols;
    if (bs == 1) {
      cols = {1, 7, 33, 96, 577};
    } else if (bs == 32) {
      cols = {32, 96, 288, 1536 + 256, 2560};
    } else {
      cols = {256, 512, 1536 + 256, 2560};
    }
    for (size_t k = 0; k < cols.size(); ++k) {
      const auto [rows, n] = rn[k % 4];
      CheckMatMul({type, rows, cols[k], n, k % 2 == 1 ? 6u : 0u}, backends,
                  rng);
    }
  }
  // Many rows (several row chunks per thread) for the model's types.
  for (GgmlType type : {GgmlType::kQ4_1, GgmlType::kQ8_0, GgmlType::kQ4_K,
                        GgmlType::kQ6_K, GgmlType::kF32}) {
    CheckMatMul({type, 577, 256, 2, 0}, backends, rng);
  }
  // Decode (n = 1) with many rows: the CPU's single-row kernels take weight
  // rows in pairs (odd row counts leave one) and two blocks at a time (odd
  // block counts leave one), with and without row padding.
  for (GgmlType type : {GgmlType::kQ4_1, GgmlType::kQ8_0, GgmlType::kQ4_0}) {
    CheckMatMul({type, 577, 256, 1, 0}, backends, rng);
    CheckMatMul({type, 33, 288, 1, 6}, backends, rng);
    CheckMatMul({type, 8, 1536 + 32, 1, 0}, backends, rng);
  }
}

// Backend selection by name (the worker's --backend): a CUDA request in a
// build or on a machine without CUDA is a clear FailedPrecondition.
TEST(BackendFactoryTest, NamesAndAvailability) {
  auto cpu = MakeBackend("cpu", 2, 0);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_EQ((*cpu)->name(), "cpu");
  EXPECT_EQ(MakeBackend("tpu", 1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto cuda = MakeBackend("cuda", 1, 0);
  if (!CudaBackendCompiled()) {
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(cuda.status().message()),
                ::testing::HasSubstr("this build has no CUDA"));
  } else if (CudaDevices() == 0) {
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kFailedPrecondition);
  } else {
    ASSERT_TRUE(cuda.ok()) << cuda.status();
    EXPECT_EQ((*cuda)->name(), "cuda");
    EXPECT_EQ(MakeBackend("cuda", 1, CudaDevices()).status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
}

// The CUDA kernels' decoders (kernels/cuda/dequant.cuh), run on the host:
// bit-exact with DequantizeRow for every type, also without a GPU.
TEST(BackendOpsTest, CudaDecodersMatchReferenceOnHost) {
#if !TPSERVE_TEST_CUDA
  GTEST_SKIP() << "this build has no CUDA backend";
#else
  std::mt19937 rng(77);
  for (GgmlType type :
       {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0,
        GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1,
        GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K}) {
    SCOPED_TRACE(GgmlTypeName(type));
    const int64_t bs = GetGgmlType(type).block_size;
    for (int64_t cols : {bs == 1 ? int64_t{7} : bs, int64_t{512},
                         bs == 1 ? int64_t{577} : int64_t{1536 + 256}}) {
      const size_t packed = *GgmlRowBytes(type, cols);
      const size_t stride = (packed + 15) / 16 * 16;
      const int64_t rows = 3;
      std::vector<uint8_t> data = RandomWeights(type, rows, cols, stride, rng);
      // 16-byte aligned copy, as UploadWeights lays rows out on the device.
      std::vector<uint8_t> buf(data.size() + 16);
      uint8_t* base =
          buf.data() + (16 - reinterpret_cast<uintptr_t>(buf.data()) % 16) % 16;
      std::memcpy(base, data.data(), data.size());
      const WeightMatrix w{type, rows, cols, base, stride};
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<float> want(cols), got(cols, NAN);
        ASSERT_TRUE(
            DequantizeRow(type, base + r * stride, packed, cols, want.data())
                .ok());
        ASSERT_TRUE(
            cuda::DequantizeRowWithDeviceDecoders(w, r, got.data()).ok());
        ASSERT_EQ(0, std::memcmp(got.data(), want.data(), cols * 4))
            << "cols " << cols << " row " << r;
      }
    }
  }
#endif
}

// Real weights: rows of the default model's Q4_1 attention and Q8_0
// embedding (the tied lm_head) matrices.
TEST(BackendOpsTest, MatMulDefaultModelRows) {
  auto g = GgufFile::Open(testing::DefaultModelPath());
  ASSERT_TRUE(g.ok()) << g.status() << "\n" << testing::kModelHint;
  std::vector<NamedBackend> backends = AllBackends();
  std::mt19937 rng(7);
  struct Pick {
    const char* name;
    GgmlType type;
    int64_t row0, rows;
  };
  for (const Pick& p : {Pick{"blk.0.attn_q.weight", GgmlType::kQ4_1, 0, 64},
                        Pick{"token_embd.weight", GgmlType::kQ8_0, 1000, 96}}) {
    SCOPED_TRACE(p.name);
    const GgufTensor* t = (*g)->FindTensor(p.name);
    ASSERT_NE(t, nullptr);
    ASSERT_EQ(t->type, p.type);
    const int64_t cols = static_cast<int64_t>(t->dims[0]);
    const size_t stride = *GgmlRowBytes(t->type, cols);
    const WeightMatrix w{t->type, p.rows, cols, t->data + p.row0 * stride,
                         stride};
    const int64_t n = 3;
    std::vector<float> x = RandomFloats(n * cols, rng);
    std::vector<float> exact(n * p.rows), q8(n * p.rows);
    ASSERT_TRUE(MatMulReference(w, x.data(), n, exact.data()).ok());
    ASSERT_TRUE(MatMulReferenceQ8Activations(w, x.data(), n, q8.data()).ok());
    std::vector<double> abs_sum, q_bound;
    Scales(w, x, n, &abs_sum, &q_bound);
    for (NamedBackend& nb : backends) {
      std::vector<float> y(n * p.rows);
      ASSERT_TRUE(nb.backend->MatMul(w, x.data(), n, y.data()).ok());
      ExpectClose(y, nb.quantizes_acts ? q8 : exact, abs_sum, nullptr,
                  kFloatTol + nb.matmul_rel_err, nb.name);
      ExpectClose(y, exact, abs_sum, &q_bound, kFloatTol, nb.name);
    }
  }
}

TEST(BackendOpsTest, QuantizeActivationBlock) {
  float x[32];
  for (int i = 0; i < 32; ++i) x[i] = (i - 15.5f) / 7.0f;
  int8_t q[32];
  float d;
  float s8;
  QuantizeActivationBlock(x, q, &d, &s8);
  // The scale is stored at fp16 precision; the quants use the exact one.
  const float exact_d = (15.5f / 7.0f) / 127;
  EXPECT_EQ(d, RoundToFp16(exact_d));
  EXPECT_NE(d, exact_d);
  EXPECT_EQ(q[31], 127);
  int sum = 0;
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(q[i],
              static_cast<int>(std::nearbyint(x[i] * (127 / (15.5f / 7.0f)))))
        << i;
    // Half a step, plus up to 127 times the scale's fp16 rounding.
    EXPECT_LE(std::fabs(x[i] - d * q[i]), d * (0.5f + 127.0f / 2048) * 1.0001f)
        << i;
    sum += q[i];
  }
  EXPECT_EQ(s8, RoundToFp16(exact_d * static_cast<float>(sum)));
  std::fill(x, x + 32, 0.0f);
  QuantizeActivationBlock(x, q, &d);
  EXPECT_EQ(d, 0.0f);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(q[i], 0);
}

// ---- Rope -------------------------------------------------------------------

// The formulas written out again, independently of reference_ops.cc, as
// Hugging Face's modeling_rope_utils computes them (default, linear, YaRN;
// Llama 3 as frequency factors).
double TestFreq(const RopeParams& p, int64_t i) {
  const double dim = static_cast<double>(p.rope_dim);
  double base = 1.0 / std::pow(p.theta, (2.0 * i) / dim);
  if (!p.freq_factors.empty()) base /= p.freq_factors[i];
  const double interpolated = base * p.freq_scale;
  if (p.ext_factor == 0) return interpolated;
  auto correction_dim = [&](double rotations) {
    return dim * std::log(p.original_max_positions / (rotations * 2 * M_PI)) /
           (2 * std::log(p.theta));
  };
  const double low = std::max(0.0, std::floor(correction_dim(p.beta_fast)));
  double high = std::min(dim - 1, std::ceil(correction_dim(p.beta_slow)));
  if (low == high) high += 0.001;
  const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
  const double extrapolation = (1 - ramp) * p.ext_factor;
  return interpolated * (1 - extrapolation) + base * extrapolation;
}

double TestMagnitude(const RopeParams& p) {
  return p.ext_factor == 0
             ? p.attn_factor
             : p.attn_factor * (0.1 * std::log(1 / p.freq_scale) + 1);
}

TEST(BackendOpsTest, RopeNormalNeoxScaled) {
  std::mt19937 rng(5);
  RopeParams normal;
  normal.head_dim = 64;
  normal.rope_dim = 64;
  normal.theta = 10000;
  RopeParams neox = normal;
  neox.neox = true;
  RopeParams llama3 = normal;  // rope_freqs.weight of Llama 3.1.
  llama3.theta = 500000;
  llama3.freq_factors = Llama3RopeFactors(500000, 64, 8, 1, 4, 8192);
  RopeParams linear = neox;
  linear.freq_scale = 0.25;
  RopeParams yarn = neox;  // Qwen2.5-style YaRN, a short original context.
  yarn.theta = 1000000;
  yarn.freq_scale = 0.25;
  yarn.ext_factor = 1;
  yarn.original_max_positions = 4096;
  RopeParams magnitude = normal;  // GGUF rope.scaling.attn_factor.
  magnitude.attn_factor = 0.75;
  RopeParams partial = neox;  // Only the leading dims rotate.
  partial.head_dim = 80;
  partial.rope_dim = 32;
  // Each llama3 regime is exercised: some frequencies kept, some divided by
  // the factor, some smoothed.
  int kept = 0, divided = 0, smoothed = 0;
  for (float f : llama3.freq_factors) {
    if (f == 1) {
      ++kept;
    } else if (f == 8) {
      ++divided;
    } else {
      ++smoothed;
      EXPECT_GT(f, 1);
      EXPECT_LT(f, 8);
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(smoothed, 0);
  // YaRN: some pairs extrapolate, some interpolate, some mix.
  int extrapolated = 0, interpolated = 0, mixed = 0;
  for (int64_t i = 0; i < 32; ++i) {
    const double base = std::pow(yarn.theta, -2.0 * i / 64);
    const double f = TestFreq(yarn, i);
    if (std::fabs(f - base) < 1e-12 * base) {
      ++extrapolated;
    } else if (std::fabs(f - base / 4) < 1e-12 * base) {
      ++interpolated;
    } else {
      ++mixed;
    }
  }
  EXPECT_GT(extrapolated, 0);
  EXPECT_GT(interpolated, 0);
  EXPECT_GT(mixed, 0);
  for (const RopeParams& p :
       {normal, neox, llama3, linear, yarn, magnitude, partial}) {
    for (int64_t i = 0; i < p.rope_dim / 2; ++i) {
      EXPECT_NEAR(RopeFrequency(p, i), TestFreq(p, i), 1e-14 * TestFreq(p, i))
          << i;
    }
    EXPECT_NEAR(RopeMagnitude(p), TestMagnitude(p), 1e-15);
  }

  for (const RopeParams& p :
       {normal, neox, llama3, linear, yarn, magnitude, partial}) {
    SCOPED_TRACE(
        absl::StrCat("neox=", p.neox, " freq_scale=", p.freq_scale,
                     " ext=", p.ext_factor, " factors=", p.freq_factors.size(),
                     " attn=", p.attn_factor, " rope_dim=", p.rope_dim));
    const int64_t n = 4, heads = 3;
    const std::vector<int32_t> pos = {0, 1, 77, 100000};
    const std::vector<float> x = RandomFloats(n * heads * p.head_dim, rng);
    std::vector<float> want = x;
    const int64_t half = p.rope_dim / 2;
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t h = 0; h < heads; ++h) {
        float* v = want.data() + (t * heads + h) * p.head_dim;
        const float* u = x.data() + (t * heads + h) * p.head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const int64_t a = p.neox ? i : 2 * i,
                        b = p.neox ? i + half : 2 * i + 1;
          const double th = pos[t] * TestFreq(p, i);
          const double c = std::cos(th) * TestMagnitude(p);
          const double s = std::sin(th) * TestMagnitude(p);
          v[a] = static_cast<float>(u[a] * c - u[b] * s);
          v[b] = static_cast<float>(u[a] * s + u[b] * c);
        }
      }
    }
    // Angles are float, as ggml's (theta_i = pos * theta_scale^i by i
    // float multiplications, then the factor division and the YaRN mix):
    // relative error below (2i + 8) 2^-24, which at position 1e5 is ~1e-3
    // radians.
    auto tolerance = [&](size_t e) {
      const int64_t t = static_cast<int64_t>(e) / (heads * p.head_dim);
      const int64_t dim = static_cast<int64_t>(e) % p.head_dim;
      if (dim >= p.rope_dim) return 4e-6;
      const int64_t i = p.neox ? dim % half : dim / 2;
      const double angle = pos[t] * TestFreq(p, i);
      return 4e-6 + 2 * angle * (2 * i + 8) * std::ldexp(1.0, -24);
    };
    for (NamedBackend& nb : AllBackends()) {
      std::vector<float> got = x;
      ASSERT_TRUE(nb.backend->Rope(got.data(), n, heads, pos, p).ok());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_NEAR(got[i], want[i], tolerance(i))
            << nb.name << " element " << i;
      }
    }
  }
}

}  // namespace
}  // namespace tpserve
