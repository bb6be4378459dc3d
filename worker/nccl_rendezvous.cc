#include "worker/nccl_rendezvous.h"

#include <exception>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tpserve {

absl::StatusOr<std::unique_ptr<NcclCommunicator>> CreateNcclCommunicator(
    gloo::rendezvous::Store& store, const std::string& key, int rank, int world,
    const NcclOptions& options) {
  if (world < 1 || rank < 0 || rank >= world) {
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL: rank ", rank, " of world ", world, " is invalid"));
  }
  if (key.empty()) {
    return absl::InvalidArgumentError("NCCL rendezvous: empty store key");
  }
  std::string id;
  if (rank == 0) {
    absl::StatusOr<std::string> fresh = NcclCommunicator::NewUniqueId();
    if (!fresh.ok()) return fresh.status();
    id = *fresh;
  }
  // Gloo stores report failures by throwing; nothing may escape.
  try {
    if (rank == 0) {
      store.set(key, std::vector<char>(id.begin(), id.end()));
    } else {
      store.wait({key}, options.timeout);
      const std::vector<char> v = store.get(key);
      id.assign(v.begin(), v.end());
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(
        "NCCL rendezvous through the store (key '", key, "'): ", e.what()));
  } catch (...) {
    return absl::UnavailableError(absl::StrCat(
        "NCCL rendezvous through the store (key '", key, "') failed"));
  }
  return NcclCommunicator::Create(id, rank, world, options);
}

}  // namespace tpserve
