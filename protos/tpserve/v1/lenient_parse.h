// Server-side parsing of tpserve.v1 requests that turns a string field
// holding invalid UTF-8 into a clear INVALID_ARGUMENT instead of a failed
// call.
//
// Why: proto3 C++ refuses to parse a string field that is not UTF-8, and
// gRPC's callback API then answers UNIMPLEMENTED with no message, which
// tells a caller nothing. Clients in most languages cannot even send such
// bytes, but any raw client can, and the design asks for a clear status.
// So the generated service code (via grpc_cpp_plugin's
// additional_header_includes) sees the SerializationTraits below for the
// requests that carry text: they parse as usual and, when that fails, find
// the offending field, leave the message empty and record the error in an
// unknown field that the service checks first (ParseError).
#ifndef TPSERVE_PROTOS_TPSERVE_V1_LENIENT_PARSE_H_
#define TPSERVE_PROTOS_TPSERVE_V1_LENIENT_PARSE_H_

#include <grpcpp/impl/codegen/proto_utils.h>

#include <string>

#include "google/protobuf/message.h"
#include "tpserve/v1/inference.pb.h"

namespace tpserve::v1 {

// Parses `buffer` into `msg`. Only a failure to read the buffer is an error;
// an unparseable message is recorded for ParseError.
grpc::Status LenientDeserialize(grpc::ByteBuffer* buffer,
                                google::protobuf::Message* msg);

// Why the message could not be parsed, e.g. "chat.messages[1].content is
// not valid UTF-8"; empty when it parsed.
std::string ParseError(const google::protobuf::Message& msg);

}  // namespace tpserve::v1

#define TPSERVE_LENIENT_SERIALIZATION_TRAITS(T)                               \
  template <>                                                                 \
  class SerializationTraits<T, void> {                                        \
   public:                                                                    \
    static Status Serialize(const protobuf::MessageLite& msg, ByteBuffer* bb, \
                            bool* own_buffer) {                               \
      return GenericSerialize<ProtoBufferWriter, T>(msg, bb, own_buffer);     \
    }                                                                         \
    static Status Deserialize(ByteBuffer* buffer,                             \
                              protobuf::MessageLite* msg) {                   \
      return ::tpserve::v1::LenientDeserialize(buffer, static_cast<T*>(msg)); \
    }                                                                         \
  };

namespace grpc {
TPSERVE_LENIENT_SERIALIZATION_TRAITS(::tpserve::v1::GenerateRequest)
TPSERVE_LENIENT_SERIALIZATION_TRAITS(::tpserve::v1::TokenizeRequest)
}  // namespace grpc

#undef TPSERVE_LENIENT_SERIALIZATION_TRAITS

#endif  // TPSERVE_PROTOS_TPSERVE_V1_LENIENT_PARSE_H_
