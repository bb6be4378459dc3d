#include "common/field_error.h"

#include <optional>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace tpserve {

absl::Status FieldError(absl::string_view field, absl::string_view message) {
  return WithField(absl::InvalidArgumentError(message), field);
}

std::optional<std::string> ErrorField(const absl::Status& status) {
  auto payload = status.GetPayload(kFieldErrorTypeUrl);  // absl::optional
  if (!payload.has_value()) return std::nullopt;
  return std::string(*payload);
}

absl::Status WithField(absl::Status status, absl::string_view field) {
  // SetPayload does nothing on an OK status.
  status.SetPayload(kFieldErrorTypeUrl, absl::Cord(field));
  return status;
}

absl::Status PrefixField(absl::string_view prefix, const absl::Status& status) {
  if (status.ok()) return status;
  absl::Status out(status.code(), absl::StrCat(prefix, status.message()));
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) {
        out.SetPayload(url, payload);
      });
  if (std::optional<std::string> field = ErrorField(status)) {
    out = WithField(std::move(out), absl::StrCat(prefix, *field));
  }
  return out;
}

}  // namespace tpserve
