#include "worker/sampling_proto.h"

namespace tpserve {

void SamplingToProto(const SamplingParams& p, worker::v1::Sampling* out) {
  out->set_temperature(p.temperature);
  out->set_top_k(p.top_k);
  out->set_top_p(p.top_p);
  out->set_min_p(p.min_p);
  out->set_repetition_penalty(p.repetition_penalty);
  out->set_presence_penalty(p.presence_penalty);
  out->set_frequency_penalty(p.frequency_penalty);
  // Repeated ids add up, as the sampler would apply them one after another.
  for (const auto& [id, bias] : p.logit_bias) {
    (*out->mutable_logit_bias())[id] += bias;
  }
  out->set_seed(p.seed);
  out->set_top_logprobs(p.top_logprobs);
}

SamplingParams SamplingFromProto(const worker::v1::Sampling& s) {
  SamplingParams p;
  p.temperature = s.temperature();
  p.top_k = s.top_k();
  p.top_p = s.top_p();
  p.min_p = s.min_p();
  p.repetition_penalty = s.repetition_penalty();
  p.presence_penalty = s.presence_penalty();
  p.frequency_penalty = s.frequency_penalty();
  // Map order is unspecified; biases of distinct ids commute.
  for (const auto& [id, bias] : s.logit_bias()) {
    p.logit_bias.emplace_back(id, bias);
  }
  // The coordinator always resolves a seed, so every draw is reproducible.
  p.seed = s.seed();
  p.has_seed = true;
  p.top_logprobs = s.top_logprobs();
  return p;
}

}  // namespace tpserve
