// Sampler: greedy and truncation rules on hand-made logits, each penalty's
// exact arithmetic, empirical distributions against the softmax, seeding,
// reported logprobs, and validation of every field.
#include "common/sampling.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/field_error.h"

namespace tpserve {
namespace {

using ::testing::HasSubstr;

constexpr float kInf = std::numeric_limits<float>::infinity();

SamplingParams Seeded(float temperature, uint64_t seed = 42) {
  SamplingParams p;
  p.temperature = temperature;
  p.seed = seed;
  p.has_seed = true;
  return p;
}

int32_t SampleOnce(Sampler& s, std::vector<float> logits,
                   const std::vector<int32_t>& previous = {}) {
  return s.Sample(absl::MakeSpan(logits), previous).token;
}

std::vector<double> Softmax(const std::vector<float>& logits, double t) {
  std::vector<double> p(logits.size());
  double max = *std::max_element(logits.begin(), logits.end()) / t;
  double z = 0;
  for (size_t i = 0; i < p.size(); ++i)
    z += p[i] = std::exp(logits[i] / t - max);
  for (double& x : p) x /= z;
  return p;
}

// Frequencies of each token over `n` samples.
std::vector<double> Frequencies(Sampler& s, const std::vector<float>& logits,
                                int n) {
  std::vector<double> f(logits.size(), 0);
  for (int i = 0; i < n; ++i) f[SampleOnce(s, logits)] += 1.0 / n;
  return f;
}

std::vector<float> RandomLogits(int n, uint64_t seed, float scale = 3.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
  struct Case {
    std::vector<float> logits;
    int32_t want;
  };
  const Case cases[] = {
      {{0.1f, 3.0f, -1.0f, 2.9f}, 1},    {{5.0f, 5.0f, 1.0f}, 0},
      {{-3.0f, -1.0f, -1.0f, -2.0f}, 1}, {{-kInf, -kInf, 0.0f}, 2},
      {{std::nanf(""), 1.0f, 0.5f}, 1},  {{7.0f}, 0},
  };
  for (const Case& c : cases) {
    Sampler s(Seeded(0.0f), static_cast<int32_t>(c.logits.size()));
    EXPECT_EQ(SampleOnce(s, c.logits), c.want);
  }
}

TEST(Sampler, AllMaskedGivesTokenZeroWithMinusInfLogprob) {
  Sampler s(Seeded(1.0f), 3);
  std::vector<float> logits = {-kInf, std::nanf(""), -kInf};
  Sampler::Result r = s.Sample(absl::MakeSpan(logits), {});
  EXPECT_EQ(r.token, 0);
  EXPECT_EQ(r.logprob, -kInf);
}

TEST(Sampler, TopKOneIsGreedyAtAnyTemperature) {
  for (float t : {0.1f, 0.5f, 1.0f, 2.0f, 10.0f, 100.0f}) {
    SamplingParams p = Seeded(t);
    p.top_k = 1;
    const std::vector<float> logits = RandomLogits(1000, 7);
    const int32_t argmax = static_cast<int32_t>(
        std::max_element(logits.begin(), logits.end()) - logits.begin());
    Sampler s(p, 1000);
    for (int i = 0; i < 50; ++i) ASSERT_EQ(SampleOnce(s, logits), argmax);
  }
}

TEST(Sampler, TinyTopPIsGreedy) {
  SamplingParams p = Seeded(1.5f);
  p.top_p = 1e-6f;
  const std::vector<float> logits = RandomLogits(49152, 11, 1.0f);
  const int32_t argmax = static_cast<int32_t>(
      std::max_element(logits.begin(), logits.end()) - logits.begin());
  Sampler s(p, 49152);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(SampleOnce(s, logits), argmax);
}

// Probabilities 0.5, 0.3, 0.15, 0.05 as logits.
const std::vector<float> kFour = {std::log(0.5f), std::log(0.3f),
                                  std::log(0.15f), std::log(0.05f)};

TEST(Sampler, TruncationKeepsExpectedTokens) {
  struct Case {
    const char* name;
    int top_k;
    float top_p;
    float min_p;
    std::vector<double> want;  // Renormalized over the survivors.
  };
  const Case cases[] = {
      {"top_k=2", 2, 1.0f, 0.0f, {0.625, 0.375, 0, 0}},
      {"top_p=0.6", 0, 0.6f, 0.0f, {0.625, 0.375, 0, 0}},
      {"top_p=0.85", 0, 0.85f, 0.0f, {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0}},
      {"min_p=0.4", 0, 1.0f, 0.4f, {0.625, 0.375, 0, 0}},
      {"min_p=0.25", 0, 1.0f, 0.25f, {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0}},
      {"min_p=1", 0, 1.0f, 1.0f, {1, 0, 0, 0}},
      {"top_k=3,top_p=0.6", 3, 0.6f, 0.0f, {0.625, 0.375, 0, 0}},
      // top_p over the top-3 renormalized mass (0.95): 0.5/0.95 < 0.55.
      {"top_k=3,top_p=0.55", 3, 0.55f, 0.0f, {0.625, 0.375, 0, 0}},
  };
  for (const Case& c : cases) {
    SamplingParams p = Seeded(1.0f, 3);
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    p.min_p = c.min_p;
    Sampler s(p, 4);
    const std::vector<double> f = Frequencies(s, kFour, 20000);
    for (size_t i = 0; i < 4; ++i) {
      if (c.want[i] == 0) {
        EXPECT_EQ(f[i], 0) << c.name << " token " << i;
      } else {
        EXPECT_NEAR(f[i], c.want[i], 0.02) << c.name << " token " << i;
      }
    }
  }
}

// The sampled token always lies in the nucleus computed independently, on
// a large vocabulary where the prefix sort has to grow several times.
TEST(Sampler, TopPLargeVocabularyStaysInNucleus) {
  const int32_t v = 49152;
  const std::vector<float> logits = RandomLogits(v, 5, 1.0f);
  std::vector<double> prob = Softmax(logits, 1.0);
  std::vector<int32_t> order(v);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return prob[a] > prob[b]; });
  std::vector<bool> in_nucleus(v, false);
  double cum = 0;
  for (int32_t id : order) {
    in_nucleus[id] = true;
    cum += prob[id];
    if (cum >= 0.5) break;
  }
  SamplingParams p = Seeded(1.0f);
  p.top_p = 0.5f;
  Sampler s(p, v);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(in_nucleus[SampleOnce(s, logits)]);
}

TEST(Sampler, PenaltiesArithmetic) {
  const std::vector<float> base = {2.0f, -2.0f, 1.0f, 0.5f};
  const std::vector<int32_t> previous = {0, 1, 1, -1, 99};  // Bad ids ignored.
  struct Case {
    const char* name;
    float rep, presence, frequency;
    std::vector<std::pair<int32_t, float>> bias;
    std::vector<float> want;
  };
  const Case cases[] = {
      {"none", 1, 0, 0, {}, {2.0f, -2.0f, 1.0f, 0.5f}},
      {"repetition 2", 2, 0, 0, {}, {1.0f, -4.0f, 1.0f, 0.5f}},
      {"repetition 0.5", 0.5f, 0, 0, {}, {4.0f, -1.0f, 1.0f, 0.5f}},
      {"presence 0.5", 1, 0.5f, 0, {}, {1.5f, -2.5f, 1.0f, 0.5f}},
      {"frequency 0.5", 1, 0, 0.5f, {}, {1.5f, -3.0f, 1.0f, 0.5f}},
      {"negative frequency", 1, 0, -1.0f, {}, {3.0f, 0.0f, 1.0f, 0.5f}},
      // Repetition first, then presence and frequency (x count).
      {"all three", 2, 0.5f, 0.25f, {}, {0.25f, -5.0f, 1.0f, 0.5f}},
      {"bias", 1, 0, 0, {{2, 3.0f}, {3, -0.5f}}, {2.0f, -2.0f, 4.0f, 0.0f}},
      // Bias applies before the repetition penalty sees the sign.
      {"bias then repetition", 2, 0, 0, {{1, 4.0f}}, {1.0f, 1.0f, 1.0f, 0.5f}},
  };
  for (const Case& c : cases) {
    SamplingParams p = Seeded(1.0f);
    p.repetition_penalty = c.rep;
    p.presence_penalty = c.presence;
    p.frequency_penalty = c.frequency;
    p.logit_bias = c.bias;
    Sampler s(p, 4);
    for (int round = 0; round < 2; ++round) {  // Scratch counts reset.
      std::vector<float> logits = base;
      s.ApplyPenalties(absl::MakeSpan(logits), previous);
      EXPECT_THAT(logits, ::testing::Pointwise(::testing::FloatEq(), c.want))
          << c.name << " round " << round;
    }
  }
}

TEST(Sampler, LogitBiasBansAndForces) {
  SamplingParams ban = Seeded(0.0f);
  ban.logit_bias = {{1, -100.0f}};
  Sampler banned(ban, 4);
  EXPECT_EQ(SampleOnce(banned, {0.0f, 5.0f, 1.0f, 0.0f}), 2);

  SamplingParams force = Seeded(1.0f);
  force.logit_bias = {{3, 100.0f}};
  Sampler forced(force, 4);
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(SampleOnce(forced, {5.0f, 4.0f, 3.0f, -10.0f}), 3);
  }
}

TEST(Sampler, EmpiricalDistributionMatchesSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f, -1.0f};
  for (float t : {1.0f, 0.5f, 2.0f}) {
    Sampler s(Seeded(t, 1234), 4);
    const std::vector<double> f = Frequencies(s, logits, 20000);
    const std::vector<double> want = Softmax(logits, t);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_NEAR(f[i], want[i], 0.02) << "temperature " << t << " token " << i;
    }
  }
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferent) {
  const std::vector<float> logits = RandomLogits(1000, 3, 0.5f);
  const auto run = [&](uint64_t seed) {
    SamplingParams p = Seeded(1.0f, seed);
    p.top_k = 50;
    p.top_p = 0.95f;
    Sampler s(p, 1000);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 100; ++i) tokens.push_back(SampleOnce(s, logits));
    return tokens;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

TEST(Sampler, LogprobsOfProcessedDistribution) {
  const std::vector<float> logits = RandomLogits(100, 9);
  for (float t : {0.0f, 0.7f, 1.0f}) {
    SamplingParams p = Seeded(t);
    p.top_logprobs = 5;
    p.top_k = 3;  // Truncation does not change reported logprobs.
    p.presence_penalty = 1.0f;
    const std::vector<int32_t> previous = {4, 5};
    Sampler s(p, 100);
    std::vector<float> processed = logits;
    processed[4] -= 1.0f;
    processed[5] -= 1.0f;
    const std::vector<double> want = Softmax(processed, t == 0 ? 1.0 : t);
    for (int i = 0; i < 20; ++i) {
      std::vector<float> copy = logits;
      Sampler::Result r = s.Sample(absl::MakeSpan(copy), previous);
      EXPECT_NEAR(r.logprob, std::log(want[r.token]), 1e-4);
      ASSERT_EQ(r.top_logprobs.size(), 5u);
      double mass = 0;
      for (size_t j = 0; j < r.top_logprobs.size(); ++j) {
        const auto& [id, lp] = r.top_logprobs[j];
        EXPECT_NEAR(lp, std::log(want[id]), 1e-4);
        if (j > 0) {
          EXPECT_GE(r.top_logprobs[j - 1].second, lp);
        }
        mass += std::exp(lp);
      }
      EXPECT_LE(mass, 1.0 + 1e-5);
      // The sampled token is among the top 3, which lead the list.
      EXPECT_TRUE(r.token == r.top_logprobs[0].first ||
                  r.token == r.top_logprobs[1].first ||
                  r.token == r.top_logprobs[2].first);
    }
  }
}

TEST(ValidateSamplingParams, AcceptsDefaultsAndLimits) {
  EXPECT_TRUE(ValidateSamplingParams(SamplingParams(), 10).ok());
  SamplingParams p;
  p.temperature = 0;
  p.top_k = 1000000;
  p.top_p = 1;
  p.min_p = 1;
  p.repetition_penalty = 10;
  p.presence_penalty = -2;
  p.frequency_penalty = 2;
  p.logit_bias = {{0, -100}, {9, 100}};
  p.top_logprobs = 20;
  EXPECT_TRUE(ValidateSamplingParams(p, 10).ok());
}

TEST(ValidateSamplingParams, RejectsBadFieldsByName) {
  const float nan = std::nanf("");
  struct Case {
    const char* field;
    void (*set)(SamplingParams&, float);
    std::vector<float> bad;
  };
  const Case cases[] = {
      {"temperature",
       [](SamplingParams& p, float v) { p.temperature = v; },
       {nan, kInf, -kInf, -0.1f, 100.5f}},
      {"top_p",
       [](SamplingParams& p, float v) { p.top_p = v; },
       {nan, kInf, 0.0f, -0.5f, 1.01f}},
      {"min_p",
       [](SamplingParams& p, float v) { p.min_p = v; },
       {nan, -kInf, -0.01f, 1.5f}},
      {"repetition_penalty",
       [](SamplingParams& p, float v) { p.repetition_penalty = v; },
       {nan, kInf, 0.0f, -1.0f, 10.5f}},
      {"presence_penalty",
       [](SamplingParams& p, float v) { p.presence_penalty = v; },
       {nan, kInf, -2.5f, 2.01f}},
      {"frequency_penalty",
       [](SamplingParams& p, float v) { p.frequency_penalty = v; },
       {nan, -kInf, -3.0f, 2.5f}},
      {"logit_bias",
       [](SamplingParams& p, float v) {
         p.logit_bias = {{1, v}};
       },
       {nan, kInf, -100.5f, 101.0f}},
      {"top_k",
       [](SamplingParams& p, float v) { p.top_k = static_cast<int>(v); },
       {-1.0f}},
      {"top_logprobs",
       [](SamplingParams& p, float v) { p.top_logprobs = static_cast<int>(v); },
       {-1.0f, 21.0f}},
  };
  for (const Case& c : cases) {
    for (float v : c.bad) {
      SamplingParams p;
      c.set(p, v);
      absl::Status s = ValidateSamplingParams(p, 10);
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument)
          << c.field << " = " << v;
      EXPECT_THAT(std::string(s.message()), HasSubstr(c.field))
          << c.field << " = " << v;
      EXPECT_EQ(ErrorField(s), c.field) << c.field << " = " << v;
    }
  }
  for (int32_t id : {-1, 10, 1 << 30}) {
    SamplingParams p;
    p.logit_bias = {{id, 1.0f}};
    absl::Status s = ValidateSamplingParams(p, 10);
    EXPECT_THAT(std::string(s.message()), HasSubstr("logit_bias")) << id;
    EXPECT_EQ(ErrorField(s), "logit_bias") << id;
  }
  // Not a request field: no field payload.
  absl::Status s = ValidateSamplingParams(SamplingParams(), 0);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(ErrorField(s), std::nullopt);
}

}  // namespace
}  // namespace tpserve
