// Builds the public ModelInfo description of a model file.
#ifndef TPSERVE_API_MODEL_INFO_H_
#define TPSERVE_API_MODEL_INFO_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/model_weights.h"
#include "tpserve/v1/inference.pb.h"

namespace tpserve {

// Config, tokenizer facts and the TP sizes (1..8) a model (GGUF or Hugging
// Face folder) allows.
absl::StatusOr<v1::ModelInfo> DescribeModel(const ModelWeights& model);

// Human-readable multi-line rendering for the command line.
std::string FormatModelInfo(const v1::ModelInfo& info);

}  // namespace tpserve

#endif  // TPSERVE_API_MODEL_INFO_H_
