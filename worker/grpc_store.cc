#include "worker/grpc_store.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gloo/common/error.h"

namespace tpserve {
namespace {

// The RPC deadline is the wait plus this much, so the service's own
// DEADLINE_EXCEEDED (which names the missing keys) normally arrives first.
constexpr std::chrono::milliseconds kRpcSlack{5000};

std::chrono::system_clock::time_point Deadline(std::chrono::milliseconds wait) {
  return std::chrono::system_clock::now() + wait + kRpcSlack;
}

[[noreturn]] void Throw(const std::string& what, const grpc::Status& status) {
  std::string text =
      absl::StrCat("rendezvous ", what, ": ", status.error_message(),
                   " (gRPC code ", static_cast<int>(status.error_code()), ")");
  // GlooCommunicator classifies by text: "timed out" means a rank did not
  // show up in time, anything else a broken connection.
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    text = absl::StrCat("timed out: ", text);
  }
  throw gloo::IoException(text);
}

}  // namespace

GrpcStore::GrpcStore(std::shared_ptr<grpc::ChannelInterface> channel,
                     std::chrono::milliseconds timeout)
    : stub_(worker::v1::Rendezvous::NewStub(std::move(channel))),
      timeout_(timeout) {}

void GrpcStore::set(const std::string& key, const std::vector<char>& data) {
  worker::v1::RendezvousSetRequest request;
  request.set_key(key);
  request.set_value(data.data(), data.size());
  worker::v1::RendezvousSetResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline(timeout_));
  const grpc::Status status = stub_->Set(&context, request, &response);
  if (!status.ok()) Throw(absl::StrCat("set of '", key, "'"), status);
}

std::vector<char> GrpcStore::get(const std::string& key) {
  std::vector<std::string> values = GetAll({key}, timeout_);
  return std::vector<char>(values[0].begin(), values[0].end());
}

void GrpcStore::wait(const std::vector<std::string>& keys) {
  wait(keys, timeout_);
}

void GrpcStore::wait(const std::vector<std::string>& keys,
                     const std::chrono::milliseconds& timeout) {
  // The values come back and are dropped: rendezvous values are a few
  // hundred bytes of addresses, not worth a separate "exists" RPC.
  GetAll(keys, timeout);
}

std::vector<std::string> GrpcStore::GetAll(const std::vector<std::string>& keys,
                                           std::chrono::milliseconds timeout) {
  if (keys.empty()) return {};
  // Gloo's kNoTimeout (zero) would mean "forever"; a hung rendezvous must
  // fail instead (DESIGN.md failure model).
  if (timeout.count() <= 0) timeout = timeout_;
  const int64_t ms =
      std::min<int64_t>(timeout.count(), std::numeric_limits<int32_t>::max());
  worker::v1::RendezvousGetRequest request;
  for (const std::string& key : keys) request.add_keys(key);
  request.set_timeout_ms(static_cast<int32_t>(ms));
  worker::v1::RendezvousGetResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline(std::chrono::milliseconds(ms)));
  const grpc::Status status = stub_->Get(&context, request, &response);
  const std::string what =
      absl::StrCat("get of '", absl::StrJoin(keys, "', '"), "'");
  if (!status.ok()) Throw(what, status);
  if (response.values_size() != static_cast<int>(keys.size())) {
    throw gloo::IoException(absl::StrCat(
        "rendezvous ", what, ": the service returned ", response.values_size(),
        " values for ", keys.size(), " keys"));
  }
  return std::vector<std::string>(response.values().begin(),
                                  response.values().end());
}

}  // namespace tpserve
