// Where a LlamaShard takes its weights from: a model file's tensors
// (ModelWeightSource, in place in the file mapping) or anything else that
// can hand out the same canonical tensors, e.g. the GPU benchmark's
// synthetic weights generated in device memory. The shard asks for each
// tensor's slice of this rank (TpPlan) and gets it in the backend's memory,
// so one forward pass serves files, tests and benchmarks alike.
//
// Names are the canonical GGUF names of common/model_weights.h
// ("token_embd.weight", "blk.N.attn_q.weight", ...); matrices are
// [rows = output features, cols = input features] as in WeightMatrix.
#ifndef TPSERVE_WORKER_WEIGHT_SOURCE_H_
#define TPSERVE_WORKER_WEIGHT_SOURCE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model_config.h"
#include "common/model_weights.h"
#include "kernels/backend.h"

namespace tpserve {

// The part of a matrix one rank takes: output rows (column-parallel
// weights, the vocabulary), or input columns (row-parallel weights, whose
// partial products are all-reduced). Columns must be whole quantization
// blocks (the TP plan guarantees it).
struct MatrixSlice {
  enum class Axis { kRows, kCols };
  Axis axis = Axis::kRows;
  int64_t begin = 0;
  int64_t count = -1;  // -1: to the end.

  static MatrixSlice All() { return {}; }
  static MatrixSlice Rows(int64_t begin, int64_t count) {
    return {Axis::kRows, begin, count};
  }
  static MatrixSlice Cols(int64_t begin, int64_t count) {
    return {Axis::kCols, begin, count};
  }
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;

  virtual const ModelConfig& config() const = 0;

  // Whether tensor `name` exists (e.g. "output.weight" is absent with tied
  // embeddings).
  virtual bool Has(absl::string_view name) const = 0;

  // `slice` of 2-D tensor `name`, usable by `backend`. The memory stays
  // valid while both this source's storage (e.g. the file mapping) and the
  // backend live; the caller frees nothing.
  virtual absl::StatusOr<WeightMatrix> Matrix(absl::string_view name,
                                              const MatrixSlice& slice,
                                              Backend& backend) = 0;

  // Elements [begin, begin + count) (count -1: to the end) of tensor `name`
  // as f32 in a new buffer of `backend`'s, which the caller owns and frees
  // with backend.Free. Norm weights and biases are tiny, so they are f32
  // whatever the source stored.
  virtual absl::StatusOr<float*> Vector(absl::string_view name, int64_t begin,
                                        int64_t count, Backend& backend) = 0;
};

// The tensors of a model file, read in place: CPU backends use quantized
// matrices straight from the mapping, device backends copy them
// (Backend::UploadWeights). `model` must outlive this source and whatever
// was taken from it.
class ModelWeightSource final : public WeightSource {
 public:
  explicit ModelWeightSource(const ModelWeights& model) : model_(model) {}

  const ModelConfig& config() const override { return model_.config(); }
  bool Has(absl::string_view name) const override {
    return model_.Find(name) != nullptr;
  }
  absl::StatusOr<WeightMatrix> Matrix(absl::string_view name,
                                      const MatrixSlice& slice,
                                      Backend& backend) override;
  absl::StatusOr<float*> Vector(absl::string_view name, int64_t begin,
                                int64_t count, Backend& backend) override;

 private:
  absl::StatusOr<const TensorView*> Need(absl::string_view name) const;

  const ModelWeights& model_;
};

// `slice` of a packed matrix in host memory (no copy): rows move the data
// pointer by whole rows, columns by whole quantization blocks (refused
// otherwise) and keep the row stride. Shared by sources that slice before
// they upload.
absl::StatusOr<WeightMatrix> SliceMatrix(WeightMatrix w,
                                         const MatrixSlice& slice);

}  // namespace tpserve

#endif  // TPSERVE_WORKER_WEIGHT_SOURCE_H_
