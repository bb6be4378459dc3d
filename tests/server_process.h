// Starts `tpserve serve` as a real child process for integration tests and
// waits until it prints "tpserve ready on HOST:PORT".
#ifndef TPSERVE_TESTS_SERVER_PROCESS_H_
#define TPSERVE_TESTS_SERVER_PROCESS_H_

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

namespace tpserve::testing {

class ServerProcess {
 public:
  // `args` follow "tpserve serve". The binary is $TPSERVE_BIN (CMake sets
  // it) or coordinator/tpserve (Bazel runfiles).
  explicit ServerProcess(const std::vector<std::string>& args) {
    const char* env = std::getenv("TPSERVE_BIN");
    const std::string bin = env ? env : "coordinator/tpserve";
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      std::vector<std::string> all = {bin, "serve"};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (std::string& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fds[0];
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(120);
    std::string text;
    const std::string ready = "tpserve ready on ";
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, 200) <= 0) continue;
      char buf[256];
      const ssize_t n = read(out_, buf, sizeof(buf));
      if (n <= 0) break;
      text.append(buf, static_cast<size_t>(n));
      const size_t at = text.find(ready);
      const size_t end = at == std::string::npos ? at : text.find('\n', at);
      if (end != std::string::npos) {
        address_ = text.substr(at + ready.size(), end - at - ready.size());
        break;
      }
    }
  }

  ~ServerProcess() { Stop(); }

  // SIGTERM (the server drains), then waits; returns the exit status.
  int Stop() {
    if (pid_ <= 0) return exit_status_;
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 400; ++i) {  // Up to 20 s.
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      usleep(50000);
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      pid_ = -1;
      status = -1;
    }
    if (out_ >= 0) close(out_);
    out_ = -1;
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return exit_status_;
  }

  // Empty if the server did not become ready.
  const std::string& address() const { return address_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  int exit_status_ = -1;
  std::string address_;
};

}  // namespace tpserve::testing

#endif  // TPSERVE_TESTS_SERVER_PROCESS_H_
