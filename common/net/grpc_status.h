// absl::Status <-> grpc::Status. The two share the canonical code numbering,
// so a code and message cross the wire unchanged; used wherever our
// absl::Status results meet gRPC (the doors, the worker service, the
// coordinator's worker group).
#ifndef TPSERVE_COMMON_NET_GRPC_STATUS_H_
#define TPSERVE_COMMON_NET_GRPC_STATUS_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"

namespace tpserve {

inline absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

inline grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace tpserve

#endif  // TPSERVE_COMMON_NET_GRPC_STATUS_H_
