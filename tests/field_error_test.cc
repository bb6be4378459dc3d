// FieldError / ErrorField / WithField / PrefixField (common/field_error.h):
// the field path rides along as a payload, messages stay as given.
#include "common/field_error.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "absl/strings/cord.h"

namespace tpserve {
namespace {

TEST(FieldErrorTest, CarriesTheFieldAndKeepsTheMessage) {
  absl::Status s = FieldError("stop[1]", "stop[1] is not valid UTF-8");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "stop[1] is not valid UTF-8");
  EXPECT_EQ(ErrorField(s), "stop[1]");
  EXPECT_EQ(s.GetPayload(kFieldErrorTypeUrl).value(), "stop[1]");
  // A copy carries it too.
  absl::Status copy = s;
  EXPECT_EQ(ErrorField(copy), "stop[1]");
}

TEST(FieldErrorTest, NoFieldUnlessSet) {
  EXPECT_EQ(ErrorField(absl::InvalidArgumentError("temperature is bad")),
            std::nullopt);
  EXPECT_EQ(ErrorField(absl::OkStatus()), std::nullopt);
  EXPECT_TRUE(WithField(absl::OkStatus(), "x").ok());
  EXPECT_EQ(ErrorField(WithField(absl::OkStatus(), "x")), std::nullopt);
}

TEST(FieldErrorTest, WithFieldKeepsCodeAndMessage) {
  absl::Status s = WithField(absl::ResourceExhaustedError("too big"), "text");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "too big");
  EXPECT_EQ(ErrorField(s), "text");
  EXPECT_EQ(ErrorField(WithField(s, "chat")), "chat");  // Replaced.
}

TEST(FieldErrorTest, PrefixFieldRescopesMessageAndField) {
  absl::Status inner = FieldError("temperature", "temperature must be finite");
  inner.SetPayload("example.com/other", absl::Cord("kept"));
  absl::Status s = PrefixField("sampling.", inner);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "sampling.temperature must be finite");
  EXPECT_EQ(ErrorField(s), "sampling.temperature");
  EXPECT_EQ(s.GetPayload("example.com/other").value(), "kept");

  // No field: only the message is re-scoped.
  s = PrefixField("sampling.",
                  absl::InvalidArgumentError("vocab_size must be positive"));
  EXPECT_EQ(s.message(), "sampling.vocab_size must be positive");
  EXPECT_EQ(ErrorField(s), std::nullopt);

  EXPECT_TRUE(PrefixField("sampling.", absl::OkStatus()).ok());
}

}  // namespace
}  // namespace tpserve
