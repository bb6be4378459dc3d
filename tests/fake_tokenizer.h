// A tokenizer over a given list of token pieces, for unit tests of the
// code above the tokenizer (output text, the engine). It cannot encode.
#ifndef TPSERVE_TESTS_FAKE_TOKENIZER_H_
#define TPSERVE_TESTS_FAKE_TOKENIZER_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tokenizer.h"

namespace tpserve {

// Token i stands for the bytes pieces[i]; "<ctl>" is a control token.
class FakeTokenizer : public Tokenizer {
 public:
  explicit FakeTokenizer(std::vector<std::string> pieces)
      : pieces_(std::move(pieces)) {}
  absl::StatusOr<std::vector<int32_t>> Encode(
      absl::string_view, const EncodeOptions&) const override {
    return absl::UnimplementedError("fake");
  }
  std::string TokenBytes(int32_t id, bool render_special) const override {
    if (id < 0 || id >= vocab_size()) return "";
    if (token_type(id) == TokenType::kControl && !render_special) return "";
    return pieces_[id];
  }
  absl::string_view TokenText(int32_t id) const override {
    // Not a ?: with "": that would build a temporary std::string.
    if (id < 0 || id >= vocab_size()) return "";
    return pieces_[id];
  }
  int32_t vocab_size() const override {
    return static_cast<int32_t>(pieces_.size());
  }
  TokenType token_type(int32_t id) const override {
    return TokenText(id) == "<ctl>" ? TokenType::kControl : TokenType::kNormal;
  }
  bool strips_leading_space() const override { return false; }

  // Ids of `pieces`, each of which must be in the vocabulary.
  std::vector<int32_t> Ids(const std::vector<std::string>& pieces) const {
    std::vector<int32_t> ids;
    for (const std::string& p : pieces) {
      auto it = std::find(pieces_.begin(), pieces_.end(), p);
      EXPECT_NE(it, pieces_.end()) << p;
      ids.push_back(static_cast<int32_t>(it - pieces_.begin()));
    }
    return ids;
  }

 private:
  std::vector<std::string> pieces_;
};

}  // namespace tpserve

#endif  // TPSERVE_TESTS_FAKE_TOKENIZER_H_
