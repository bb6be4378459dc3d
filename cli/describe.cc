// `tpserve describe` and `tpserve inspect`: what tpserve sees in a model
// (a .gguf file or a Hugging Face folder).
#include <sys/stat.h>

#include <chrono>
#include <iostream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "api/model_info.h"
#include "cli/cli.h"
#include "common/chat_template.h"
#include "common/gguf.h"
#include "common/model_tokenizer.h"
#include "common/model_weights.h"
#include "common/tokenizer.h"
#include "google/protobuf/util/json_util.h"

namespace tpserve::cli {
namespace {

std::string HumanBytes(uint64_t bytes) {
  if (bytes >= (1ull << 30)) {
    return absl::StrFormat("%.2f GiB", bytes / 1073741824.0);
  }
  if (bytes >= (1ull << 20)) {
    return absl::StrFormat("%.1f MiB", bytes / 1048576.0);
  }
  if (bytes >= (1ull << 10)) return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  return absl::StrCat(bytes, " B");
}

absl::Status WithPath(const std::string& path, const absl::Status& s) {
  if (absl::StrContains(s.message(), path)) return s;
  return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
}

// Reports how long mapping and validating took: the load progress a user
// sees (weights are mapped, not read, so this is all of loading here).
void ReportOpened(const std::string& path, const ModelWeights& model,
                  std::chrono::steady_clock::time_point start) {
  const double ms = std::chrono::duration<double, std::milli>(
                        std::chrono::steady_clock::now() - start)
                        .count();
  std::cerr << absl::StrFormat(
      "model: mapped %s (%s of weights in %d tensors, %s) and validated in "
      "%.1f ms\n",
      path, HumanBytes(model.weight_bytes()), model.tensors().size(),
      ModelFormatName(model.format()), ms);
}

// `gguf` is the open model file, or nullptr for a Hugging Face folder.
void PrintTokenizer(const GgufFile* gguf, const std::string& path) {
  auto tok = LoadTokenizer(gguf, path);
  if (!tok.ok()) {
    std::cout << absl::StrFormat(
        "%-18s%s\n", "tokenizer",
        absl::StrCat("unusable: ", tok.status().message()));
    return;
  }
  const Tokenizer& t = **tok;
  auto name = [&t](int32_t id) {
    return id < 0 ? std::string("none")
                  : absl::StrCat(id, " '", t.TokenText(id), "'");
  };
  std::cout << absl::StrFormat(
      "%-18s%s, %d tokens\n%-18s%s / %s, BOS %s by default\n", "tokenizer",
      DescribeTokenizerSource(gguf, path), t.vocab_size(), "bos / eos",
      name(t.bos_id()), name(t.eos_id()),
      t.add_bos_by_default() ? "added" : "not added");
  auto chat = LoadChatTemplate(gguf, path, "", t);
  if (!absl::IsNotFound(chat.status())) {
    std::cout << absl::StrFormat(
        "%-18s%s\n", "chat format",
        chat.ok() ? "the model's Jinja template"
                  : absl::StrCat("unusable: ", chat.status().message()));
  }
}

struct TensorRow {
  std::string name;
  GgmlType type;
  std::vector<uint64_t> dims;
  uint64_t bytes;
};

void PrintTensors(const std::vector<TensorRow>& rows, bool all) {
  struct Total {
    int count = 0;
    uint64_t elements = 0, bytes = 0;
  };
  std::map<std::string, Total> totals;
  for (const TensorRow& t : rows) {
    Total& total = totals[std::string(GgmlTypeName(t.type))];
    ++total.count;
    uint64_t n = 1;
    for (uint64_t d : t.dims) n *= d;
    total.elements += n;
    total.bytes += t.bytes;
  }
  if (totals.empty()) return;
  std::cout << absl::StrFormat("\n%-8s %7s %14s %12s\n", "type", "tensors",
                               "elements", "size");
  for (const auto& [type, total] : totals) {
    std::cout << absl::StrFormat("%-8s %7d %14d %12s\n", type, total.count,
                                 total.elements, HumanBytes(total.bytes));
  }
  std::cout << absl::StrFormat("\n%-28s %-6s %-14s %10s\n", "tensor", "type",
                               "shape", "size");
  int hidden = 0;
  for (const TensorRow& t : rows) {
    const bool later_layer =
        t.name.rfind("blk.", 0) == 0 && t.name.rfind("blk.0.", 0) != 0;
    if (later_layer && !all) {
      ++hidden;
      continue;
    }
    std::cout << absl::StrFormat(
        "%-28s %-6s %-14s %10s\n", t.name, GgmlTypeName(t.type),
        absl::StrJoin(t.dims, " x "), HumanBytes(t.bytes));
  }
  if (hidden > 0) {
    std::cout << "(" << hidden
              << " tensors of later layers not shown; --tensors lists all)\n";
  }
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

int Describe(int argc, char** argv) {
  auto flags = ParseFlags(argc, argv, {"model"}, {"json", "metadata"});
  if (!flags.ok()) return Fail(flags.status());
  const std::string path = flags->Get("model");
  if (path.empty()) {
    return Fail(absl::InvalidArgumentError(
        "describe needs --model MODEL (a .gguf file or a Hugging Face "
        "folder; scripts/fetch-model.sh downloads the default model)"));
  }
  auto model = OpenModel(path);
  if (!model.ok()) return Fail(WithPath(path, model.status()));
  auto info = DescribeModel(**model);
  if (!info.ok()) return Fail(WithPath(path, info.status()));
  if (flags->Bool("json")) {
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.preserve_proto_field_names = true;
    options.always_print_primitive_fields = true;
    auto s = google::protobuf::util::MessageToJsonString(*info, &json, options);
    if (!s.ok()) return Fail(absl::InternalError(s.ToString()));
    std::cout << json;
    return 0;
  }
  std::cout << FormatModelInfo(*info);
  if (flags->Bool("metadata") && (*model)->gguf() != nullptr) {
    const GgufFile& g = *(*model)->gguf();
    std::cout << "\nmetadata (GGUF v" << g.version() << "):\n";
    for (const GgufKv& kv : g.metadata()) {
      std::cout << "  " << kv.key << " = " << GgufFile::FormatValue(kv) << "\n";
    }
  }
  return 0;
}

int Inspect(int argc, char** argv) {
  auto flags = ParseFlags(argc, argv, {}, {"tensors"});
  if (!flags.ok()) return Fail(flags.status());
  if (flags->positional.size() != 1) {
    return Fail(absl::InvalidArgumentError(
        "inspect needs exactly one MODEL (a .gguf file or a Hugging Face "
        "folder)"));
  }
  const std::string& path = flags->positional[0];
  const auto start = std::chrono::steady_clock::now();
  // Open once: a GGUF without tensors is a vocabulary-only file, of which
  // we show the tokenizer; otherwise the whole model.
  std::unique_ptr<GgufFile> vocabulary_only;
  absl::StatusOr<std::unique_ptr<ModelWeights>> model;
  if (IsDirectory(path)) {
    model = OpenModel(path);
  } else {
    auto gguf = GgufFile::Open(path);
    if (!gguf.ok()) return Fail(gguf.status());
    if ((*gguf)->tensors().empty()) {
      vocabulary_only = std::move(*gguf);
    } else {
      model = ModelWeights::FromGguf(std::move(*gguf), path);
    }
  }
  std::vector<TensorRow> rows;
  const GgufFile* gguf = vocabulary_only.get();
  if (vocabulary_only) {
    std::cout << absl::StrFormat("%-18s%s\n", "weights",
                                 "none (vocabulary-only file)");
  } else {
    if (!model.ok()) return Fail(WithPath(path, model.status()));
    ReportOpened(path, **model, start);
    auto info = DescribeModel(**model);
    if (!info.ok()) return Fail(WithPath(path, info.status()));
    std::cout << FormatModelInfo(*info);
    for (const TensorView& t : (*model)->tensors()) {
      rows.push_back({t.name, t.type, t.dims, t.n_bytes});
    }
    gguf = (*model)->gguf();
  }
  PrintTokenizer(gguf, path);
  PrintTensors(rows, flags->Bool("tensors"));
  return 0;
}

}  // namespace tpserve::cli
