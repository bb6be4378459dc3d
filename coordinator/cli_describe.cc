// `tpserve describe` and `tpserve inspect`: what tpserve sees in a model.
#include <chrono>
#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/chat_template.h"
#include "common/gguf.h"
#include "common/tokenizer.h"
#include "coordinator/cli.h"
#include "coordinator/model_info.h"
#include "google/protobuf/util/json_util.h"

namespace tpserve::cli {

int Describe(int argc, char** argv) {
  auto flags = ParseFlags(argc, argv, {"model"}, {"json", "metadata"});
  if (!flags.ok()) return Fail(flags.status());
  auto model = flags->values.find("model");
  if (model == flags->values.end() || model->second.empty()) {
    return Fail(absl::InvalidArgumentError(
        "describe needs --model FILE.gguf (scripts/fetch-model.sh downloads "
        "the default model)"));
  }
  auto gguf = GgufFile::Open(model->second);
  if (!gguf.ok()) return Fail(gguf.status());
  auto info = DescribeGguf(**gguf);
  if (!info.ok()) {
    return Fail(absl::Status(
        info.status().code(),
        absl::StrCat(model->second, ": ", info.status().message())));
  }
  if (flags->values.count("json") && flags->values["json"] == "true") {
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
  if (flags->values.count("metadata") && flags->values["metadata"] == "true") {
    std::cout << "\nmetadata (GGUF v" << (*gguf)->version() << "):\n";
    for (const GgufKv& kv : (*gguf)->metadata()) {
      std::cout << "  " << kv.key << " = " << GgufFile::FormatValue(kv) << "\n";
    }
  }
  return 0;
}

namespace {

std::string HumanBytes(uint64_t bytes) {
  if (bytes >= (1ull << 30))
    return absl::StrFormat("%.2f GiB", bytes / 1073741824.0);
  if (bytes >= (1ull << 20))
    return absl::StrFormat("%.1f MiB", bytes / 1048576.0);
  if (bytes >= (1ull << 10)) return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  return absl::StrCat(bytes, " B");
}

std::string Shape(const GgufTensor& t) { return absl::StrJoin(t.dims, " x "); }

}  // namespace

int Inspect(int argc, char** argv) {
  auto flags = ParseFlags(argc, argv, {}, {"tensors"});
  if (!flags.ok()) return Fail(flags.status());
  if (flags->positional.size() != 1) {
    return Fail(absl::InvalidArgumentError(
        "inspect needs exactly one MODEL path (a .gguf file)"));
  }
  const std::string& path = flags->positional[0];
  const auto start = std::chrono::steady_clock::now();
  auto gguf = GgufFile::Open(path);
  if (!gguf.ok()) return Fail(gguf.status());
  const double open_ms = std::chrono::duration<double, std::milli>(
                             std::chrono::steady_clock::now() - start)
                             .count();
  std::cerr << absl::StrFormat(
      "model: mapped %s (%s, GGUF v%d, %d tensors) "
      "and validated in %.1f ms\n",
      path, HumanBytes((*gguf)->file_size()), (*gguf)->version(),
      (*gguf)->tensors().size(), open_ms);
  const GgufFile& g = **gguf;
  const bool has_weights = !g.tensors().empty();
  if (has_weights) {
    auto info = DescribeGguf(g);
    if (!info.ok()) {
      return Fail(
          absl::Status(info.status().code(),
                       absl::StrCat(path, ": ", info.status().message())));
    }
    std::cout << FormatModelInfo(*info);
  } else {
    std::cout << absl::StrFormat("%-18s%s\n", "weights",
                                 "none (vocabulary-only file)");
  }

  if (g.FindKey("tokenizer.ggml.model") != nullptr) {
    auto tok = Tokenizer::FromGguf(g);
    if (!tok.ok()) {
      std::cout << absl::StrFormat(
          "%-18s%s\n", "tokenizer",
          absl::StrCat("unusable: ", tok.status().message()));
    } else {
      const Tokenizer& t = **tok;
      auto pre = g.GetString("tokenizer.ggml.pre");
      auto name = [&t](int32_t id) {
        return id < 0 ? std::string("none")
                      : absl::StrCat(id, " '", t.TokenText(id), "'");
      };
      std::cout << absl::StrFormat(
          "%-18s%s, pre '%s', %d tokens\n%-18s%s / %s, BOS %s by default\n",
          "tokenizer", *g.GetString("tokenizer.ggml.model"),
          pre.ok() ? std::string(*pre) : "-", t.vocab_size(), "bos / eos",
          name(t.bos_id()), name(t.eos_id()),
          t.add_bos_by_default() ? "added" : "not added");
      if (auto source = g.GetString("tokenizer.chat_template"); source.ok()) {
        auto chat = ChatTemplate::FromJinja(
            *source, std::string(t.TokenBytes(t.bos_id(), true)),
            std::string(t.TokenBytes(t.eos_id(), true)));
        std::cout << absl::StrFormat(
            "%-18s%s\n", "chat format",
            chat.ok()
                ? absl::StrCat(chat->name(), " (from the model's template)")
                : absl::StrCat("unrecognised: ", chat.status().message()));
      }
    }
  }

  // Per-type totals, then the tensors (layer 0 and the rest; all with
  // --tensors).
  struct Total {
    int count = 0;
    uint64_t elements = 0, bytes = 0;
  };
  std::map<std::string, Total> totals;
  for (const GgufTensor& t : g.tensors()) {
    Total& total = totals[std::string(GgmlTypeName(t.type))];
    ++total.count;
    total.elements += t.n_elements;
    total.bytes += t.n_bytes;
  }
  if (!totals.empty()) {
    std::cout << absl::StrFormat("\n%-8s %7s %14s %12s\n", "type", "tensors",
                                 "elements", "size");
    for (const auto& [type, total] : totals) {
      std::cout << absl::StrFormat("%-8s %7d %14d %12s\n", type, total.count,
                                   total.elements, HumanBytes(total.bytes));
    }
    std::cout << absl::StrFormat("\n%-28s %-6s %-14s %10s\n", "tensor", "type",
                                 "shape", "size");
    int hidden = 0;
    for (const GgufTensor& t : g.tensors()) {
      const bool later_layer =
          t.name.rfind("blk.", 0) == 0 && t.name.rfind("blk.0.", 0) != 0;
      if (later_layer && !flags->Bool("tensors")) {
        ++hidden;
        continue;
      }
      std::cout << absl::StrFormat("%-28s %-6s %-14s %10s\n", t.name,
                                   GgmlTypeName(t.type), Shape(t),
                                   HumanBytes(t.n_bytes));
    }
    if (hidden > 0) {
      std::cout << "(" << hidden
                << " tensors of later layers not shown; --tensors lists all)\n";
    }
  }
  return 0;
}

}  // namespace tpserve::cli
