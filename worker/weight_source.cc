#include "worker/weight_source.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/dequantize.h"
#include "common/status_macros.h"

namespace tpserve {

absl::StatusOr<WeightMatrix> SliceMatrix(WeightMatrix w,
                                         const MatrixSlice& slice) {
  const bool rows = slice.axis == MatrixSlice::Axis::kRows;
  const int64_t whole = rows ? w.rows : w.cols;
  const int64_t count = slice.count < 0 ? whole - slice.begin : slice.count;
  if (slice.begin < 0 || count < 0 || slice.begin + count > whole) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor parallel: ", rows ? "rows" : "columns", " [",
                     slice.begin, ", ", slice.begin + count, ") of ", whole));
  }
  if (rows) {
    // size_t: no overflow on large tables.
    w.data += static_cast<size_t>(slice.begin) * w.row_stride;
    w.rows = count;
    return w;
  }
  const GgmlTypeTraits& t = GetGgmlType(w.type);
  if (slice.begin % t.block_size != 0 || count % t.block_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor parallel: columns [", slice.begin, ", ",
                     slice.begin + count, ") split ", t.name, " blocks"));
  }
  w.data += static_cast<size_t>(slice.begin / t.block_size) * t.type_size;
  w.cols = count;
  return w;
}

absl::StatusOr<const TensorView*> ModelWeightSource::Need(
    absl::string_view name) const {
  const TensorView* t = model_.Find(name);
  if (t == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("model: tensor '", name, "' is missing"));
  }
  return t;
}

absl::StatusOr<WeightMatrix> ModelWeightSource::Matrix(absl::string_view name,
                                                       const MatrixSlice& slice,
                                                       Backend& backend) {
  TP_ASSIGN_OR_RETURN(const TensorView* t, Need(name));
  if (t->dims.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("model: tensor '", t->name, "' is not 2-D"));
  }
  // ggml dims [in, out] = [cols, rows].
  WeightMatrix w;
  w.type = t->type;
  w.cols = static_cast<int64_t>(t->dims[0]);
  w.rows = static_cast<int64_t>(t->dims[1]);
  w.data = t->data;
  TP_ASSIGN_OR_RETURN(uint64_t row_bytes, GgmlRowBytes(t->type, w.cols));
  w.row_stride = row_bytes;
  TP_ASSIGN_OR_RETURN(WeightMatrix part, SliceMatrix(w, slice));
  return backend.UploadWeights(part);
}

absl::StatusOr<float*> ModelWeightSource::Vector(absl::string_view name,
                                                 int64_t begin, int64_t count,
                                                 Backend& backend) {
  TP_ASSIGN_OR_RETURN(const TensorView* t, Need(name));
  std::vector<float> host(t->n_elements);
  TP_RETURN_IF_ERROR(
      DequantizeRow(t->type, t->data, t->n_bytes, t->n_elements, host.data()));
  if (count < 0) count = static_cast<int64_t>(host.size()) - begin;
  if (begin < 0 || begin + count > static_cast<int64_t>(host.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model: tensor '", t->name, "' has ", host.size(),
        " elements, rank needs [", begin, ", ", begin + count, ")"));
  }
  TP_ASSIGN_OR_RETURN(float* dev,
                      backend.AllocFloats(static_cast<size_t>(count)));
  absl::Status s = backend.CopyFromHost(host.data() + begin, dev,
                                        static_cast<size_t>(count));
  if (!s.ok()) {
    backend.Free(dev);
    return s;
  }
  return dev;
}

}  // namespace tpserve
