#include "common/safetensors.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/checked_math.h"
#include "common/json_util.h"
#include "common/status_macros.h"

namespace tpserve {
namespace {

using nlohmann::json;

struct DtypeInfo {
  SafetensorsDtype dtype;
  const char* name;
  uint32_t bits;
};

// Names and sizes as in the reference crate's `Dtype` enum.
constexpr DtypeInfo kDtypes[] = {
    {SafetensorsDtype::kBool, "BOOL", 8},
    {SafetensorsDtype::kF4, "F4", 4},
    {SafetensorsDtype::kF6E2M3, "F6_E2M3", 6},
    {SafetensorsDtype::kF6E3M2, "F6_E3M2", 6},
    {SafetensorsDtype::kU8, "U8", 8},
    {SafetensorsDtype::kI8, "I8", 8},
    {SafetensorsDtype::kF8E5M2, "F8_E5M2", 8},
    {SafetensorsDtype::kF8E4M3, "F8_E4M3", 8},
    {SafetensorsDtype::kF8E8M0, "F8_E8M0", 8},
    {SafetensorsDtype::kF8E4M3Fnuz, "F8_E4M3FNUZ", 8},
    {SafetensorsDtype::kF8E5M2Fnuz, "F8_E5M2FNUZ", 8},
    {SafetensorsDtype::kI16, "I16", 16},
    {SafetensorsDtype::kU16, "U16", 16},
    {SafetensorsDtype::kF16, "F16", 16},
    {SafetensorsDtype::kBF16, "BF16", 16},
    {SafetensorsDtype::kI32, "I32", 32},
    {SafetensorsDtype::kU32, "U32", 32},
    {SafetensorsDtype::kF32, "F32", 32},
    {SafetensorsDtype::kC64, "C64", 64},
    {SafetensorsDtype::kF64, "F64", 64},
    {SafetensorsDtype::kI64, "I64", 64},
    {SafetensorsDtype::kU64, "U64", 64},
};

const DtypeInfo& Info(SafetensorsDtype dtype) {
  for (const DtypeInfo& d : kDtypes) {
    if (d.dtype == dtype) return d;
  }
  return kDtypes[0];  // Unreachable for valid enum values.
}

const DtypeInfo* FindDtype(absl::string_view name) {
  for (const DtypeInfo& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

absl::Status Invalid(absl::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors: ", msg));
}

// Tensor names come from the file: escape them so that errors stay
// printable whatever bytes they hold.
std::string Quoted(absl::string_view name) {
  return absl::StrCat("'", EscapeForMessage(name), "'");
}

// [a, b, c] for errors.
std::string Dims(const std::vector<uint64_t>& v) {
  return absl::StrCat("[", absl::StrJoin(v, ", "), "]");
}

absl::Status ParseEntry(const std::string& name, const json& entry,
                        const SafetensorsLimits& limits, SafetensorsTensor& t) {
  const std::string where = absl::StrCat("tensor ", Quoted(name));
  if (!entry.is_object()) {
    return Invalid(absl::StrCat(where, " is ", JsonTypeName(entry),
                                ", expected an object"));
  }
  t.name = name;
  // Unknown fields are ignored, as the crate does.
  const json* fields[3];
  const char* names[3] = {"dtype", "shape", "data_offsets"};
  for (int i = 0; i < 3; ++i) {
    auto it = entry.find(names[i]);
    if (it == entry.end()) {
      return Invalid(absl::StrCat(where, " has no '", names[i], "'"));
    }
    fields[i] = &*it;
  }
  TP_ASSIGN_OR_RETURN(
      std::string dtype_name,
      JsonToString(*fields[0],
                   absl::StrCat("safetensors: ", where, " field 'dtype'")));
  const DtypeInfo* dtype = FindDtype(dtype_name);
  if (dtype == nullptr) {
    return Invalid(
        absl::StrCat(where, " has unknown dtype ", Quoted(dtype_name)));
  }
  t.dtype = dtype->dtype;

  const json& shape = *fields[1];
  if (!shape.is_array()) {
    return Invalid(absl::StrCat(where, " field 'shape' is ",
                                JsonTypeName(shape), ", expected an array"));
  }
  if (shape.size() > limits.max_rank) {
    return Invalid(absl::StrCat(where, " has ", shape.size(),
                                " dimensions; the limit is ", limits.max_rank));
  }
  uint64_t n_elements = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    TP_ASSIGN_OR_RETURN(
        uint64_t dim, JsonToUint(shape[d], absl::StrCat("safetensors: ", where,
                                                        " shape[", d, "]")));
    auto product = CheckedMul(n_elements, dim);
    if (!product) {
      return Invalid(absl::StrCat(where, " shape[", d, "] = ", dim,
                                  " makes the element count overflow 64 bits"));
    }
    n_elements = *product;
    t.shape.push_back(dim);
  }
  t.n_elements = n_elements;
  auto bits = CheckedMul(n_elements, dtype->bits);
  if (!bits) {
    return Invalid(absl::StrCat(where, " shape ", Dims(t.shape), " of ",
                                dtype->name, " overflows its byte size"));
  }
  if (*bits % 8 != 0) {
    return Invalid(absl::StrCat(where, " shape ", Dims(t.shape), " of ",
                                dtype->name,
                                " is not a whole number of bytes"));
  }
  const uint64_t n_bytes = *bits / 8;

  const json& offsets = *fields[2];
  if (!offsets.is_array() || offsets.size() != 2) {
    return Invalid(
        absl::StrCat(where, " field 'data_offsets' is ", JsonTypeName(offsets),
                     offsets.is_array() ? " of the wrong length" : "",
                     ", expected [begin, end]"));
  }
  TP_ASSIGN_OR_RETURN(
      t.begin, JsonToUint(offsets[0], absl::StrCat("safetensors: ", where,
                                                   " data_offsets[0]")));
  TP_ASSIGN_OR_RETURN(
      t.end, JsonToUint(offsets[1], absl::StrCat("safetensors: ", where,
                                                 " data_offsets[1]")));
  if (t.end < t.begin) {
    return Invalid(absl::StrCat(where, " data_offsets [", t.begin, ", ", t.end,
                                "] end before they begin"));
  }
  if (t.end - t.begin != n_bytes) {
    return Invalid(absl::StrCat(where, " data_offsets [", t.begin, ", ", t.end,
                                "] hold ", t.end - t.begin,
                                " bytes, but shape ", Dims(t.shape), " of ",
                                dtype->name, " needs ", n_bytes));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view SafetensorsDtypeName(SafetensorsDtype dtype) {
  return Info(dtype).name;
}

uint32_t SafetensorsDtypeBits(SafetensorsDtype dtype) {
  return Info(dtype).bits;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::string& path, const SafetensorsLimits& limits) {
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

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Parse(
    absl::Span<const uint8_t> bytes, const SafetensorsLimits& limits) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->file_size_ = bytes.size();
  if (bytes.size() < 8) {
    return Invalid(absl::StrCat("file is ", bytes.size(),
                                " bytes, too short for the 8-byte header "
                                "length"));
  }
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);  // Little-endian, like our hosts.
  if (n > limits.max_header_bytes) {
    return Invalid(absl::StrCat("header length ", n, " exceeds the limit of ",
                                limits.max_header_bytes, " bytes"));
  }
  if (n > bytes.size() - 8) {
    return Invalid(absl::StrCat("header length ", n,
                                " is larger than the rest of the file (",
                                bytes.size() - 8, " bytes)"));
  }
  f->header_size_ = n;
  const absl::string_view text(reinterpret_cast<const char*>(bytes.data() + 8),
                               n);
  // Legitimate headers nest 3 deep (root, entry, shape); unknown fields,
  // which are ignored like the crate does, get a little room.
  JsonLimits json_limits;
  json_limits.max_bytes = limits.max_header_bytes;
  json_limits.max_depth = 16;
  // Each entry takes ~12 values and keys (16 + rank at most); a metadata
  // entry two. Past this the header cannot be within the other limits.
  json_limits.max_values = (16 + limits.max_rank) * (limits.max_tensors + 1) +
                           2 * limits.max_metadata_entries + 64;
  TP_ASSIGN_OR_RETURN(
      json header,
      ParseUntrustedJson(text, "safetensors: header", json_limits));
  if (!header.is_object()) {
    return Invalid(absl::StrCat("header is ", JsonTypeName(header),
                                ", expected a JSON object"));
  }
  if (header.size() > limits.max_tensors + 1) {
    return Invalid(absl::StrCat("header has ", header.size(),
                                " entries; the limit is ", limits.max_tensors,
                                " tensors"));
  }

  f->tensors_.reserve(header.size());
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) {
        return Invalid(absl::StrCat("'__metadata__' is ", JsonTypeName(entry),
                                    ", expected an object of strings"));
      }
      if (entry.size() > limits.max_metadata_entries) {
        return Invalid(absl::StrCat("'__metadata__' has ", entry.size(),
                                    " entries; the limit is ",
                                    limits.max_metadata_entries));
      }
      for (const auto& [key, value] : entry.items()) {
        TP_ASSIGN_OR_RETURN(
            std::string s,
            JsonToString(value, absl::StrCat("safetensors: '__metadata__' "
                                             "value ",
                                             Quoted(key))));
        f->metadata_.emplace(key, std::move(s));
      }
      continue;
    }
    SafetensorsTensor t;
    TP_RETURN_IF_ERROR(ParseEntry(name, entry, limits, t));
    f->tensors_.push_back(std::move(t));
  }

  // Contiguity over the data buffer, as the crate checks it: sorted by
  // begin, the first starts at 0, each starts where the previous one ends,
  // and the last ends at the end of the file. This also rules out overlaps
  // (one "weight" aliasing another) and offsets past the end.
  const uint64_t data_size = bytes.size() - 8 - n;
  std::sort(f->tensors_.begin(), f->tensors_.end(),
            [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  uint64_t expected_begin = 0;
  for (size_t i = 0; i < f->tensors_.size(); ++i) {
    SafetensorsTensor& t = f->tensors_[i];
    if (t.end > data_size) {
      return Invalid(absl::StrCat(
          "tensor ", Quoted(t.name), " data_offsets [", t.begin, ", ", t.end,
          "] go past the end of the data buffer (", data_size, " bytes)"));
    }
    if (t.begin != expected_begin) {
      const std::string after =
          i == 0 ? std::string("the start of the data buffer")
                 : absl::StrCat("tensor ", Quoted(f->tensors_[i - 1].name),
                                " (which ends at ", expected_begin, ")");
      return Invalid(absl::StrCat(
          "tensor ", Quoted(t.name), " data_offsets [", t.begin, ", ", t.end,
          "] ", t.begin < expected_begin ? "overlap" : "leave a gap after", " ",
          after, "; tensors must be contiguous"));
    }
    expected_begin = t.end;
    t.data = bytes.data() + 8 + n + t.begin;
  }
  if (expected_begin != data_size) {
    return Invalid(absl::StrCat("the data buffer is ", data_size,
                                " bytes but its tensors cover only ",
                                expected_begin,
                                " (the file is not fully "
                                "covered)"));
  }
  f->index_.reserve(f->tensors_.size());
  for (size_t i = 0; i < f->tensors_.size(); ++i) {
    // nlohmann's object cannot hold two equal keys and ParseUntrustedJson
    // refuses duplicates, so this only guards our own invariant.
    if (!f->index_.emplace(f->tensors_[i].name, i).second) {
      return Invalid(
          absl::StrCat("duplicate tensor name ", Quoted(f->tensors_[i].name)));
    }
  }
  return f;
}

const SafetensorsTensor* SafetensorsFile::FindTensor(
    absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<GgmlType> GgmlTypeOfSafetensor(const SafetensorsTensor& t) {
  switch (t.dtype) {
    case SafetensorsDtype::kF32:
      return GgmlType::kF32;
    case SafetensorsDtype::kF16:
      return GgmlType::kF16;
    case SafetensorsDtype::kBF16:
      return GgmlType::kBF16;
    default:
      return absl::UnimplementedError(absl::StrCat(
          "safetensors: tensor ", Quoted(t.name), " has dtype ",
          SafetensorsDtypeName(t.dtype),
          "; tpserve computes with F32, F16 and BF16 weights (quantized "
          "Hugging Face checkpoints are not supported)"));
  }
}

}  // namespace tpserve
