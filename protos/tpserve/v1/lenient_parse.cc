#include "tpserve/v1/lenient_parse.h"

#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/stubs/common.h"
#include "google/protobuf/unknown_field_set.h"

namespace tpserve::v1 {
namespace {

// The largest field number protobuf allows: never a real field of ours.
constexpr int kParseErrorField = 536870911;

// Finds the first string field in `data` (a message of type `type`) that is
// not UTF-8, and returns its path; "" if none.
std::string FindBadString(const std::string& data,
                          const google::protobuf::Descriptor& type,
                          const std::string& prefix, int depth) {
  if (depth > 16) return "";
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromString(data)) return "";
  std::vector<int> seen(static_cast<size_t>(type.field_count()), 0);
  for (int i = 0; i < fields.field_count(); ++i) {
    const google::protobuf::UnknownField& f = fields.field(i);
    if (f.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      continue;
    }
    const google::protobuf::FieldDescriptor* fd =
        type.FindFieldByNumber(f.number());
    if (fd == nullptr) continue;
    std::string path = prefix + fd->name();
    if (fd->is_repeated()) {
      path +=
          "[" + std::to_string(seen[static_cast<size_t>(fd->index())]++) + "]";
    }
    const std::string& bytes = f.length_delimited();
    if (fd->type() == google::protobuf::FieldDescriptor::TYPE_STRING) {
      if (!google::protobuf::internal::IsStructurallyValidUTF8(
              bytes.data(), static_cast<int>(bytes.size()))) {
        return path;
      }
    } else if (fd->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
      std::string inner =
          FindBadString(bytes, *fd->message_type(), path + ".", depth + 1);
      if (!inner.empty()) return inner;
    }
  }
  return "";
}

}  // namespace

grpc::Status LenientDeserialize(grpc::ByteBuffer* buffer,
                                google::protobuf::Message* msg) {
  if (buffer == nullptr) return grpc::Status(grpc::StatusCode::INTERNAL, "");
  std::vector<grpc::Slice> slices;
  grpc::Status s = buffer->Dump(&slices);
  buffer->Clear();
  if (!s.ok()) return s;
  std::string data;
  for (const grpc::Slice& slice : slices) {
    data.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  if (msg->ParseFromString(data)) return grpc::Status::OK;
  const std::string field = FindBadString(data, *msg->GetDescriptor(), "", 0);
  msg->Clear();
  msg->GetReflection()->MutableUnknownFields(msg)->AddLengthDelimited(
      kParseErrorField, field.empty()
                            ? "the request is not a valid " +
                                  msg->GetDescriptor()->full_name() + " message"
                            : field + " is not valid UTF-8");
  return grpc::Status::OK;
}

std::string ParseError(const google::protobuf::Message& msg) {
  const google::protobuf::UnknownFieldSet& fields =
      msg.GetReflection()->GetUnknownFields(msg);
  for (int i = 0; i < fields.field_count(); ++i) {
    const google::protobuf::UnknownField& f = fields.field(i);
    if (f.number() == kParseErrorField &&
        f.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      return f.length_delimited();
    }
  }
  return "";
}

}  // namespace tpserve::v1
