// `tpserve`: the command-line entry point. Subcommands live in cli_*.cc.
#include <iostream>
#include <string>

#include "cli/cli.h"
#include "common/version.h"

namespace tpserve {
namespace {

constexpr char kUsage[] =
    "usage: tpserve <command> [flags]\n"
    "\n"
    "commands:\n"
    "  inspect MODEL\n"
    "      Architecture, hyperparameters, tokenizer, tensor types and sizes\n"
    "      of a model (a .gguf file), as a readable table.\n"
    "  describe --model MODEL [--json] [--metadata]\n"
    "      Validate a model and print what tpserve serves it as, with the\n"
    "      tensor-parallel sizes it allows. --json prints the\n"
    "      tpserve.v1.ModelInfo message; --metadata lists every GGUF entry.\n"
    "  tokenize --model MODEL --input FILE.json [--add-bos] [--parse-special]\n"
    "      FILE.json is a JSON array of strings; prints one JSON array with\n"
    "      the token ids of each string. By default no BOS is added and the\n"
    "      text of special tokens is plain text. MODEL may be a\n"
    "      vocabulary-only GGUF.\n"
    "  generate --model MODEL [--tp N] [--threads T] [--max-tokens K]\n"
    "           [--temperature F] [--top-k K] [--top-p F] [--min-p F]\n"
    "           [--repetition-penalty F] [--presence-penalty F]\n"
    "           [--frequency-penalty F] [--seed N] [--chat [--system TEXT]\n"
    "           [--chat-template NAME|FILE]] [--ignore-eos]\n"
    "           [--stop TEXT] PROMPT\n"
    "      Run the model locally (N tensor-parallel ranks as threads) and\n"
    "      stream the continuation, as the servers make its text. Greedy\n"
    "      unless --temperature is given; --chat applies the model's chat\n"
    "      template (--chat-template: chatml, llama3, llama2 or a Jinja "
    "file).\n"
    "  generate --server HOST:PORT [same sampling flags] [--stop TEXT]\n"
    "           [--timeout SECONDS] [--api-key KEY] [--tls-ca CA.pem] PROMPT\n"
    "      Stream a completion from a running server.\n"
    "  serve --model MODEL [--tp N] [--listen HOST:PORT] [--threads T]\n"
    "        [--kv-cache-mb MB] [--max-step-tokens N] [--max-step-seqs N]\n"
    "        [--max-queue N] [--drain-seconds S] [--worker-bin PATH]\n"
    "        [--http-listen HOST:PORT] [--served-model-name NAME]\n"
    "        [--metrics-listen HOST:PORT] [--api-keys-file FILE]\n"
    "        [--tls-cert FILE --tls-key FILE] [--worker-token-file FILE]\n"
    "        [--worker-tls-cert FILE --worker-tls-key FILE --worker-tls-ca\n"
    "        FILE] [--step-timeout-ms MS] [--collective-timeout-ms MS]\n"
    "        [--max-rebuild-attempts N] [--chat-template NAME|FILE]\n"
    "      Serve the model over gRPC (tpserve.v1.Inference) on this machine:\n"
    "      starts N tpserve-worker processes (one per tensor-parallel rank)\n"
    "      and the coordinator; prints 'tpserve ready on HOST:PORT' when all\n"
    "      ranks have loaded. --threads is per worker (default: cores / N);\n"
    "      --kv-cache-mb is KV cache memory per worker. SIGTERM drains.\n"
    "      --http-listen adds the OpenAI-compatible HTTP API, "
    "--metrics-listen\n"
    "      Prometheus metrics. A worker that dies or hangs is replaced and\n"
    "      its requests resume (docs/reliability.md).\n"
    "  coordinator --model MODEL --workers HOST:PORT,... [serve's flags]\n"
    "              [--advertise-host HOST] [--backend cpu|cuda]\n"
    "      The coordinator alone, for workers started elsewhere\n"
    "      (tpserve-worker --listen HOST:PORT); also tpserve-coordinator.\n"
    "  version\n"
    "      Print the version.\n";

int Main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = argv[1];
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << kUsage;
    return 0;
  }
  if (command == "describe") return cli::Describe(argc - 2, argv + 2);
  if (command == "inspect") return cli::Inspect(argc - 2, argv + 2);
  if (command == "tokenize") return cli::Tokenize(argc - 2, argv + 2);
  if (command == "generate") return cli::Generate(argc - 2, argv + 2);
  if (command == "serve") return cli::Serve(argc - 2, argv + 2);
  if (command == "coordinator") return cli::Coordinator(argc - 2, argv + 2);
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
