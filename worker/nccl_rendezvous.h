// NCCL group creation through a gloo::rendezvous::Store: the coordinator's
// Rendezvous service (GrpcStore) that the Gloo groups already use, a
// HashStore between threads, or a FileStore. Rank 0 creates the unique id
// and sets it under `key`; the other ranks wait for the key (bounded by the
// timeout) and read it. A rebuilt group uses a new key (e.g. with the
// group's generation in it), so no rank reads a stale id.
#ifndef TPSERVE_WORKER_NCCL_RENDEZVOUS_H_
#define TPSERVE_WORKER_NCCL_RENDEZVOUS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gloo/rendezvous/store.h"
#include "worker/nccl_communicator.h"

namespace tpserve {

// Publishes (rank 0) or fetches (others) the NCCL unique id under `key`,
// then joins the group. Errors: InvalidArgument (rank/world), Unavailable
// or DeadlineExceeded (the store did not deliver the id in time), and
// NcclCommunicator::Create's.
absl::StatusOr<std::unique_ptr<NcclCommunicator>> CreateNcclCommunicator(
    gloo::rendezvous::Store& store, const std::string& key, int rank, int world,
    const NcclOptions& options);

}  // namespace tpserve

#endif  // TPSERVE_WORKER_NCCL_RENDEZVOUS_H_
