// Refusals of a client's input that name the field at fault, for code as
// well as for people. The message names the field for people
// ("sampling.temperature must be a finite number in [0, 100], got nan");
// the field's path also rides along as a Status payload, so a door can
// report it (the HTTP door's OpenAI `param`, api/openai_json.cc) without
// parsing the message.
//
// The payload is stored under kFieldErrorTypeUrl, and its value is the path
// itself as UTF-8 text ("chat.messages[2].role", "stop_token_ids[0]"), not
// a serialized message. Paths are the proto field path of the request that
// was checked (api/request.cc, common/sampling.cc) or, for the HTTP door's
// JSON checks, the OpenAI parameter path. Payloads do not cross gRPC
// (ToGrpc sends the code and the message, which names the field already).
#ifndef TPSERVE_COMMON_FIELD_ERROR_H_
#define TPSERVE_COMMON_FIELD_ERROR_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tpserve {

// The payload key of the field path. Stable: part of how errors are read.
inline constexpr char kFieldErrorTypeUrl[] =
    "type.googleapis.com/tpserve.FieldViolation";

// INVALID_ARGUMENT with `message` exactly as given (by convention it starts
// with `field`) and `field` as its field payload.
absl::Status FieldError(absl::string_view field, absl::string_view message);

// The field path `status` carries; nullopt when it names none (or is OK).
std::optional<std::string> ErrorField(const absl::Status& status);

// `status` with its field payload set to `field` (replacing any), code and
// message unchanged; OK stays OK.
absl::Status WithField(absl::Status status, absl::string_view field);

// A sub-validator's error re-scoped under `prefix` ("sampling."): `prefix`
// goes in front of the message and, when it names one, of the field
// ("temperature" -> "sampling.temperature"). Code and other payloads are
// kept; OK stays OK.
absl::Status PrefixField(absl::string_view prefix, const absl::Status& status);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_FIELD_ERROR_H_
