// tojson: json.dumps as transformers' `tojson` filter calls it.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/jinja/value.h"
#include "common/unicode.h"

namespace tpserve::jinja {

JsonStyle DefaultJsonStyle() {
  JsonStyle style;
  style.item_separator = ", ";
  style.key_separator = ": ";
  return style;
}

namespace {

void AppendJsonString(absl::string_view s, bool ensure_ascii,
                      std::string& out) {
  out += '"';
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    std::optional<uint32_t> cp = DecodeUtf8(s, &pos);
    const uint32_t c = cp ? *cp : 0xfffd;
    switch (c) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (c < 0x20 || (ensure_ascii && c > 0x7e)) {
      auto hex4 = [&out](uint32_t u) {
        absl::StrAppend(&out, "\\u", absl::Hex(u, absl::kZeroPad4));
      };
      if (c > 0xffff) {  // A surrogate pair, as json.dumps writes it.
        const uint32_t v = c - 0x10000;
        hex4(0xd800 | (v >> 10));
        hex4(0xdc00 | (v & 0x3ff));
      } else {
        hex4(c);
      }
    } else if (cp) {
      absl::StrAppend(&out, s.substr(start, pos - start));
    } else {
      out += "\xef\xbf\xbd";
    }
  }
  out += '"';
}

// json.dumps's text for a dict key: str as is, numbers, booleans and None
// as JSON writes them.
absl::StatusOr<std::string> JsonKey(const Value& key) {
  switch (key.kind()) {
    case Value::Kind::kString:
      return key.AsString();
    case Value::Kind::kNone:
      return std::string("null");
    case Value::Kind::kBool:
      return std::string(key.AsBool() ? "true" : "false");
    case Value::Kind::kInt:
      return absl::StrCat(key.AsInt());
    case Value::Kind::kFloat: {
      const double f = key.AsDouble();
      if (std::isnan(f)) return std::string("NaN");
      if (std::isinf(f)) return std::string(f > 0 ? "Infinity" : "-Infinity");
      return FormatFloat(f);
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "keys must be str, int, float, bool or None, not ", key.TypeName()));
  }
}

struct JsonWriter {
  const JsonStyle& style;
  int max_depth;
  size_t max_bytes;
  std::string out;

  void Newline(int depth) {
    out += '\n';
    for (int i = 0; i < depth; ++i) out += style.indent;
  }

  absl::Status Write(const Value& value, int depth) {
    if (depth > max_depth) {
      return absl::InvalidArgumentError(
          absl::StrCat("tojson: nesting deeper than ", max_depth));
    }
    if (out.size() > max_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("tojson: output over ", max_bytes, " bytes"));
    }
    switch (value.kind()) {
      case Value::Kind::kNone:
        out += "null";
        return absl::OkStatus();
      case Value::Kind::kBool:
        out += value.AsBool() ? "true" : "false";
        return absl::OkStatus();
      case Value::Kind::kInt:
        absl::StrAppend(&out, value.AsInt());
        return absl::OkStatus();
      case Value::Kind::kFloat: {
        const double f = value.AsDouble();
        if (std::isnan(f)) {
          out += "NaN";
        } else if (std::isinf(f)) {
          out += f > 0 ? "Infinity" : "-Infinity";
        } else {
          out += FormatFloat(f);
        }
        return absl::OkStatus();
      }
      case Value::Kind::kString:
        AppendJsonString(value.AsString(), style.ensure_ascii, out);
        return absl::OkStatus();
      case Value::Kind::kList: {
        const auto& items = value.AsList().items;
        if (items.empty()) {
          out += "[]";
          return absl::OkStatus();
        }
        out += '[';
        for (size_t i = 0; i < items.size(); ++i) {
          if (i > 0) out += style.item_separator;
          if (style.has_indent) Newline(depth + 1);
          if (absl::Status s = Write(items[i], depth + 1); !s.ok()) return s;
        }
        if (style.has_indent) Newline(depth);
        out += ']';
        return absl::OkStatus();
      }
      case Value::Kind::kDict: {
        std::vector<const std::pair<Value, Value>*> items;
        for (const auto& item : value.AsDict().items()) items.push_back(&item);
        if (items.empty()) {
          out += "{}";
          return absl::OkStatus();
        }
        if (style.sort_keys) {  // sorted(d.items()): by key, as Python sorts.
          absl::Status error;
          std::stable_sort(
              items.begin(), items.end(), [&](const auto* a, const auto* b) {
                absl::StatusOr<int> c = Compare(a->first, b->first);
                if (!c.ok()) error = c.status();
                return c.ok() && *c < 0;
              });
          if (!error.ok()) return error;
        }
        out += '{';
        for (size_t i = 0; i < items.size(); ++i) {
          if (i > 0) out += style.item_separator;
          if (style.has_indent) Newline(depth + 1);
          absl::StatusOr<std::string> key = JsonKey(items[i]->first);
          if (!key.ok()) return key.status();
          AppendJsonString(*key, style.ensure_ascii, out);
          out += style.key_separator;
          if (absl::Status s = Write(items[i]->second, depth + 1); !s.ok()) {
            return s;
          }
        }
        if (style.has_indent) Newline(depth);
        out += '}';
        return absl::OkStatus();
      }
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            "Object of type ", value.TypeName(), " is not JSON serializable"));
    }
  }
};

}  // namespace

absl::StatusOr<std::string> ToJson(const Value& value, const JsonStyle& style,
                                   int max_depth, size_t max_bytes) {
  JsonWriter writer{style, max_depth, max_bytes, {}};
  if (absl::Status s = writer.Write(value, 0); !s.ok()) return s;
  if (writer.out.size() > max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("tojson: output over ", max_bytes, " bytes"));
  }
  return std::move(writer.out);
}

}  // namespace tpserve::jinja
