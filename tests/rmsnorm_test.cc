#include "kernels/rmsnorm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace tpserve {
namespace {

TEST(RmsNormReferenceTest, MatchesHandComputedValues) {
  // Row [3, 4]: mean square 12.5 -> scale 1/sqrt(12.5 + eps).
  std::vector<float> x = {3, 4, -1, 1}, w = {1, 2}, y(4);
  ASSERT_TRUE(RmsNormReference(x, w, 2, 2, 1e-6f, absl::MakeSpan(y)).ok());
  const double s0 = 1 / std::sqrt(12.5 + 1e-6), s1 = 1 / std::sqrt(1 + 1e-6);
  EXPECT_FLOAT_EQ(y[0], 3 * s0);
  EXPECT_FLOAT_EQ(y[1], 8 * s0);
  EXPECT_FLOAT_EQ(y[2], -1 * s1);
  EXPECT_FLOAT_EQ(y[3], 2 * s1);
}

TEST(RmsNormReferenceTest, OutputHasUnitRmsWithUnitWeightAndMayAlias) {
  std::vector<float> x(3 * 576), w(576, 1.f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.1 * i) * (i % 7);
  ASSERT_TRUE(RmsNormReference(x, w, 3, 576, 1e-5f, absl::MakeSpan(x)).ok());
  for (int r = 0; r < 3; ++r) {
    double ss = 0;
    for (int i = 0; i < 576; ++i) ss += x[r * 576 + i] * x[r * 576 + i];
    EXPECT_NEAR(std::sqrt(ss / 576), 1.0, 1e-4);
  }
}

TEST(RmsNormReferenceTest, RefusesMismatchedShapes) {
  std::vector<float> x(6), w(3), y(6);
  EXPECT_FALSE(RmsNormReference(x, w, 3, 3, 1e-5f, absl::MakeSpan(y)).ok());
  EXPECT_FALSE(RmsNormReference(x, w, 2, 3, 0.f, absl::MakeSpan(y)).ok());
  EXPECT_FALSE(
      RmsNormReference(x, w, 2, 3, 1e-5f, absl::MakeSpan(y).subspan(1)).ok());
  EXPECT_TRUE(RmsNormReference(x, w, 2, 3, 1e-5f, absl::MakeSpan(y)).ok());
}

}  // namespace
}  // namespace tpserve
