#include "common/sampling.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/logging.h"

namespace tpserve {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int kMaxTopLogprobs = 20;
// Tokens collected while scanning when top_p is set without top_k; when
// their mass reaches top_p (the common case) no other token is touched.
constexpr size_t kNucleusProbe = 256;

// Checks lo <= v <= hi (or lo < v when !lo_inclusive) and finiteness.
absl::Status CheckRange(const char* field, float v, float lo, float hi,
                        bool lo_inclusive = true) {
  const bool ok =
      std::isfinite(v) && (lo_inclusive ? v >= lo : v > lo) && v <= hi;
  if (ok) return absl::OkStatus();
  return FieldError(field, absl::StrCat(field, " must be a finite number in ",
                                        lo_inclusive ? "[" : "(", lo, ", ", hi,
                                        "], got ", v));
}

// Strict total order: larger value first, then lower id. Total (ids are
// unique), so selection results do not depend on the algorithm used.
struct Before {
  template <typename C>
  bool operator()(const C& a, const C& b) const {
    return a.value > b.value || (a.value == b.value && a.id < b.id);
  }
};

// A uniform double in [0, 1) from the top 53 bits: the same on every
// platform, unlike std::uniform_real_distribution.
double Uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

}  // namespace

absl::Status ValidateSamplingParams(const SamplingParams& p,
                                    int32_t vocab_size) {
  if (vocab_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size must be positive, got ", vocab_size));
  }
  absl::Status s = CheckRange("temperature", p.temperature, 0, 100);
  if (!s.ok()) return s;
  if (p.top_k < 0) {
    return FieldError(
        "top_k", absl::StrCat("top_k must be >= 0 (0 = off), got ", p.top_k));
  }
  s = CheckRange("top_p", p.top_p, 0, 1, /*lo_inclusive=*/false);
  if (!s.ok()) return s;
  s = CheckRange("min_p", p.min_p, 0, 1);
  if (!s.ok()) return s;
  s = CheckRange("repetition_penalty", p.repetition_penalty, 0, 10,
                 /*lo_inclusive=*/false);
  if (!s.ok()) return s;
  s = CheckRange("presence_penalty", p.presence_penalty, -2, 2);
  if (!s.ok()) return s;
  s = CheckRange("frequency_penalty", p.frequency_penalty, -2, 2);
  if (!s.ok()) return s;
  for (const auto& [id, bias] : p.logit_bias) {
    if (id < 0 || id >= vocab_size) {
      return FieldError("logit_bias",
                        absl::StrCat("logit_bias token id ", id,
                                     " is outside [0, ", vocab_size, ")"));
    }
    s = CheckRange("logit_bias value", bias, -100, 100);
    if (!s.ok()) {
      return FieldError("logit_bias",
                        absl::StrCat(s.message(), " (token ", id, ")"));
    }
  }
  if (p.top_logprobs < 0 || p.top_logprobs > kMaxTopLogprobs) {
    return FieldError("top_logprobs",
                      absl::StrCat("top_logprobs must be in [0, ",
                                   kMaxTopLogprobs, "], got ", p.top_logprobs));
  }
  return absl::OkStatus();
}

uint64_t PositionSeed(uint64_t seed, int64_t position) {
  uint64_t z =
      seed + 0x9E3779B97F4A7C15ull * (static_cast<uint64_t>(position) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Sampler::Sampler(SamplingParams params, int32_t vocab_size)
    : params_(std::move(params)),
      vocab_size_(vocab_size),
      counts_(static_cast<size_t>(std::max(vocab_size, 0)), 0) {
  if (params_.has_seed) {
    rng_.seed(params_.seed);
  } else {
    std::random_device rd;
    rng_.seed((static_cast<uint64_t>(rd()) << 32) ^ rd());
  }
  candidates_.reserve(counts_.size());
  top_.reserve(kMaxTopLogprobs);
  heap_.reserve(std::max<size_t>(
      kNucleusProbe,
      std::min<size_t>(std::max(params_.top_k, 0), counts_.size())));
}

void Sampler::ApplyPenalties(absl::Span<float> logits,
                             absl::Span<const int32_t> previous_tokens) {
  const auto in_range = [&](int32_t id) {
    return id >= 0 && static_cast<size_t>(id) < logits.size() &&
           id < vocab_size_;
  };
  for (const auto& [id, bias] : params_.logit_bias) {
    if (in_range(id)) logits[id] += bias;
  }
  const float rep = params_.repetition_penalty;
  const float presence = params_.presence_penalty;
  const float frequency = params_.frequency_penalty;
  if (rep == 1.0f && presence == 0.0f && frequency == 0.0f) return;
  // Count occurrences in counts_, then visit each distinct token once (the
  // first time it is met) and zero its count again, which restores the
  // all-zero invariant in O(len(previous_tokens)) without a hash map.
  for (int32_t id : previous_tokens) {
    if (in_range(id)) ++counts_[id];
  }
  for (int32_t id : previous_tokens) {
    if (!in_range(id) || counts_[id] == 0) continue;
    float& l = logits[id];
    if (rep != 1.0f) l = l > 0 ? l / rep : l * rep;
    l -= presence + frequency * static_cast<float>(counts_[id]);
    counts_[id] = 0;
  }
}

Sampler::Result Sampler::Sample(absl::Span<float> logits,
                                absl::Span<const int32_t> previous_tokens) {
  // A caller bug otherwise (the engine gathers exactly vocab_size logits).
  TP_CHECK(logits.size() == static_cast<size_t>(vocab_size_))
      << logits.size() << " logits for a vocabulary of " << vocab_size_;
  ApplyPenalties(logits, previous_tokens);
  const bool greedy = params_.temperature == 0.0f;
  const float scale = greedy ? 1.0f : 1.0f / params_.temperature;
  // Scaled logit; +inf (a broken model) is clamped so exp(v - max) stays
  // defined. NaN stays NaN and fails every comparison, so it is never kept.
  const auto scaled = [scale](float l) { return std::min(l * scale, FLT_MAX); };

  // How many of the most likely tokens to collect during the pass: exactly
  // top_k, or for top_p alone a probe of kNucleusProbe that usually holds
  // the whole nucleus of a trained model's distribution.
  size_t select = 0;
  if (!greedy) {
    if (params_.top_k > 0 && params_.top_k < vocab_size_) {
      select = static_cast<size_t>(params_.top_k);
    } else if (params_.top_p < 1.0f) {
      select = kNucleusProbe;
    }
  }

  // One pass: the maximum (the greedy choice; the strict comparison gives
  // ties to the lowest id), the softmax normalizer z = sum exp(v - max)
  // maintained online (rescaled when the maximum moves, O(log V) times for
  // unordered logits), and the `select` best tokens in a bounded heap whose
  // front is the worst kept one.
  float max = kNegInf;
  int32_t argmax = -1;
  double z = 0;
  heap_.clear();
  const Before before;
  for (int32_t i = 0; i < vocab_size_; ++i) {
    const float v = scaled(logits[i]);
    if (!(v > kNegInf)) continue;  // -inf and NaN: probability 0.
    if (v > max) {
      z = z * std::exp(static_cast<double>(max) - v) + 1.0;
      max = v;
      argmax = i;
    } else {
      z += std::exp(v - max);
    }
    if (select == 0) continue;
    const Candidate cand{v, i};
    if (heap_.size() < select) {
      heap_.push_back(cand);  // Capacity reserved: no realloc.
      std::push_heap(heap_.begin(), heap_.end(), before);
    } else if (before(cand, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), before);
      heap_.back() = cand;
      std::push_heap(heap_.begin(), heap_.end(), before);
    }
  }
  Result result;
  if (argmax < 0) {
    result.logprob = kNegInf;
    return result;
  }
  const float log_z = static_cast<float>(std::log(z));

  if (greedy) {
    result.token = argmax;
  } else {
    // Candidates with value = exp(v - max): the best token has value 1.
    candidates_.clear();
    double total = 0;
    bool nucleus_done = false;
    if (select > 0) {
      std::sort(heap_.begin(), heap_.end(), before);
      for (const Candidate& h : heap_) {
        candidates_.push_back({std::exp(h.value - max), h.id});
        total += candidates_.back().value;
      }
      if (select == kNucleusProbe) {
        // The probe holds the nucleus iff its prefix reaches top_p of z.
        const double target = params_.top_p * z;
        double cum = 0;
        for (size_t n = 0; n < candidates_.size(); ++n) {
          cum += candidates_[n].value;
          if (cum >= target) {
            candidates_.resize(n + 1);  // Shrinks: no allocation.
            total = cum;
            nucleus_done = true;
            break;
          }
        }
        if (!nucleus_done) candidates_.clear();  // Flat: take everything.
      }
    }
    if (candidates_.empty()) {
      // No truncation, min-p only, or a nucleus wider than the probe: every
      // token is a candidate. Capacity is vocab_size_: no realloc.
      total = 0;
      for (int32_t i = 0; i < vocab_size_; ++i) {
        const float v = scaled(logits[i]);
        if (!(v > kNegInf)) continue;
        candidates_.push_back({std::exp(v - max), i});
        total += candidates_.back().value;
      }
    }
    result.token = SampleCandidates(total, /*apply_top_p=*/!nucleus_done);
  }
  result.logprob = scaled(logits[result.token]) - max - log_z;
  FillTopLogprobs(logits, scale, max, log_z, result);
  return result;
}

int32_t Sampler::SampleCandidates(double total, bool apply_top_p) {
  // c[0, n) are the tokens still in play, value = exp(logit - max) (so the
  // most likely token has value 1), `total` their sum. Top-k is already
  // applied: candidates_ holds at most top_k tokens.
  std::vector<Candidate>& c = candidates_;
  size_t n = c.size();

  // Top-p: the smallest most-likely prefix whose mass reaches top_p of the
  // (top-k renormalized) mass. Only a growing prefix is sorted: select the
  // next block with nth_element and sort just that block.
  if (apply_top_p && params_.top_p < 1.0f) {
    const double target = params_.top_p * total;
    double cum = 0;
    size_t sorted = 0;  // c[0, sorted) is sorted and holds the top `sorted`.
    size_t keep = 0;
    for (size_t m = std::min<size_t>(n, 64); keep == 0;
         m = std::min(n, m * 8)) {
      std::nth_element(c.begin() + sorted, c.begin() + (m - 1), c.begin() + n,
                       Before());
      std::sort(c.begin() + sorted, c.begin() + m, Before());
      for (; sorted < m; ++sorted) {
        cum += c[sorted].value;
        if (cum >= target) {
          keep = sorted + 1;
          break;
        }
      }
      if (keep == 0 && m == n) keep = n;  // Rounding kept the target away.
    }
    total = cum;
    n = keep;
  }

  // Min-p: keep p >= min_p * p_max, i.e. value >= min_p. The most likely
  // token (value 1) always survives, so n stays >= 1.
  if (params_.min_p > 0.0f) {
    size_t out = 0;
    total = 0;
    for (size_t i = 0; i < n; ++i) {
      if (c[i].value >= params_.min_p) {
        total += c[i].value;
        c[out++] = c[i];
      }
    }
    n = out;
  }

  // Draw from the renormalized survivors.
  const double u = Uniform01(rng_) * total;
  double cum = 0;
  for (size_t i = 0; i < n; ++i) {
    cum += c[i].value;
    if (u < cum) return c[i].id;
  }
  return c[n - 1].id;  // u landed on the rounding error at the very end.
}

void Sampler::FillTopLogprobs(absl::Span<const float> logits, float scale,
                              float max, float log_z, Result& result) {
  const size_t want = static_cast<size_t>(params_.top_logprobs);
  if (want == 0) return;
  // Insertion into a sorted list of at most 20: one pass over the logits,
  // most of which fail the first comparison with the current last entry.
  top_.clear();
  for (int32_t i = 0; i < vocab_size_; ++i) {
    const Candidate cand{std::min(logits[i] * scale, FLT_MAX), i};
    if (!(cand.value > kNegInf)) continue;
    if (top_.size() == want) {
      if (!Before()(cand, top_.back())) continue;
      top_.back() = cand;
    } else {
      top_.push_back(cand);  // Capacity 20: no realloc.
    }
    for (size_t j = top_.size() - 1; j > 0 && Before()(top_[j], top_[j - 1]);
         --j) {
      std::swap(top_[j], top_[j - 1]);
    }
  }
  result.top_logprobs.reserve(top_.size());
  for (const Candidate& cand : top_) {
    result.top_logprobs.emplace_back(cand.id, cand.value - max - log_z);
  }
}

}  // namespace tpserve
