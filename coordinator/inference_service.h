// The public tpserve.v1.Inference gRPC service (callback API).
//
// Today it answers GetModelInfo; generation RPCs join it with the scheduler.
#ifndef TPSERVE_COORDINATOR_INFERENCE_SERVICE_H_
#define TPSERVE_COORDINATOR_INFERENCE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "tpserve/v1/inference.grpc.pb.h"

namespace tpserve {

class InferenceService final : public v1::Inference::CallbackService {
 public:
  explicit InferenceService(v1::ModelInfo info) : info_(std::move(info)) {}

  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const v1::GetModelInfoRequest* request,
                                         v1::ModelInfo* response) override;

 private:
  const v1::ModelInfo info_;  // Immutable after construction: no lock needed.
};

}  // namespace tpserve

#endif  // TPSERVE_COORDINATOR_INFERENCE_SERVICE_H_
