// `tpserve tokenize --model MODEL --input FILE.json [--add-bos]
// [--parse-special]`: token ids of each string of a JSON array.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "cli/cli.h"
#include "common/model_tokenizer.h"
#include "common/tokenizer.h"

namespace tpserve::cli {

int Tokenize(int argc, char** argv) {
  auto flags =
      ParseFlags(argc, argv, {"model", "input"}, {"add-bos", "parse-special"});
  if (!flags.ok()) return Fail(flags.status());
  const std::string model = flags->Get("model"), input = flags->Get("input");
  if (model.empty() || input.empty()) {
    return Fail(absl::InvalidArgumentError(
        "tokenize needs --model MODEL (.gguf or Hugging Face folder) and "
        "--input FILE.json (a JSON array of strings)"));
  }
  std::ifstream in(input, std::ios::binary);
  if (!in) {
    return Fail(absl::NotFoundError(absl::StrCat("cannot read '", input, "'")));
  }
  std::stringstream text;
  text << in.rdbuf();
  const std::string body = text.str();
  const nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_array()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        input, ": not a JSON array of strings (or not valid UTF-8 JSON)")));
  }
  for (size_t i = 0; i < doc.size(); ++i) {
    if (!doc[i].is_string()) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat(input, ": element ", i, " is not a string")));
    }
  }

  auto gguf = GgufFile::Open(model);
  if (!gguf.ok()) return Fail(gguf.status());
  auto tokenizer = Tokenizer::FromGguf(**gguf);
  if (!tokenizer.ok()) {
    return Fail(
        absl::Status(tokenizer.status().code(),
                     absl::StrCat(model, ": ", tokenizer.status().message())));
  }
  EncodeOptions options;
  options.add_bos = flags->Bool("add-bos");
  options.parse_special = flags->Bool("parse-special");
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < doc.size(); ++i) {
    auto ids = (*tokenizer)->Encode(doc[i].get<std::string>(), options);
    if (!ids.ok()) {
      return Fail(absl::Status(
          ids.status().code(),
          absl::StrCat(input, ": string ", i, ": ", ids.status().message())));
    }
    out.push_back(*ids);
  }
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace tpserve::cli
