#include "common/gguf.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/checked_math.h"
#include "common/status_macros.h"

namespace tpserve {
namespace {

constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS.

// Size in bytes of a fixed-size value type; 0 for string/array.
uint64_t FixedSize(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kString:
    case GgufType::kArray:
      return 0;
  }
  return 0;
}

bool IsKnownType(uint32_t raw) { return raw <= 12; }

template <typename T>
T LoadLe(const uint8_t* p) {
  // GGUF v2/v3 as written by every tool we accept is little-endian, like the
  // hosts we run on; memcpy keeps unaligned reads defined.
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Bounds-checked cursor over the header. Each read names what it reads so
// errors point at the broken field.
class Cursor {
 public:
  Cursor(const uint8_t* base, uint64_t size) : base_(base), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  absl::Status Need(uint64_t n, absl::string_view what) const {
    if (n > remaining()) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: truncated reading ", what, " at byte ", pos_,
                       ": need ", n, " bytes, ", remaining(), " left"));
    }
    return absl::OkStatus();
  }

  template <typename T>
  absl::StatusOr<T> Read(absl::string_view what) {
    TP_RETURN_IF_ERROR(Need(sizeof(T), what));
    T v = LoadLe<T>(base_ + pos_);
    pos_ += sizeof(T);
    return v;
  }

  absl::StatusOr<const uint8_t*> Skip(uint64_t n, absl::string_view what) {
    TP_RETURN_IF_ERROR(Need(n, what));
    const uint8_t* p = base_ + pos_;
    pos_ += n;
    return p;
  }

  absl::StatusOr<absl::string_view> ReadString(absl::string_view what,
                                               uint64_t max_bytes) {
    TP_ASSIGN_OR_RETURN(uint64_t len, Read<uint64_t>(what));
    if (len > max_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: ", what, " is ", len,
                       " bytes long; the limit is ", max_bytes));
    }
    TP_ASSIGN_OR_RETURN(const uint8_t* p, Skip(len, what));
    return absl::string_view(reinterpret_cast<const char*>(p), len);
  }

 private:
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

absl::Status ParseValue(Cursor& cur, const GgufLimits& limits,
                        const std::string& where, GgufKv& kv) {
  if (kv.type == GgufType::kString) {
    TP_ASSIGN_OR_RETURN(absl::string_view s,
                        cur.ReadString(where, limits.max_string_bytes));
    kv.data = reinterpret_cast<const uint8_t*>(s.data());
    kv.strings.push_back(s);
    return absl::OkStatus();
  }
  if (kv.type != GgufType::kArray) {
    TP_ASSIGN_OR_RETURN(kv.data, cur.Skip(FixedSize(kv.type), where));
    return absl::OkStatus();
  }
  TP_ASSIGN_OR_RETURN(uint32_t raw_elem,
                      cur.Read<uint32_t>(absl::StrCat(where, " element type")));
  if (!IsKnownType(raw_elem)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF: ", where, " has unknown array element type ", raw_elem));
  }
  kv.elem_type = static_cast<GgufType>(raw_elem);
  if (kv.elem_type == GgufType::kArray) {
    // The spec allows nesting but no model uses it and llama.cpp rejects it;
    // refusing keeps recursion (and its stack) out of the parser.
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF: ", where, " is an array of arrays (unsupported)"));
  }
  TP_ASSIGN_OR_RETURN(kv.count,
                      cur.Read<uint64_t>(absl::StrCat(where, " array length")));
  if (kv.count > limits.max_array_elements) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF: ", where, " has ", kv.count,
                     " elements; the limit is ", limits.max_array_elements));
  }
  if (kv.elem_type == GgufType::kString) {
    // Each string takes at least its 8-byte length: reject impossible counts
    // before reserving memory for them.
    if (kv.count > cur.remaining() / 8) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: ", where, " claims ", kv.count,
                       " strings but only ", cur.remaining(), " bytes remain"));
    }
    kv.strings.reserve(kv.count);
    kv.data = nullptr;
    for (uint64_t i = 0; i < kv.count; ++i) {
      TP_ASSIGN_OR_RETURN(absl::string_view s,
                          cur.ReadString(absl::StrCat(where, "[", i, "]"),
                                         limits.max_string_bytes));
      kv.strings.push_back(s);
    }
    return absl::OkStatus();
  }
  auto bytes = CheckedMul(kv.count, FixedSize(kv.elem_type));
  if (!bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF: ", where, " array size overflows"));
  }
  TP_ASSIGN_OR_RETURN(kv.data, cur.Skip(*bytes, where));
  return absl::OkStatus();
}

// Reads element `i` of a numeric value as the widest type of its kind.
struct Number {
  enum Kind { kUnsigned, kSigned, kFloat, kBool } kind;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
};

Number LoadNumber(GgufType t, const uint8_t* p) {
  Number n{Number::kUnsigned};
  switch (t) {
    case GgufType::kUint8:
      n.u = LoadLe<uint8_t>(p);
      break;
    case GgufType::kUint16:
      n.u = LoadLe<uint16_t>(p);
      break;
    case GgufType::kUint32:
      n.u = LoadLe<uint32_t>(p);
      break;
    case GgufType::kUint64:
      n.u = LoadLe<uint64_t>(p);
      break;
    case GgufType::kInt8:
      n = {Number::kSigned};
      n.i = LoadLe<int8_t>(p);
      break;
    case GgufType::kInt16:
      n = {Number::kSigned};
      n.i = LoadLe<int16_t>(p);
      break;
    case GgufType::kInt32:
      n = {Number::kSigned};
      n.i = LoadLe<int32_t>(p);
      break;
    case GgufType::kInt64:
      n = {Number::kSigned};
      n.i = LoadLe<int64_t>(p);
      break;
    case GgufType::kFloat32:
      n = {Number::kFloat};
      n.f = LoadLe<float>(p);
      break;
    case GgufType::kFloat64:
      n = {Number::kFloat};
      n.f = LoadLe<double>(p);
      break;
    case GgufType::kBool:
      n = {Number::kBool};
      n.u = LoadLe<uint8_t>(p);
      break;
    case GgufType::kString:
    case GgufType::kArray:
      break;
  }
  return n;
}

absl::Status TypeError(absl::string_view key, const GgufKv& kv,
                       absl::string_view wanted) {
  std::string have(GgufTypeName(kv.type));
  if (kv.type == GgufType::kArray) {
    absl::StrAppend(&have, " of ", GgufTypeName(kv.elem_type));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "GGUF: metadata '", key, "' is ", have, ", expected ", wanted));
}

}  // namespace

absl::string_view GgufTypeName(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
      return "uint8";
    case GgufType::kInt8:
      return "int8";
    case GgufType::kUint16:
      return "uint16";
    case GgufType::kInt16:
      return "int16";
    case GgufType::kUint32:
      return "uint32";
    case GgufType::kInt32:
      return "int32";
    case GgufType::kFloat32:
      return "float32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kUint64:
      return "uint64";
    case GgufType::kInt64:
      return "int64";
    case GgufType::kFloat64:
      return "float64";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(
    const std::string& path, const GgufLimits& limits) {
  TP_ASSIGN_OR_RETURN(MappedFile mapping, MappedFile::Open(path));
  auto parsed =
      Parse(absl::MakeConstSpan(mapping.data(), mapping.size()), limits);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat(path, ": ", parsed.status().message()));
  }
  (*parsed)->mapping_ = std::move(mapping);
  return parsed;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Parse(
    absl::Span<const uint8_t> bytes, const GgufLimits& limits) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->file_size_ = bytes.size();
  Cursor cur(bytes.data(), bytes.size());

  TP_ASSIGN_OR_RETURN(const uint8_t* magic, cur.Skip(4, "magic"));
  if (std::memcmp(magic, "GGUF", 4) != 0) {
    return absl::InvalidArgumentError(
        "GGUF: bad magic (not a GGUF file; expected the bytes 'GGUF')");
  }
  TP_ASSIGN_OR_RETURN(f->version_, cur.Read<uint32_t>("version"));
  if (f->version_ == 1) {
    return absl::InvalidArgumentError(
        "GGUF: version 1 is not supported; re-convert the model with a "
        "current llama.cpp");
  }
  if (f->version_ != 2 && f->version_ != 3) {
    if ((f->version_ & 0xffff) == 0) {
      return absl::InvalidArgumentError(
          "GGUF: this looks like a big-endian file, which is not supported");
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF: unsupported version ", f->version_, " (supported: 2, 3)"));
  }
  TP_ASSIGN_OR_RETURN(uint64_t n_tensors, cur.Read<uint64_t>("tensor count"));
  TP_ASSIGN_OR_RETURN(uint64_t n_kv, cur.Read<uint64_t>("metadata count"));
  if (n_kv > limits.max_kv) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF: metadata count ", n_kv, " exceeds the limit ", limits.max_kv));
  }
  if (n_tensors > limits.max_tensors) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF: tensor count ", n_tensors, " exceeds the limit ",
                     limits.max_tensors));
  }
  // Each kv needs >= 13 bytes (key length, type, 1-byte value) and each
  // tensor info >= 24: reject counts the file cannot hold before reserving.
  if (n_kv > cur.remaining() / 13 || n_tensors > cur.remaining() / 24) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF: header claims ", n_kv, " metadata entries and ",
                     n_tensors, " tensors, more than the file can hold"));
  }

  f->kvs_.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    GgufKv kv;
    std::string where = absl::StrCat("metadata #", i, " key");
    TP_ASSIGN_OR_RETURN(absl::string_view key,
                        cur.ReadString(where, limits.max_string_bytes));
    kv.key = std::string(key);
    where = absl::StrCat("metadata '", kv.key, "'");
    TP_ASSIGN_OR_RETURN(uint32_t raw_type,
                        cur.Read<uint32_t>(absl::StrCat(where, " type")));
    if (!IsKnownType(raw_type)) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: ", where, " has unknown value type ", raw_type));
    }
    kv.type = static_cast<GgufType>(raw_type);
    TP_RETURN_IF_ERROR(ParseValue(cur, limits, where, kv));
    if (!f->kv_index_.emplace(kv.key, f->kvs_.size()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: duplicate metadata key '", kv.key, "'"));
    }
    f->kvs_.push_back(std::move(kv));
  }

  if (const GgufKv* a = f->FindKey("general.alignment")) {
    if (a->type != GgufType::kUint32) {
      return TypeError("general.alignment", *a, "uint32");
    }
    uint32_t align = LoadLe<uint32_t>(a->data);
    if (align == 0 || (align & (align - 1)) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GGUF: general.alignment ", align, " is not a power of two"));
    }
    f->alignment_ = align;
  }

  f->tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    std::string where = absl::StrCat("tensor #", i, " name");
    TP_ASSIGN_OR_RETURN(absl::string_view name,
                        cur.ReadString(where, limits.max_string_bytes));
    t.name = std::string(name);
    where = absl::StrCat("tensor '", t.name, "'");
    TP_ASSIGN_OR_RETURN(uint32_t n_dims,
                        cur.Read<uint32_t>(absl::StrCat(where, " n_dims")));
    if (n_dims == 0 || n_dims > kMaxDims) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GGUF: ", where, " has ", n_dims, " dimensions (allowed 1..4)"));
    }
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      TP_ASSIGN_OR_RETURN(uint64_t dim,
                          cur.Read<uint64_t>(absl::StrCat(where, " dim ", d)));
      // ggml indexes with int64_t: keep every count below 2^63.
      auto prod = CheckedMul(n_elements, dim);
      if (dim == 0 || !prod ||
          *prod > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return absl::InvalidArgumentError(
            absl::StrCat("GGUF: ", where, " dim ", d, " = ", dim,
                         " is zero or makes the element count overflow"));
      }
      n_elements = *prod;
      t.dims.push_back(dim);
    }
    t.n_elements = n_elements;
    TP_ASSIGN_OR_RETURN(uint32_t raw_type,
                        cur.Read<uint32_t>(absl::StrCat(where, " type")));
    const GgmlTypeTraits* traits = FindGgmlType(raw_type);
    if (traits == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: ", where, " has unknown ggml type ", raw_type));
    }
    t.type = traits->type;
    auto row_bytes = GgmlRowBytes(t.type, t.dims[0]);
    if (!row_bytes.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: ", where, ": ", row_bytes.status().message()));
    }
    auto total = CheckedMul(*row_bytes, n_elements / t.dims[0]);
    if (!total) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: ", where, " byte size overflows"));
    }
    t.n_bytes = *total;
    TP_ASSIGN_OR_RETURN(t.offset,
                        cur.Read<uint64_t>(absl::StrCat(where, " offset")));
    if (t.offset % f->alignment_ != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: ", where, " offset ", t.offset,
                       " is not a multiple of the alignment ", f->alignment_));
    }
    if (!f->tensor_index_.emplace(t.name, f->tensors_.size()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: duplicate tensor name '", t.name, "'"));
    }
    f->tensors_.push_back(std::move(t));
  }

  auto data_offset = CheckedAlignUp(cur.pos(), f->alignment_);
  if (!data_offset || *data_offset > bytes.size()) {
    if (n_tensors == 0) {
      f->data_offset_ = bytes.size();  // Metadata-only file, no padding.
      return f;
    }
    return absl::InvalidArgumentError(
        "GGUF: file ends before the tensor data section");
  }
  f->data_offset_ = *data_offset;
  const uint64_t data_size = bytes.size() - f->data_offset_;

  // Tensors must lie inside the data section and must not overlap: a crafted
  // overlap would let one "weight" alias another's memory.
  std::vector<const GgufTensor*> by_offset;
  by_offset.reserve(f->tensors_.size());
  for (GgufTensor& t : f->tensors_) {
    auto end = CheckedAdd(t.offset, t.n_bytes);
    if (!end || *end > data_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GGUF: tensor '", t.name, "' (offset ", t.offset, ", ", t.n_bytes,
          " bytes) extends past the end of the file (data section is ",
          data_size, " bytes)"));
    }
    t.data = bytes.data() + f->data_offset_ + t.offset;
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensor* a, const GgufTensor* b) {
              return a->offset < b->offset;
            });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensor* prev = by_offset[i - 1];
    if (prev->offset + prev->n_bytes > by_offset[i]->offset) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: tensors '", prev->name, "' and '",
                       by_offset[i]->name, "' overlap"));
    }
  }
  return f;
}

const GgufKv* GgufFile::FindKey(absl::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second];
}

const GgufTensor* GgufFile::FindTensor(absl::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<const GgufKv*> GgufFile::Require(absl::string_view key) const {
  const GgufKv* kv = FindKey(key);
  if (kv == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("GGUF: metadata '", key, "' is missing"));
  }
  return kv;
}

absl::StatusOr<uint64_t> GgufFile::GetUint(absl::string_view key) const {
  TP_ASSIGN_OR_RETURN(const GgufKv* kv, Require(key));
  if (kv->type == GgufType::kArray || kv->type == GgufType::kString) {
    return TypeError(key, *kv, "an unsigned integer");
  }
  Number n = LoadNumber(kv->type, kv->data);
  if (n.kind == Number::kUnsigned) return n.u;
  if (n.kind == Number::kSigned && n.i >= 0) return static_cast<uint64_t>(n.i);
  if (n.kind == Number::kSigned) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF: metadata '", key, "' is negative (", n.i, ")"));
  }
  return TypeError(key, *kv, "an unsigned integer");
}

absl::StatusOr<int64_t> GgufFile::GetInt(absl::string_view key) const {
  TP_ASSIGN_OR_RETURN(const GgufKv* kv, Require(key));
  if (kv->type == GgufType::kArray || kv->type == GgufType::kString) {
    return TypeError(key, *kv, "an integer");
  }
  Number n = LoadNumber(kv->type, kv->data);
  if (n.kind == Number::kSigned) return n.i;
  if (n.kind == Number::kUnsigned &&
      n.u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return static_cast<int64_t>(n.u);
  }
  return TypeError(key, *kv, "an integer that fits in int64");
}

absl::StatusOr<double> GgufFile::GetFloat(absl::string_view key) const {
  TP_ASSIGN_OR_RETURN(const GgufKv* kv, Require(key));
  if (kv->type == GgufType::kArray || kv->type == GgufType::kString ||
      kv->type == GgufType::kBool) {
    return TypeError(key, *kv, "a number");
  }
  Number n = LoadNumber(kv->type, kv->data);
  if (n.kind == Number::kFloat) return n.f;
  if (n.kind == Number::kSigned) return static_cast<double>(n.i);
  return static_cast<double>(n.u);
}

absl::StatusOr<bool> GgufFile::GetBool(absl::string_view key) const {
  TP_ASSIGN_OR_RETURN(const GgufKv* kv, Require(key));
  if (kv->type != GgufType::kBool) return TypeError(key, *kv, "bool");
  return kv->data[0] != 0;
}

absl::StatusOr<absl::string_view> GgufFile::GetString(
    absl::string_view key) const {
  TP_ASSIGN_OR_RETURN(const GgufKv* kv, Require(key));
  if (kv->type != GgufType::kString) return TypeError(key, *kv, "string");
  return kv->strings[0];
}

absl::StatusOr<absl::Span<const absl::string_view>> GgufFile::GetStringArray(
    absl::string_view key) const {
  TP_ASSIGN_OR_RETURN(const GgufKv* kv, Require(key));
  if (kv->type != GgufType::kArray || kv->elem_type != GgufType::kString) {
    return TypeError(key, *kv, "array of string");
  }
  return absl::MakeConstSpan(kv->strings);
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(
    absl::string_view key) const {
  TP_ASSIGN_OR_RETURN(const GgufKv* kv, Require(key));
  if (kv->type != GgufType::kArray) return TypeError(key, *kv, "array");
  const uint64_t size = FixedSize(kv->elem_type);
  std::vector<int64_t> out;
  out.reserve(kv->count);
  for (uint64_t i = 0; i < kv->count; ++i) {
    Number n = LoadNumber(kv->elem_type, kv->data + i * size);
    if (n.kind == Number::kSigned) {
      out.push_back(n.i);
    } else if (n.kind == Number::kUnsigned &&
               n.u <=
                   static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      out.push_back(static_cast<int64_t>(n.u));
    } else {
      return TypeError(key, *kv, "array of integers");
    }
  }
  return out;
}

absl::StatusOr<std::vector<double>> GgufFile::GetFloatArray(
    absl::string_view key) const {
  TP_ASSIGN_OR_RETURN(const GgufKv* kv, Require(key));
  if (kv->type != GgufType::kArray || kv->elem_type == GgufType::kString ||
      kv->elem_type == GgufType::kBool) {
    return TypeError(key, *kv, "array of numbers");
  }
  const uint64_t size = FixedSize(kv->elem_type);
  std::vector<double> out;
  out.reserve(kv->count);
  for (uint64_t i = 0; i < kv->count; ++i) {
    Number n = LoadNumber(kv->elem_type, kv->data + i * size);
    out.push_back(n.kind == Number::kFloat    ? n.f
                  : n.kind == Number::kSigned ? static_cast<double>(n.i)
                                              : static_cast<double>(n.u));
  }
  return out;
}

std::string GgufFile::FormatValue(const GgufKv& kv, size_t max_elements) {
  auto one = [](GgufType t, const uint8_t* p) -> std::string {
    Number n = LoadNumber(t, p);
    switch (n.kind) {
      case Number::kUnsigned:
        return absl::StrCat(n.u);
      case Number::kSigned:
        return absl::StrCat(n.i);
      case Number::kFloat:
        return absl::StrCat(n.f);
      case Number::kBool:
        return n.u ? "true" : "false";
    }
    return "";
  };
  auto quote = [](absl::string_view s) {
    constexpr size_t kMax = 60;
    std::string out = "\"";
    for (char c : s.substr(0, kMax)) {
      if (c == '\n') {
        out += "\\n";
      } else if (static_cast<unsigned char>(c) < 0x20) {
        out += '?';
      } else {
        out += c;
      }
    }
    out += s.size() > kMax ? "\"..." : "\"";
    return out;
  };
  if (kv.type == GgufType::kString) return quote(kv.strings[0]);
  if (kv.type != GgufType::kArray) return one(kv.type, kv.data);
  std::vector<std::string> parts;
  const uint64_t shown = std::min<uint64_t>(kv.count, max_elements);
  for (uint64_t i = 0; i < shown; ++i) {
    parts.push_back(
        kv.elem_type == GgufType::kString
            ? quote(kv.strings[i])
            : one(kv.elem_type, kv.data + i * FixedSize(kv.elem_type)));
  }
  if (shown < kv.count) parts.push_back(absl::StrCat("... (", kv.count, ")"));
  return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
}

}  // namespace tpserve
