// `tpserve-coordinator --model MODEL --workers HOST:PORT,... [--listen
// HOST:PORT]`: the coordinator of a cluster whose workers run on their own
// (`tpserve-worker --listen HOST:PORT` on each machine or pod).
#include <cstring>
#include <iostream>

#include "cli/cli.h"

int main(int argc, char** argv) {
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 ||
                    std::strcmp(argv[1], "-h") == 0)) {
    std::cout << "usage: tpserve-coordinator --model MODEL --workers "
                 "HOST:PORT,... [--listen HOST:PORT] [--advertise-host HOST]\n"
                 "  [--kv-cache-mb MB] [--max-step-tokens N] [--max-step-seqs "
                 "N] [--max-queue N]\n"
                 "  [--block-size N] [--threads N] [--drain-seconds S] "
                 "[--chat-template NAME|FILE]\n";
    return 0;
  }
  return tpserve::cli::Coordinator(argc - 1, argv + 1);
}
