// `tpserve`: the command-line entry point.
//
//   tpserve describe --model FILE.gguf [--json] [--metadata]
//   tpserve version
//
// Generation (`generate`) and serving (`serve`) subcommands join as the
// engine and the coordinator land.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/gguf.h"
#include "common/version.h"
#include "coordinator/model_info.h"
#include "google/protobuf/util/json_util.h"

namespace tpserve {
namespace {

constexpr char kUsage[] =
    "usage: tpserve <command> [flags]\n"
    "\n"
    "commands:\n"
    "  describe --model FILE.gguf [--json] [--metadata]\n"
    "      Validate a model file and print what tpserve sees: sizes, weight\n"
    "      types, tokenizer, and the tensor-parallel sizes it can serve.\n"
    "      --json prints the tpserve.v1.ModelInfo message as JSON;\n"
    "      --metadata also lists every GGUF metadata entry.\n"
    "  version\n"
    "      Print the version.\n";

// Flags of the form --name=value, --name value, or boolean --name.
struct Flags {
  std::map<std::string, std::string> values;
  std::vector<std::string> positional;
};

absl::StatusOr<Flags> ParseFlags(int argc, char** argv,
                                 const std::vector<std::string>& with_value,
                                 const std::vector<std::string>& booleans) {
  Flags flags;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (!absl::StartsWith(arg, "--")) {
      flags.positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto in = [&name](const std::vector<std::string>& v) {
      return std::find(v.begin(), v.end(), name) != v.end();
    };
    if (in(with_value)) {
      if (!inline_value) {
        if (i + 1 >= argc) {
          return absl::InvalidArgumentError(
              absl::StrCat("flag --", name, " needs a value"));
        }
        value = argv[++i];
      }
    } else if (in(booleans)) {
      if (inline_value && value != "true" && value != "false") {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, " takes true or false"));
      }
      if (!inline_value) value = "true";
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    flags.values[name] = value;
  }
  return flags;
}

int Fail(const absl::Status& status) {
  std::cerr << "tpserve: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

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

int Main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "help" ||
      std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  if (command == "describe") return Describe(argc - 2, argv + 2);
  if (command == "version" || command == "--version") {
    std::cout << "tpserve " << kVersion << "\n";
    return 0;
  }
  std::cerr << "tpserve: unknown command '" << command << "'\n\n" << kUsage;
  return 2;
}

}  // namespace
}  // namespace tpserve

int main(int argc, char** argv) { return tpserve::Main(argc, argv); }
