#include "common/json_util.h"

#include <cmath>
#include <exception>
#include <limits>
#include <new>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace tpserve {
namespace {

using nlohmann::json;

// Deepest nesting of objects/arrays in `text`, or max_depth + 1 as soon as
// that is exceeded. Brackets inside strings do not count; a '"' inside a
// string is always escaped, so skipping the character after a backslash
// keeps this in step with the real parser on every valid prefix (on invalid
// input the parser fails anyway).
int MaxDepth(absl::string_view text, int max_depth) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > deepest) deepest = depth;
      if (deepest > max_depth) return deepest;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

// nlohmann's message without its "[json.exception.x.y] " tag and without
// the "last read: '...'" echo of the input (which may hold arbitrary bytes).
std::string CleanMessage(const char* what) {
  absl::string_view msg(what);
  if (!msg.empty() && msg.front() == '[') {
    size_t close = msg.find("] ");
    if (close != absl::string_view::npos) msg.remove_prefix(close + 2);
  }
  size_t echo = msg.find("; last read");
  if (echo != absl::string_view::npos) msg = msg.substr(0, echo);
  return EscapeForMessage(msg);
}

}  // namespace

namespace {

// One parser for both DOM flavours: json (keys sorted) and ordered_json
// (keys in document order, which chat templates print).
template <typename Json>
absl::StatusOr<Json> ParseUntrusted(absl::string_view text,
                                    absl::string_view what,
                                    const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", text.size(), " bytes of JSON; the limit is ",
                     limits.max_bytes));
  }
  if (int depth = MaxDepth(text, limits.max_depth); depth > limits.max_depth) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": JSON nesting is deeper than ", limits.max_depth, " levels"));
  }
  // One set of keys per object being parsed (objects nest properly, so a
  // stack follows them). Once a problem is seen, every later value is
  // discarded so that nothing more is built.
  std::vector<absl::flat_hash_set<std::string>> open_objects;
  std::string duplicate;
  uint64_t values = 0;
  bool too_many = false;
  auto callback = [&](int /*depth*/, json::parse_event_t event,
                      Json& parsed) -> bool {
    if (too_many || !duplicate.empty()) return false;
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (parsed.is_string() && !open_objects.empty() &&
            !open_objects.back()
                 .insert(parsed.template get_ref<const std::string&>())
                 .second) {
          duplicate = parsed.template get_ref<const std::string&>();
          return false;
        }
        break;
      default:
        break;
    }
    if (event != json::parse_event_t::object_end &&
        event != json::parse_event_t::array_end &&
        ++values > limits.max_values) {
      too_many = true;
      return false;
    }
    return true;
  };
  Json parsed;
  try {
    parsed = Json::parse(text.data(), text.data() + text.size(), callback,
                         /*allow_exceptions=*/true);
  } catch (const typename Json::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": invalid JSON at byte ", e.byte, ": ", CleanMessage(e.what())));
  } catch (const typename Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": invalid JSON: ", CleanMessage(e.what())));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": out of memory parsing JSON"));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": cannot parse JSON: ", CleanMessage(e.what())));
  }
  if (!duplicate.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": duplicate key '",
                                                   EscapeForMessage(duplicate),
                                                   "' in a JSON object"));
  }
  if (too_many) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": more than ", limits.max_values, " JSON values and keys"));
  }
  if (parsed.is_discarded()) {  // Not expected; kept as a safety net.
    return absl::InvalidArgumentError(absl::StrCat(what, ": invalid JSON"));
  }
  return parsed;
}

}  // namespace

absl::StatusOr<json> ParseUntrustedJson(absl::string_view text,
                                        absl::string_view what,
                                        const JsonLimits& limits) {
  return ParseUntrusted<json>(text, what, limits);
}

absl::StatusOr<nlohmann::ordered_json> ParseUntrustedOrderedJson(
    absl::string_view text, absl::string_view what, const JsonLimits& limits) {
  return ParseUntrusted<nlohmann::ordered_json>(text, what, limits);
}

std::string EscapeForMessage(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(u, absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string JsonTypeName(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a floating-point number";
    case json::value_t::binary:
      return "binary";
    case json::value_t::discarded:
      return "discarded";
  }
  return "unknown";
}

namespace {

absl::Status TypeError(const json& value, absl::string_view field,
                       absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat(
      field, " is ", JsonTypeName(value), ", expected ", expected));
}

}  // namespace

absl::StatusOr<int64_t> JsonToInt(const json& value, absl::string_view field) {
  if (value.is_number_unsigned()) {
    uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " = ", u, " does not fit in int64"));
    }
    return static_cast<int64_t>(u);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  return TypeError(value, field, "an integer");
}

absl::StatusOr<uint64_t> JsonToUint(const json& value,
                                    absl::string_view field) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer()) {
    int64_t i = value.get<int64_t>();
    if (i >= 0) return static_cast<uint64_t>(i);
    return absl::InvalidArgumentError(
        absl::StrCat(field, " = ", i, " is negative"));
  }
  return TypeError(value, field, "a non-negative integer");
}

absl::StatusOr<double> JsonToDouble(const json& value,
                                    absl::string_view field) {
  if (!value.is_number()) return TypeError(value, field, "a number");
  return value.get<double>();
}

absl::StatusOr<bool> JsonToBool(const json& value, absl::string_view field) {
  if (!value.is_boolean()) return TypeError(value, field, "true or false");
  return value.get<bool>();
}

absl::StatusOr<std::string> JsonToString(const json& value,
                                         absl::string_view field) {
  if (!value.is_string()) return TypeError(value, field, "a string");
  return value.get<std::string>();
}

}  // namespace tpserve
