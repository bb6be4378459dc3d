#include "common/model_weights.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/hf_model.h"
#include "common/json_util.h"
#include "common/status_macros.h"

namespace tpserve {

absl::string_view ModelFormatName(ModelFormat format) {
  switch (format) {
    case ModelFormat::kGguf:
      return "gguf";
    case ModelFormat::kHuggingFace:
      return "huggingface";
  }
  return "unknown";
}

absl::Status ModelWeights::Index() {
  index_.reserve(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (!index_.emplace(tensors_[i].name, i).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model: two tensors map to '", tensors_[i].name, "' (the second is '",
          EscapeForMessage(tensors_[i].source_name), "')"));
    }
    weight_bytes_ += tensors_[i].n_bytes;
  }
  return absl::OkStatus();
}

const TensorView* ModelWeights::Find(absl::string_view canonical_name) const {
  auto it = index_.find(canonical_name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<std::unique_ptr<ModelWeights>> ModelWeights::FromGguf(
    std::unique_ptr<GgufFile> gguf, std::string path) {
  std::unique_ptr<ModelWeights> m(new ModelWeights());
  TP_ASSIGN_OR_RETURN(m->config_, ConfigFromGguf(*gguf));
  m->format_ = ModelFormat::kGguf;
  m->path_ = std::move(path);
  m->tensors_.reserve(gguf->tensors().size());
  for (const GgufTensor& t : gguf->tensors()) {
    m->tensors_.push_back(TensorView{t.name, t.name, t.dims, t.type, t.data,
                                     t.n_elements, t.n_bytes});
  }
  m->gguf_ = std::move(gguf);
  // GGUF tensor names are unique (the reader refuses duplicates).
  TP_RETURN_IF_ERROR(m->Index());
  return m;
}

absl::StatusOr<std::unique_ptr<ModelWeights>> ModelWeights::FromSafetensors(
    std::string folder, ModelConfig config,
    std::vector<std::unique_ptr<SafetensorsFile>> shards,
    std::vector<TensorView> tensors,
    const std::function<std::string(const std::string&)>& describe) {
  std::unique_ptr<ModelWeights> m(new ModelWeights());
  m->format_ = ModelFormat::kHuggingFace;
  m->path_ = std::move(folder);
  m->shards_ = std::move(shards);
  m->tensors_ = std::move(tensors);
  TP_RETURN_IF_ERROR(m->Index());
  TP_RETURN_IF_ERROR(ValidateConfig(config));
  // The shape check asks for exactly the tensors the forward pass uses;
  // remembering the names it asks for tells which tensors are extra.
  absl::flat_hash_set<std::string> used;
  TP_RETURN_IF_ERROR(CheckLlamaTensorShapes(
      config,
      [&](const std::string& name) -> const std::vector<uint64_t>* {
        used.insert(name);
        const TensorView* t = m->Find(name);
        return t == nullptr ? nullptr : &t->dims;
      },
      describe));
  for (const TensorView& t : m->tensors_) {
    if (!used.contains(t.name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model: tensor ",
          describe ? describe(t.name) : absl::StrCat("'", t.name, "'"),
          " is not used by a ", config.n_layers,
          "-layer Llama with this config"));
    }
  }
  // The dominant matmul weight type, by bytes, as ConfigFromGguf does.
  std::map<GgmlType, uint64_t> bytes_by_type;
  for (const TensorView& t : m->tensors_) {
    if (t.dims.size() == 2 && t.name.rfind("blk.", 0) == 0) {
      bytes_by_type[t.type] += t.n_bytes;
    }
  }
  uint64_t best = 0;
  for (const auto& [type, bytes] : bytes_by_type) {
    if (bytes > best) best = bytes, config.weight_type = type;
  }
  m->config_ = std::move(config);
  return m;
}

namespace {

constexpr char kNotAModel[] =
    "not a GGUF file or a Hugging Face folder with config.json";

// The first 4 bytes of a regular file, or "" when it is shorter.
std::string Magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char buf[4];
  if (!in.read(buf, sizeof(buf))) return "";
  return std::string(buf, sizeof(buf));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelWeights>> OpenModel(
    const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    std::string msg =
        absl::StrCat("cannot open model '", path, "': ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(msg);
    return absl::InvalidArgumentError(msg);
  }
  if (S_ISDIR(st.st_mode)) {
    struct stat config;
    const std::string config_path = path + "/" + kHfConfigFile;
    if (::stat(config_path.c_str(), &config) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", path, "' is a folder without config.json: ", kNotAModel));
    }
    return OpenHfModel(path);
  }
  if (S_ISREG(st.st_mode) && Magic(path) == "GGUF") {
    TP_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, GgufFile::Open(path));
    return ModelWeights::FromGguf(std::move(gguf), path);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", path, "' is ", kNotAModel));
}

}  // namespace tpserve
