#include <algorithm>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/cli.h"

namespace tpserve::cli {

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

}  // namespace tpserve::cli
