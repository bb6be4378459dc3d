// The unified view of a model, whatever format it came in: its config and
// its weight tensors by canonical name, read in place from the file
// mappings. The engine only sees this, so GGUF files and Hugging Face
// folders (config.json + safetensors) are interchangeable.
//
// Canonical names are llama.cpp's GGUF names ("token_embd.weight",
// "blk.N.attn_q.weight", ...) and dims are in ggml order (dims[0] is the
// innermost, contiguous dimension). A Hugging Face Linear weight
// [out, in] in row-major order has the same memory layout as ggml dims
// [in, out], so safetensors shapes are exposed reversed and no byte moves.
// What does differ between formats is the order of the Q/K rows within a
// head: see ModelConfig::rope_style.
#ifndef TPSERVE_COMMON_MODEL_WEIGHTS_H_
#define TPSERVE_COMMON_MODEL_WEIGHTS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/ggml_types.h"
#include "common/gguf.h"
#include "common/model_config.h"
#include "common/safetensors.h"

namespace tpserve {

enum class ModelFormat { kGguf, kHuggingFace };

// "gguf" or "huggingface".
absl::string_view ModelFormatName(ModelFormat format);

// One weight tensor, in place in its file mapping (owned by ModelWeights).
struct TensorView {
  std::string name;            // Canonical (GGUF) name.
  std::string source_name;     // Name in the file (== name for GGUF).
  std::vector<uint64_t> dims;  // ggml order, innermost first.
  // F32/F16/BF16 from safetensors; any ggml type (quantized too) from GGUF.
  GgmlType type = GgmlType::kF32;
  // Safetensors packs tensors back to back, so this is not necessarily
  // aligned to the element size: memcpy, or copy the tensor, before using
  // typed pointers. GGUF data is aligned to the file's alignment.
  const uint8_t* data = nullptr;
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
};

class ModelWeights {
 public:
  // Wraps a parsed GGUF: reads its config with ConfigFromGguf (which checks
  // the tensor shapes) and views every tensor. `path` is informational.
  static absl::StatusOr<std::unique_ptr<ModelWeights>> FromGguf(
      std::unique_ptr<GgufFile> gguf, std::string path = "");

  // Assembles a Hugging Face model from its validated config, its opened
  // safetensors shards and views (already renamed to canonical names and
  // with ggml-order dims) into them. Refuses duplicate canonical names,
  // tensors of the wrong shape or missing (CheckLlamaTensorShapes), and
  // tensors the model does not use. Sets config.weight_type to the
  // dominant type of the layer matmuls. `describe` renders a canonical
  // name in errors (e.g. adding the Hugging Face name).
  static absl::StatusOr<std::unique_ptr<ModelWeights>> FromSafetensors(
      std::string folder, ModelConfig config,
      std::vector<std::unique_ptr<SafetensorsFile>> shards,
      std::vector<TensorView> tensors,
      const std::function<std::string(const std::string&)>& describe = nullptr);

  const ModelConfig& config() const { return config_; }
  ModelFormat format() const { return format_; }
  // The .gguf file or the Hugging Face folder (e.g. to find tokenizer.json).
  const std::string& path() const { return path_; }
  // Every weight the forward pass uses, in file order.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // nullptr when the model has no tensor of that canonical name (e.g.
  // "output.weight" of a model with tied embeddings).
  const TensorView* Find(absl::string_view canonical_name) const;
  // Total bytes of the weights (the tensors above).
  uint64_t weight_bytes() const { return weight_bytes_; }
  // The GGUF file (its metadata holds the tokenizer); nullptr for HF.
  const GgufFile* gguf() const { return gguf_.get(); }
  // The safetensors shards, sorted by file name; empty for GGUF.
  const std::vector<std::unique_ptr<SafetensorsFile>>& shards() const {
    return shards_;
  }

 private:
  ModelWeights() = default;
  absl::Status Index();

  ModelFormat format_ = ModelFormat::kGguf;
  std::string path_;
  ModelConfig config_;
  // Owners of the mappings the views point into; never reassigned after
  // construction, so the views stay valid for the object's lifetime.
  std::unique_ptr<GgufFile> gguf_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::vector<TensorView> tensors_;
  absl::flat_hash_map<std::string, size_t> index_;
  uint64_t weight_bytes_ = 0;
};

// Opens a model by path: a GGUF file, or a Hugging Face folder holding
// config.json (see common/hf_model.h). Anything else is InvalidArgument
// "not a GGUF file or a Hugging Face folder with config.json".
absl::StatusOr<std::unique_ptr<ModelWeights>> OpenModel(
    const std::string& path);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_MODEL_WEIGHTS_H_
