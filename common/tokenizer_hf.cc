// Tokenizer::FromHfTokenizerJson: Hugging Face tokenizer.json files holding
// a byte-level BPE model (Llama 3, Qwen2, SmolLM, GPT-2). The pre-tokenizer
// regexes are taken from the file itself, so new models need no code.
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/json_util.h"
#include "common/status_macros.h"
#include "common/tokenizer.h"
#include "common/vocab_tokenizer.h"

namespace tpserve {
namespace {

using nlohmann::json;

constexpr char kGpt2Pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
    "\\s+(?!\\S)";

// Typed field reads that never throw: json::value() throws when a present
// field has another type, and these files are untrusted.
bool BoolField(const json& obj, const char* key, bool fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  return it != obj.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

std::string StringField(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

const json& Field(const json& obj, const char* key) {
  static const json* null = new json();
  if (!obj.is_object()) return *null;
  auto it = obj.find(key);
  return it == obj.end() ? *null : *it;
}

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", what));
}

// Appends the regexes of one pre-tokenizer node; refuses kinds we cannot
// reproduce exactly rather than tokenizing differently from the model.
absl::Status CollectPatterns(const json& node, std::vector<std::string>& out,
                             int depth) {
  if (depth > 8) return Bad("pre_tokenizer nesting too deep");
  const std::string type = StringField(node, "type");
  if (type.empty()) return Bad("pre_tokenizer entry without a type");
  if (type == "Sequence") {
    const json& list = Field(node, "pretokenizers");
    if (!list.is_array()) return Bad("Sequence pre_tokenizer without a list");
    for (const json& child : list) {
      TP_RETURN_IF_ERROR(CollectPatterns(child, out, depth + 1));
    }
    return absl::OkStatus();
  }
  if (type == "ByteLevel") {
    // use_regex (default true) adds GPT-2's pattern; prefix spaces are not
    // supported (no Llama-family model uses them).
    if (BoolField(node, "add_prefix_space", false)) {
      return Bad("ByteLevel add_prefix_space=true is not supported");
    }
    if (BoolField(node, "use_regex", true)) out.push_back(kGpt2Pattern);
    return absl::OkStatus();
  }
  if (type == "Digits") {
    out.push_back(BoolField(node, "individual_digits", false) ? "\\p{N}"
                                                              : "\\p{N}+");
    return absl::OkStatus();
  }
  if (type == "Split") {
    const json& pattern = Field(node, "pattern");
    if (StringField(node, "behavior") != "Isolated" ||
        BoolField(node, "invert", false)) {
      return Bad("only Split with behavior Isolated is supported");
    }
    if (const json& regex = Field(pattern, "Regex"); regex.is_string()) {
      out.push_back(regex.get<std::string>());
      return absl::OkStatus();
    }
    return Bad("Split pre_tokenizer without a Regex pattern");
  }
  return Bad(absl::StrCat("pre_tokenizer type '", type, "' is not supported"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromHfTokenizerJson(
    absl::string_view json_text, int32_t bos_id, int32_t eos_id) {
  // Untrusted file: no exceptions, bounded depth, size and value count.
  auto parsed = ParseUntrustedJson(json_text, "tokenizer.json", JsonLimits());
  if (!parsed.ok()) return parsed.status();
  const json doc = std::move(*parsed);
  if (!doc.is_object()) return Bad("not a JSON object");
  const json& model = Field(doc, "model");
  if (StringField(model, "type") != "BPE") {
    return Bad(
        "model.type must be BPE (byte-level); use tokenizer.model "
        "(SentencePiece) for other tokenizers");
  }
  const json& v = Field(model, "vocab");
  if (!v.is_object()) return Bad("model.vocab missing");
  Vocab vocab;
  vocab.kind = Vocab::Kind::kBpe;
  vocab.ignore_merges = BoolField(model, "ignore_merges", false);
  // Ids must be dense 0..n-1 once added tokens are included.
  int64_t max_id = -1;
  auto place = [&](const std::string& text, const json& id_node,
                   TokenType type) -> absl::Status {
    if (!id_node.is_number_integer()) return Bad("token id is not an integer");
    const int64_t id = id_node.get<int64_t>();
    if (id < 0 || id >= (1 << 22)) {
      return Bad(absl::StrCat("token id ", id, " out of range"));
    }
    if (id >= static_cast<int64_t>(vocab.tokens.size())) {
      vocab.tokens.resize(id + 1);
      vocab.types.resize(id + 1, TokenType::kUndefined);
    }
    vocab.tokens[id] = text;
    vocab.types[id] = type;
    max_id = std::max(max_id, id);
    return absl::OkStatus();
  };
  for (auto it = v.begin(); it != v.end(); ++it) {
    TP_RETURN_IF_ERROR(place(it.key(), it.value(), TokenType::kNormal));
  }
  const json& added = Field(doc, "added_tokens");
  if (!added.is_null() && !added.is_array()) {
    return Bad("added_tokens is not a list");
  }
  for (const json& t : added.is_array() ? added : json::array()) {
    const json& content = Field(t, "content");
    if (!content.is_string()) return Bad("added_tokens entry without content");
    TP_RETURN_IF_ERROR(place(content.get<std::string>(), Field(t, "id"),
                             BoolField(t, "special", false)
                                 ? TokenType::kControl
                                 : TokenType::kUserDefined));
  }
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    if (vocab.types[i] == TokenType::kUndefined) {
      vocab.types[i] = TokenType::kUnused;  // A gap in the id space.
    }
  }
  const json& merges = Field(model, "merges");
  if (!merges.is_array()) return Bad("model.merges is not a list");
  vocab.merge_ranks.reserve(merges.size());
  int32_t rank = 0;
  for (const json& m : merges) {
    std::string key;
    if (m.is_string()) {
      key = m.get<std::string>();
      if (key.find(' ', 1) == std::string::npos) {
        return Bad(absl::StrCat("merge #", rank, " has no space"));
      }
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() &&
               m[1].is_string()) {
      key = m[0].get<std::string>() + " " + m[1].get<std::string>();
    } else {
      return Bad(absl::StrCat("merge #", rank, " is malformed"));
    }
    vocab.merge_ranks.emplace(std::move(key), rank++);
  }
  std::vector<std::string> patterns;
  const json& pre = Field(doc, "pre_tokenizer");
  if (pre.is_null()) return Bad("pre_tokenizer missing");
  TP_RETURN_IF_ERROR(CollectPatterns(pre, patterns, 0));
  TP_ASSIGN_OR_RETURN(vocab.pre, PreTokenizer::Create(patterns));
  if (!Field(doc, "normalizer").is_null()) {
    return Bad("normalizers are not supported for byte-level BPE");
  }

  // BOS is added when the post-processor template starts with a special
  // token (Llama 3's "<|begin_of_text|> $A").
  bool add_bos = false;
  const json& post = Field(doc, "post_processor");
  if (StringField(post, "type") == "TemplateProcessing") {
    const json& single = Field(post, "single");
    add_bos = single.is_array() && !single.empty() &&
              !Field(single[0], "SpecialToken").is_null();
    // config.json may not name the BOS (bos_token_id absent): the template
    // does, with its id.
    if (add_bos && bos_id < 0) {
      const std::string name =
          StringField(Field(single[0], "SpecialToken"), "id");
      const json& ids =
          Field(Field(Field(post, "special_tokens"), name.c_str()), "ids");
      if (ids.is_array() && ids.size() == 1 && ids[0].is_number_integer() &&
          ids[0].get<int64_t>() >= 0 &&
          ids[0].get<int64_t>() < static_cast<int64_t>(vocab.tokens.size())) {
        bos_id = static_cast<int32_t>(ids[0].get<int64_t>());
      }
    }
  }
  std::vector<int32_t> eog;
  return VocabTokenizer::Create(std::move(vocab), bos_id, eos_id, add_bos,
                                std::move(eog));
}

}  // namespace tpserve
