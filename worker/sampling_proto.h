// The sampling parameters on the worker protocol: the one translation
// between the core's SamplingParams (common/sampling.h) and
// tpserve.worker.v1.Sampling, used by both ends (the coordinator's
// WorkerGroup writes it, the worker reads it).
#ifndef TPSERVE_WORKER_SAMPLING_PROTO_H_
#define TPSERVE_WORKER_SAMPLING_PROTO_H_

#include "common/sampling.h"
#include "tpserve/worker/v1/worker.pb.h"

namespace tpserve {

void SamplingToProto(const SamplingParams& params, worker::v1::Sampling* out);

// The coordinator always resolves a seed, so the result has has_seed set.
SamplingParams SamplingFromProto(const worker::v1::Sampling& proto);

}  // namespace tpserve

#endif  // TPSERVE_WORKER_SAMPLING_PROTO_H_
