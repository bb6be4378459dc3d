#include "common/model_tokenizer.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/gguf.h"
#include "common/hf_model.h"
#include "common/json_util.h"
#include "common/sentencepiece_tokenizer.h"
#include "common/status_macros.h"

namespace tpserve {
namespace {

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Reads a small text file of a model folder (config, tokenizer files);
// refuses anything over 64 MiB so a hostile folder cannot exhaust memory.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  }
  if (st.st_size > (64 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is larger than 64 MiB"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& path) {
  if (IsDirectory(path)) return LoadTokenizer(nullptr, path);
  TP_ASSIGN_OR_RETURN(auto gguf, GgufFile::Open(path));
  return LoadTokenizer(gguf.get(), path);
}

absl::StatusOr<std::string> LoadChatTemplateSource(const std::string& path) {
  if (IsDirectory(path)) return LoadChatTemplateSource(nullptr, path);
  TP_ASSIGN_OR_RETURN(auto gguf, GgufFile::Open(path));
  return LoadChatTemplateSource(gguf.get(), path);
}

std::string DescribeTokenizerSource(const std::string& path) {
  if (IsDirectory(path)) return DescribeTokenizerSource(nullptr, path);
  auto gguf = GgufFile::Open(path);
  if (!gguf.ok()) return "unknown";
  return DescribeTokenizerSource(gguf->get(), path);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const GgufFile* gguf, const std::string& path) {
  if (gguf != nullptr) {
    auto tok = Tokenizer::FromGguf(*gguf);
    if (!tok.ok()) {
      return absl::Status(tok.status().code(),
                          absl::StrCat(path, ": ", tok.status().message()));
    }
    return tok;
  }
  const std::string json_path = path + "/tokenizer.json";
  const std::string spm_path = path + "/tokenizer.model";
  if (Exists(json_path)) {
    TP_ASSIGN_OR_RETURN(std::string config_text,
                        ReadSmallFile(path + "/config.json"));
    TP_ASSIGN_OR_RETURN(ModelConfig config, ConfigFromHfJson(config_text));
    TP_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(json_path));
    auto tok = Tokenizer::FromHfTokenizerJson(
        text, static_cast<int32_t>(config.bos_token_id),
        static_cast<int32_t>(config.eos_token_id));
    // A tokenizer.json we cannot reproduce exactly (e.g. a Metaspace
    // Llama 2 one) falls back to the SentencePiece model when present.
    if (tok.ok() || !Exists(spm_path)) {
      if (!tok.ok()) {
        return absl::Status(
            tok.status().code(),
            absl::StrCat(json_path, ": ", tok.status().message()));
      }
      return tok;
    }
  }
  if (Exists(spm_path)) {
    TP_ASSIGN_OR_RETURN(std::string model, ReadSmallFile(spm_path));
    return SentencePieceTokenizerFromModel(model);
  }
  return absl::NotFoundError(absl::StrCat(
      "'", path, "' has neither tokenizer.json nor tokenizer.model"));
}

namespace {

// tokenizer_config.json's `chat_template`: a string, or a list of
// {"name", "template"} (transformers' named templates). `name` picks one;
// NotFound when absent.
absl::StatusOr<std::string> ConfigChatTemplate(const std::string& folder,
                                               absl::string_view name) {
  const std::string config_path = folder + "/tokenizer_config.json";
  if (!Exists(config_path)) {
    return absl::NotFoundError("the model has no tokenizer_config.json");
  }
  TP_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(config_path));
  TP_ASSIGN_OR_RETURN(
      nlohmann::json doc,
      ParseUntrustedJson(text, "tokenizer_config.json", JsonLimits()));
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(
        "tokenizer_config.json is not a JSON object");
  }
  auto it = doc.find("chat_template");
  if (it == doc.end() || it->is_null()) {
    return absl::NotFoundError("the model has no chat template");
  }
  if (it->is_string()) {
    if (name != "default") return absl::NotFoundError("no named templates");
    return it->get<std::string>();
  }
  if (!it->is_array()) {
    return absl::InvalidArgumentError(
        "tokenizer_config.json: chat_template is neither a string nor a "
        "list of {name, template}");
  }
  for (const nlohmann::json& entry : *it) {
    if (!entry.is_object() || !entry.contains("name") ||
        !entry.contains("template") || !entry["name"].is_string() ||
        !entry["template"].is_string()) {
      return absl::InvalidArgumentError(
          "tokenizer_config.json: a chat_template entry is not "
          "{\"name\": string, \"template\": string}");
    }
    if (entry["name"].get<std::string>() == name) {
      return entry["template"].get<std::string>();
    }
  }
  return absl::NotFoundError(
      absl::StrCat("tokenizer_config.json has no '", name, "' chat template"));
}

absl::StatusOr<std::string> GgufChatTemplate(const GgufFile& gguf,
                                             const std::string& key) {
  if (gguf.FindKey(key) == nullptr) {
    return absl::NotFoundError("the model has no chat template");
  }
  TP_ASSIGN_OR_RETURN(absl::string_view source, gguf.GetString(key));
  return std::string(source);
}

}  // namespace

absl::StatusOr<std::string> LoadChatTemplateSource(const GgufFile* gguf,
                                                   const std::string& path) {
  if (gguf != nullptr)
    return GgufChatTemplate(*gguf, "tokenizer.chat_template");
  return ConfigChatTemplate(path, "default");
}

absl::StatusOr<std::string> LoadToolUseChatTemplateSource(
    const GgufFile* gguf, const std::string& folder) {
  if (gguf != nullptr) {
    return GgufChatTemplate(*gguf, "tokenizer.chat_template.tool_use");
  }
  return ConfigChatTemplate(folder, "tool_use");
}

absl::StatusOr<ChatTemplate> LoadChatTemplate(const GgufFile* gguf,
                                              const std::string& folder,
                                              const std::string& flag,
                                              const Tokenizer& tokenizer) {
  SpecialTokens tokens;
  if (tokenizer.bos_id() >= 0) {
    tokens.bos = tokenizer.TokenBytes(tokenizer.bos_id(), true);
  }
  if (tokenizer.eos_id() >= 0) {
    tokens.eos = tokenizer.TokenBytes(tokenizer.eos_id(), true);
  }
  if (!flag.empty()) return ChatTemplate::FromFlag(flag, std::move(tokens));
  TP_ASSIGN_OR_RETURN(std::string source, LoadChatTemplateSource(gguf, folder));
  TP_ASSIGN_OR_RETURN(
      ChatTemplate t,
      ChatTemplate::FromSource(source, std::move(tokens), "the model's"));
  absl::StatusOr<std::string> tool_use =
      LoadToolUseChatTemplateSource(gguf, folder);
  if (tool_use.ok()) {
    TP_RETURN_IF_ERROR(t.SetToolUseSource(*tool_use));
  } else if (!absl::IsNotFound(tool_use.status())) {
    return tool_use.status();
  }
  return t;
}

std::string DescribeTokenizerSource(const GgufFile* gguf,
                                    const std::string& path) {
  if (gguf != nullptr) {
    auto model = gguf->GetString("tokenizer.ggml.model");
    auto pre = gguf->GetString("tokenizer.ggml.pre");
    if (!model.ok()) return "none";
    return absl::StrCat(
        *model, pre.ok() ? absl::StrCat(", pre '", *pre, "'") : std::string());
  }
  if (Exists(path + "/tokenizer.json")) return "tokenizer.json";
  if (Exists(path + "/tokenizer.model"))
    return "tokenizer.model (SentencePiece)";
  return "none";
}

}  // namespace tpserve
