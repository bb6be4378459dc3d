// Subcommands of the `tpserve` command line (cli/tpserve_main.cc
// dispatches). Each returns the process exit code: 0 ok, 2 bad usage or bad
// input, 1 anything else.
#ifndef TPSERVE_CLI_CLI_H_
#define TPSERVE_CLI_CLI_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tpserve::cli {

// Flags of the form --name=value, --name value, or boolean --name.
struct Flags {
  std::map<std::string, std::string> values;
  std::vector<std::string> positional;

  bool Bool(const std::string& name) const {
    auto it = values.find(name);
    return it != values.end() && it->second == "true";
  }
  std::string Get(const std::string& name) const {
    auto it = values.find(name);
    return it == values.end() ? "" : it->second;
  }
};

absl::StatusOr<Flags> ParseFlags(int argc, char** argv,
                                 const std::vector<std::string>& with_value,
                                 const std::vector<std::string>& booleans);

// Prints "tpserve: <message>" to stderr and maps the code to an exit code.
int Fail(const absl::Status& status);

int Describe(int argc, char** argv);
int Inspect(int argc, char** argv);
int Tokenize(int argc, char** argv);
int Generate(int argc, char** argv);
// `generate --server ADDR`: the same, from a running server (cli_client.cc).
int GenerateRemote(const Flags& flags, const std::string& prompt);
int Serve(int argc, char** argv);
int Coordinator(int argc, char** argv);

}  // namespace tpserve::cli

#endif  // TPSERVE_CLI_CLI_H_
