// Parsing JSON from untrusted files (safetensors headers, Hugging Face
// config.json and index files) with nlohmann::json, made safe:
//  - nothing throws out of ParseUntrustedJson: parse errors, number overflow
//    and allocation failure become InvalidArgument / ResourceExhausted;
//  - nesting is bounded by a linear pre-scan before any DOM is built, and
//    the number of values kept is bounded while parsing, so a crafted file
//    cannot make us build a huge tree;
//  - duplicate object keys are refused (nlohmann silently keeps the last
//    one, which would let a file say two different things at once).
// The typed getters return errors that name the field, never throw.
#ifndef TPSERVE_COMMON_JSON_UTIL_H_
#define TPSERVE_COMMON_JSON_UTIL_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tpserve {

struct JsonLimits {
  uint64_t max_bytes = 64ull << 20;
  int max_depth = 32;  // Objects and arrays open at once.
  // Values (scalars, objects, arrays) and object keys, all together.
  uint64_t max_values = 1ull << 22;
};

// Parses `text`; errors start with `what` (e.g. "config.json").
absl::StatusOr<nlohmann::json> ParseUntrustedJson(absl::string_view text,
                                                  absl::string_view what,
                                                  const JsonLimits& limits);
// The same, keeping object keys in document order (for values a template
// prints, where Python's dicts keep the order they were given in).
absl::StatusOr<nlohmann::ordered_json> ParseUntrustedOrderedJson(
    absl::string_view text, absl::string_view what, const JsonLimits& limits);

// `text` (a name or value from a file) made safe to put in an error message:
// control characters and DEL become \xNN; everything else, UTF-8 included,
// is kept so that names stay readable.
std::string EscapeForMessage(absl::string_view text);

// Name of a JSON value's type for error messages ("a string", "an array").
std::string JsonTypeName(const nlohmann::json& value);

// Typed views of one value; `field` names it in errors. Integers must be
// JSON integers (64.0 is refused) that fit in int64_t / uint64_t.
absl::StatusOr<int64_t> JsonToInt(const nlohmann::json& value,
                                  absl::string_view field);
absl::StatusOr<uint64_t> JsonToUint(const nlohmann::json& value,
                                    absl::string_view field);
// Any JSON number (integers too).
absl::StatusOr<double> JsonToDouble(const nlohmann::json& value,
                                    absl::string_view field);
absl::StatusOr<bool> JsonToBool(const nlohmann::json& value,
                                absl::string_view field);
absl::StatusOr<std::string> JsonToString(const nlohmann::json& value,
                                         absl::string_view field);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_JSON_UTIL_H_
