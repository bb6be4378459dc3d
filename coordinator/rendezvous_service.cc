#include "coordinator/rendezvous_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/net/channel_security.h"

namespace tpserve {

// One waiting Get. Owned by gRPC: deleted in OnDone, which gRPC calls only
// after Finish (and after OnCancel, if that ran, has returned).
class RendezvousService::GetReactor final : public grpc::ServerUnaryReactor {
 public:
  GetReactor(RendezvousService* service, std::vector<std::string> keys,
             worker::v1::RendezvousGetResponse* response,
             Clock::time_point deadline, std::chrono::milliseconds wait)
      : service_(service),
        keys_(std::move(keys)),
        response_(response),
        deadline_(deadline),
        wait_(wait) {}

  void OnCancel() override { service_->Cancel(this); }
  void OnDone() override { delete this; }

  const std::vector<std::string>& keys() const { return keys_; }
  worker::v1::RendezvousGetResponse* response() const { return response_; }
  Clock::time_point deadline() const { return deadline_; }
  std::chrono::milliseconds wait() const { return wait_; }

 private:
  RendezvousService* const service_;
  const std::vector<std::string> keys_;
  worker::v1::RendezvousGetResponse* const response_;
  const Clock::time_point deadline_;
  const std::chrono::milliseconds wait_;
};

namespace {

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context,
                               grpc::Status status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(std::move(status));
  return reactor;
}

grpc::Status Exhausted(const std::string& message) {
  return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                      absl::StrCat("rendezvous: ", message));
}

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      absl::StrCat("rendezvous: ", message));
}

}  // namespace

grpc::Status RendezvousService::CheckToken(
    const grpc::ServerContextBase& context) const {
  if (limits_.token.empty()) return grpc::Status::OK;
  ChannelSecurity security;
  security.token = limits_.token;
  return Authenticate(context, security);
}

RendezvousService::RendezvousService(RendezvousLimits limits)
    : limits_(limits), timer_([this] { TimerLoop(); }) {}

RendezvousService::~RendezvousService() {
  std::vector<GetReactor*> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    left.assign(waiting_.begin(), waiting_.end());
    waiting_.clear();
  }
  timer_cv_.notify_all();
  timer_.join();
  for (GetReactor* r : left) {
    r->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                           "rendezvous: the service is shutting down"));
  }
}

grpc::ServerUnaryReactor* RendezvousService::Set(
    grpc::CallbackServerContext* context,
    const worker::v1::RendezvousSetRequest* request,
    worker::v1::RendezvousSetResponse* /*response*/) {
  if (grpc::Status s = CheckToken(*context); !s.ok()) return Done(context, s);
  const std::string& key = request->key();
  const std::string& value = request->value();
  if (key.empty()) return Done(context, Invalid("empty key"));
  if (key.size() > limits_.max_key_bytes) {
    return Done(context, Invalid(absl::StrCat("key of ", key.size(),
                                              " bytes exceeds the limit of ",
                                              limits_.max_key_bytes)));
  }
  if (value.size() > limits_.max_value_bytes) {
    return Done(context,
                Exhausted(absl::StrCat("value of '", key, "' has ",
                                       value.size(), " bytes; the limit is ",
                                       limits_.max_value_bytes)));
  }
  std::vector<GetReactor*> ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = values_.find(key);
    const size_t old_bytes =
        it == values_.end() ? 0 : key.size() + it->second.size();
    if (it == values_.end() && values_.size() >= limits_.max_keys) {
      return Done(context, Exhausted(absl::StrCat(
                               "the store holds ", values_.size(),
                               " keys, the limit; stale groups not cleared?")));
    }
    const size_t new_total =
        total_bytes_ - old_bytes + key.size() + value.size();
    if (new_total > limits_.max_total_bytes) {
      return Done(context, Exhausted(absl::StrCat(
                               "storing '", key, "' would exceed the store's ",
                               limits_.max_total_bytes, " bytes")));
    }
    values_[key] = value;
    total_bytes_ = new_total;
    for (GetReactor* r : waiting_) {
      if (TryFill(r)) ready.push_back(r);
    }
    for (GetReactor* r : ready) waiting_.erase(r);
  }
  // Outside the lock: Finish may run OnDone inline.
  for (GetReactor* r : ready) r->Finish(grpc::Status::OK);
  return Done(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* RendezvousService::Get(
    grpc::CallbackServerContext* context,
    const worker::v1::RendezvousGetRequest* request,
    worker::v1::RendezvousGetResponse* response) {
  if (grpc::Status s = CheckToken(*context); !s.ok()) return Done(context, s);
  if (request->keys().empty()) return Done(context, Invalid("no keys"));
  if (static_cast<size_t>(request->keys_size()) > limits_.max_keys_per_get) {
    return Done(context, Invalid(absl::StrCat(request->keys_size(),
                                              " keys in one get; the limit is ",
                                              limits_.max_keys_per_get)));
  }
  if (request->timeout_ms() < 0) {
    return Done(context, Invalid("negative timeout_ms"));
  }
  const std::chrono::milliseconds wait = std::min<std::chrono::milliseconds>(
      std::chrono::milliseconds(request->timeout_ms()), limits_.max_wait);
  auto* reactor = new GetReactor(
      this,
      std::vector<std::string>(request->keys().begin(), request->keys().end()),
      response, Clock::now() + wait, wait);
  grpc::Status status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (TryFill(reactor)) {
      status = grpc::Status::OK;
    } else if (wait.count() == 0) {
      status = grpc::Status(
          grpc::StatusCode::DEADLINE_EXCEEDED,
          absl::StrCat("rendezvous: not set: ", MissingKeys(*reactor)));
    } else if (waiting_.size() >= limits_.max_waiting_gets) {
      status = Exhausted(absl::StrCat(waiting_.size(),
                                      " gets are waiting already, the limit"));
    } else {
      // Waits; finished later by Set, the timer, or Cancel.
      waiting_.insert(reactor);
      timer_cv_.notify_all();
      return reactor;
    }
  }
  reactor->Finish(std::move(status));
  return reactor;
}

void RendezvousService::Clear(const std::string& prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = values_.begin(); it != values_.end();) {
    if (absl::StartsWith(it->first, prefix)) {
      total_bytes_ -= it->first.size() + it->second.size();
      values_.erase(it++);
    } else {
      ++it;
    }
  }
}

size_t RendezvousService::key_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return values_.size();
}

bool RendezvousService::WaitForWaitingGets(
    size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return timer_cv_.wait_for(lock, timeout,
                            [&] { return waiting_.size() >= n; });
}

void RendezvousService::Cancel(GetReactor* reactor) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Not waiting: already finished by someone else, who owns that.
    if (waiting_.erase(reactor) == 0) return;
  }
  reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                               "rendezvous: get cancelled by the client"));
}

bool RendezvousService::TryFill(GetReactor* reactor) {
  for (const std::string& key : reactor->keys()) {
    if (!values_.contains(key)) return false;
  }
  worker::v1::RendezvousGetResponse* response = reactor->response();
  response->clear_values();
  for (const std::string& key : reactor->keys()) {
    response->add_values(values_.at(key));
  }
  return true;
}

std::string RendezvousService::MissingKeys(const GetReactor& reactor) const {
  constexpr int kMaxNamed = 8;  // Keeps the message short for huge gets.
  std::string out;
  int missing = 0;
  for (const std::string& key : reactor.keys()) {
    if (values_.contains(key)) continue;
    if (missing < kMaxNamed) {
      absl::StrAppend(&out, missing == 0 ? "'" : ", '", key, "'");
    }
    ++missing;
  }
  if (missing > kMaxNamed) {
    absl::StrAppend(&out, " and ", missing - kMaxNamed, " more");
  }
  return out;
}

void RendezvousService::TimerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    const Clock::time_point now = Clock::now();
    Clock::time_point next = Clock::time_point::max();
    std::vector<std::pair<GetReactor*, std::string>> expired;
    for (GetReactor* r : waiting_) {
      if (r->deadline() <= now) {
        expired.emplace_back(
            r, absl::StrCat("rendezvous: key(s) ", MissingKeys(*r),
                            " not set within ", r->wait().count(), " ms"));
      } else {
        next = std::min(next, r->deadline());
      }
    }
    for (const auto& e : expired) waiting_.erase(e.first);
    if (!expired.empty()) {
      lock.unlock();
      for (auto& e : expired) {
        e.first->Finish(
            grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, e.second));
      }
      lock.lock();
      continue;  // Rescan: the set may have changed meanwhile.
    }
    if (next == Clock::time_point::max()) {
      timer_cv_.wait(lock);
    } else {
      timer_cv_.wait_until(lock, next);
    }
  }
}

}  // namespace tpserve
