// Builds the public ModelInfo description of a model file.
#ifndef TPSERVE_COORDINATOR_MODEL_INFO_H_
#define TPSERVE_COORDINATOR_MODEL_INFO_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/gguf.h"
#include "tpserve/v1/inference.pb.h"

namespace tpserve {

// Reads config, tokenizer facts and the TP sizes (1..8) a GGUF model allows.
absl::StatusOr<v1::ModelInfo> DescribeGguf(const GgufFile& gguf);

// Human-readable multi-line rendering for the command line.
std::string FormatModelInfo(const v1::ModelInfo& info);

}  // namespace tpserve

#endif  // TPSERVE_COORDINATOR_MODEL_INFO_H_
