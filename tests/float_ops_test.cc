// kernels/cpu/float_ops: ggml's expf against libm, its special values, and
// one attention head in both of ggml's orders against a double reference.
// (Bit-for-bit agreement with llama.cpp itself is checked end to end by
// tests/llama_shard_test.cc against llama.cpp's recorded logits.)
#include "kernels/cpu/float_ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/reference_ops.h"

namespace tpserve::cpu {
namespace {

// Distance in units in the last place between two finite floats of one
// sign.
int64_t UlpDistance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  return std::llabs(int64_t{ia} - ib);
}

TEST(FloatOpsTest, ExpFWithinTwoUlpOfLibm) {
  // ggml's polynomial is within 1.5 ulp (its comment); check 2 over the
  // range softmax and SiLU use, normal results only.
  int64_t worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    const float want = static_cast<float>(std::exp(double{x}));
    worst = std::max(worst, UlpDistance(ExpF(x), want));
  }
  EXPECT_LE(worst, 2);
  EXPECT_EQ(ExpF(0.0f), 1.0f);
  EXPECT_EQ(ExpF(-0.0f), 1.0f);
}

TEST(FloatOpsTest, ExpFSpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(ExpF(-inf), 0.0f);  // Masked softmax positions.
  EXPECT_EQ(ExpF(inf), inf);
  EXPECT_TRUE(std::isnan(ExpF(std::nanf(""))));
  EXPECT_EQ(ExpF(-200.0f), 0.0f);
  EXPECT_EQ(ExpF(100.0f), inf);
  // Subnormal results round once, as _mm512_scalef_ps does: within an ulp
  // of the subnormal spacing.
  const float tiny = ExpF(-100.0f);
  EXPECT_GT(tiny, 0.0f);
  EXPECT_LT(tiny, std::numeric_limits<float>::min());
  EXPECT_NEAR(
      tiny, std::exp(-100.0),
      2 * std::numeric_limits<float>::denorm_min() + 1e-6 * std::exp(-100.0));
}

TEST(FloatOpsTest, SwiGluMatchesDefinition) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-12, 12);
  std::vector<float> gate(37), up(37);
  for (float& g : gate) g = dist(rng);
  for (float& u : up) u = dist(rng);
  std::vector<float> got = gate;
  SwiGlu(got.data(), up.data(), 37);
  for (size_t i = 0; i < gate.size(); ++i) {
    const double g = gate[i];
    const double want = g / (1 + std::exp(-g)) * up[i];
    EXPECT_NEAR(got[i], want, 1e-6 * (1 + std::fabs(want))) << i;
  }
}

// One head, both orders, against double arithmetic on the same fp16
// values (q, keys and values already fp16; weights rounded to fp16).
TEST(FloatOpsTest, AttendHeadBothOrdersMatchDoubleReference) {
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> dist(-1, 1);
  for (int64_t hd : {20, 64, 72, 128}) {
    for (int64_t len : {1, 5, 16, 63, 64, 65, 300}) {
      SCOPED_TRACE(testing::Message() << "hd " << hd << " len " << len);
      std::vector<float> q(hd), kv(2 * len * hd);
      for (float& x : q) x = RoundToFp16(dist(rng) * 2);
      for (float& x : kv) x = RoundToFp16(dist(rng) * 2);
      std::vector<const void*> keys(len), values(len);
      std::vector<const void*> keys16(len), values16(len);
      std::vector<uint16_t> kv16(kv.size());
      FloatToHalfRow(kv.data(), static_cast<int64_t>(kv.size()), kv16.data());
      for (int64_t p = 0; p < len; ++p) {
        keys[p] = kv.data() + p * hd;
        values[p] = kv.data() + (len + p) * hd;
        keys16[p] = kv16.data() + p * hd;
        values16[p] = kv16.data() + (len + p) * hd;
      }
      const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
      std::vector<double> w(len);
      double mx = -1e300, sum = 0;
      for (int64_t p = 0; p < len; ++p) {
        double d = 0;
        const float* kp = kv.data() + p * hd;
        for (int64_t i = 0; i < hd; ++i) d += double{q[i]} * kp[i];
        w[p] = d * scale;
        mx = std::max(mx, w[p]);
      }
      for (double& x : w) sum += (x = std::exp(x - mx));
      std::vector<double> want(hd, 0.0);
      for (int64_t p = 0; p < len; ++p) {
        const double wp = RoundToFp16(static_cast<float>(w[p] / sum));
        const float* vp = kv.data() + (len + p) * hd;
        for (int64_t i = 0; i < hd; ++i) want[i] += wp * vp[i];
      }
      std::vector<float> scratch(AttentionScratchFloats(len, hd));
      for (AttentionOrder order :
           {AttentionOrder::kVecDot, AttentionOrder::kTiled}) {
        std::vector<float> out(hd, NAN), out16(hd, NAN);
        AttendHead(q.data(), keys.data(), values.data(), /*kv_f16=*/false, len,
                   hd, scale, order, scratch.data(), out.data());
        AttendHead(q.data(), keys16.data(), values16.data(), /*kv_f16=*/true,
                   len, hd, scale, order, scratch.data(), out16.data());
        // Half rows hold the same values: the same result, bit for bit.
        EXPECT_EQ(out, out16);
        for (int64_t i = 0; i < hd; ++i) {
          // See backend_ops_test's kAttentionTol.
          EXPECT_NEAR(out[i], want[i], 2e-4) << "element " << i;
        }
      }
    }
  }
}

// The row conversions (F16C where the CPU has it) agree with the scalar
// ones bit for bit, special values included.
TEST(FloatOpsTest, HalfRowsMatchScalarConversions) {
  std::vector<uint16_t> all(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> f(all.size());
  HalfToFloatRow(all.data(), static_cast<int64_t>(all.size()), f.data());
  for (size_t i = 0; i < all.size(); ++i) {
    const float want = Fp16ToFp32(all[i]);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(f[i])) << i;
    } else {
      ASSERT_EQ(f[i], want) << i;
    }
  }
  std::mt19937 rng(11);
  std::uniform_int_distribution<uint32_t> bits;
  std::vector<float> x(4099);  // Not a multiple of 8: the scalar tail too.
  for (float& v : x) {
    const uint32_t b = bits(rng);
    std::memcpy(&v, &b, 4);
  }
  x[0] = 65519.0f;  // Rounds down to the largest half.
  x[1] = 65520.0f;  // Rounds up to inf.
  x[2] = 1e-8f;     // A half subnormal.
  x[3] = -0.0f;
  std::vector<uint16_t> h(x.size());
  FloatToHalfRow(x.data(), static_cast<int64_t>(x.size()), h.data());
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(h[i], Fp32ToFp16(x[i])) << i << ": " << x[i];
  }
}

}  // namespace
}  // namespace tpserve::cpu
