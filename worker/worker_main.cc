// `tpserve-worker`: one worker rank as a process, serving
// tpserve.worker.v1.Worker (worker/worker_service.h).
//
// Contract with whoever starts it (the coordinator's `serve`, or a pod):
// once the server listens, exactly one line goes to stdout,
//   tpserve-worker listening on HOST:PORT
// with the real port (--listen HOST:0 picks a free one), and stdout is
// flushed; everything else (logs, errors) goes to stderr. SIGTERM or SIGINT
// shut the server down: in-flight calls get a short grace period, then are
// cancelled.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/version.h"
#include "worker/worker_service.h"

namespace tpserve {
namespace {

constexpr char kUsage[] =
    "usage: tpserve-worker [--listen HOST:PORT] [--threads N]\n"
    "                      [--collective-host HOST]\n"
    "\n"
    "Serves one tensor-parallel rank (tpserve.worker.v1.Worker) for a\n"
    "tpserve coordinator. Prints 'tpserve-worker listening on HOST:PORT'\n"
    "on stdout once it listens; logs go to stderr.\n"
    "\n"
    "  --listen HOST:PORT      address to serve on (default 127.0.0.1:0;\n"
    "                          port 0 picks a free port)\n"
    "  --threads N             CPU compute threads when the coordinator asks\n"
    "                          for 0 (default 0: one per core)\n"
    "  --collective-host HOST  address advertised to peer ranks for\n"
    "                          collectives (default 127.0.0.1; set a routable\n"
    "                          one for groups across machines)\n"
    "  --token-file FILE       shared secret the coordinator must present\n"
    "                          (default: $TPSERVE_WORKER_TOKEN, else none)\n"
    "  --tls-cert FILE --tls-key FILE --tls-ca FILE\n"
    "                          mutual TLS: serve with this certificate and\n"
    "                          accept only clients whose certificate the CA\n"
    "                          signed\n"
    "  --cuda-device N         GPU for a cuda LoadModel (default 0)\n"
    "  --tls-server-name NAME  name the coordinator's certificate is checked\n"
    "                          against for the rendezvous (default: its "
    "host)\n";

// Grace period for in-flight calls on shutdown (a step in progress is
// bounded by the collective timeout anyway).
constexpr std::chrono::seconds kShutdownGrace{5};
constexpr int kMaxMessageBytes = 64 << 20;

struct Args {
  std::string listen = "127.0.0.1:0";
  int threads = 0;
  std::string collective_host = "127.0.0.1";
  std::string token_file, tls_cert, tls_key, tls_ca, tls_server_name;
  int cuda_device = 0;
};

// Returns an exit code >= 0 to stop (0 after --help), or -1 to go on.
int ParseArgs(int argc, char** argv, Args* args) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    std::string name = arg, value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (name == "--listen" || name == "--threads" ||
               name == "--collective-host" || name == "--token-file" ||
               name == "--tls-cert" || name == "--tls-key" ||
               name == "--tls-ca" || name == "--tls-server-name" ||
               name == "--cuda-device") {
      if (i + 1 >= argc) {
        std::cerr << "tpserve-worker: " << name << " needs a value\n";
        return 2;
      }
      value = argv[++i];
    }
    if (name == "--listen") {
      args->listen = value;
    } else if (name == "--threads") {
      if (!absl::SimpleAtoi(value, &args->threads) || args->threads < 0) {
        std::cerr << "tpserve-worker: --threads takes a number >= 0\n";
        return 2;
      }
    } else if (name == "--collective-host") {
      args->collective_host = value;
    } else if (name == "--token-file") {
      args->token_file = value;
    } else if (name == "--tls-cert") {
      args->tls_cert = value;
    } else if (name == "--tls-key") {
      args->tls_key = value;
    } else if (name == "--tls-ca") {
      args->tls_ca = value;
    } else if (name == "--tls-server-name") {
      args->tls_server_name = value;
    } else if (name == "--cuda-device") {
      if (!absl::SimpleAtoi(value, &args->cuda_device) ||
          args->cuda_device < 0) {
        std::cerr << "tpserve-worker: --cuda-device takes a number >= 0\n";
        return 2;
      }
    } else {
      std::cerr << "tpserve-worker: unknown argument '" << arg << "'\n\n"
                << kUsage;
      return 2;
    }
  }
  const size_t colon = args->listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(args->listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    std::cerr << "tpserve-worker: --listen takes HOST:PORT, got '"
              << args->listen << "'\n";
    return 2;
  }
  if (args->collective_host.empty()) {
    std::cerr << "tpserve-worker: --collective-host is empty\n";
    return 2;
  }
  return -1;
}

int Main(int argc, char** argv) {
  logging::SetProgramName("tpserve-worker");
  Args args;
  const int parsed = ParseArgs(argc, argv, &args);
  if (parsed >= 0) return parsed;

  // Block the shutdown signals before gRPC starts its threads (they inherit
  // the mask), so only the sigwait below ever receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  WorkerServiceOptions options;
  options.threads = args.threads;
  options.collective_host = args.collective_host;
  options.cuda_device = args.cuda_device;
  absl::StatusOr<ChannelSecurity> security = LoadChannelSecurity(
      args.token_file, args.tls_cert, args.tls_key, args.tls_ca);
  if (!security.ok()) {
    std::cerr << "tpserve-worker: " << security.status().message() << "\n";
    return 2;
  }
  options.security = *std::move(security);
  options.security.tls_server_name = args.tls_server_name;
  WorkerService service(options);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(args.listen,
                           SecureServerCredentials(options.security), &port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "tpserve-worker: cannot listen on " << args.listen << "\n";
    return 1;
  }
  const std::string host = args.listen.substr(0, args.listen.rfind(':'));
  std::cout << "tpserve-worker listening on " << host << ":" << port
            << std::endl;  // Flushes: the parent reads this line from a pipe.
  TP_LOG(INFO) << kVersion << ": serving on " << host << ":" << port;

  int received = 0;
  while (sigwait(&signals, &received) != 0) {
  }
  TP_LOG(INFO) << strsignal(received) << ", shutting down";
  server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  server->Wait();
  TP_LOG(INFO) << "stopped";
  return 0;
}

}  // namespace
}  // namespace tpserve

int main(int argc, char** argv) { return tpserve::Main(argc, argv); }
