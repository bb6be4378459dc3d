// Starts `tpserve serve` as a real child process for integration tests and
// waits until it prints "tpserve ready on HOST:PORT". Everything the server
// prints on stdout is kept (a reader thread drains the pipe), so tests can
// also find its worker processes ("tpserve worker rank R pid P on ADDR").
#ifndef TPSERVE_TESTS_SERVER_PROCESS_H_
#define TPSERVE_TESTS_SERVER_PROCESS_H_

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace tpserve::testing {

class ServerProcess {
 public:
  // `args` follow "tpserve serve". The binary is $TPSERVE_BIN (CMake sets
  // it) or cli/tpserve (Bazel runfiles).
  explicit ServerProcess(const std::vector<std::string>& args) {
    const char* env = std::getenv("TPSERVE_BIN");
    const std::string bin = env ? env : "cli/tpserve";
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
    reader_ = std::thread([this, fd = fds[0]] {
      char buf[512];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) {
        std::lock_guard<std::mutex> lock(mu_);
        output_.append(buf, static_cast<size_t>(n));
        cv_.notify_all();
      }
      close(fd);
      std::lock_guard<std::mutex> lock(mu_);
      eof_ = true;
      cv_.notify_all();
    });
    const std::string ready = "tpserve ready on ";
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(120), [&] {
      return eof_ || output_.find(ready) != std::string::npos;
    });
    const size_t at = output_.find(ready);
    const size_t end = at == std::string::npos ? at : output_.find('\n', at);
    if (end != std::string::npos) {
      address_ = output_.substr(at + ready.size(), end - at - ready.size());
    }
    const std::string http = "tpserve http on ";
    const size_t h = output_.find(http);
    const size_t hend = h == std::string::npos ? h : output_.find('\n', h);
    if (hend != std::string::npos) {
      http_address_ = output_.substr(h + http.size(), hend - h - http.size());
    }
  }

  ~ServerProcess() {
    Stop();
    if (reader_.joinable()) reader_.join();
  }

  // SIGTERM (the server drains), then waits up to `wait`; SIGKILL after
  // that. Returns the exit status (-1 if killed or not started).
  int Stop(std::chrono::seconds wait = std::chrono::seconds(20)) {
    if (pid_ <= 0) return exit_status_;
    kill(pid_, SIGTERM);
    return Wait(wait);
  }

  // Waits for the process to end (after a signal the test sent).
  int Wait(std::chrono::seconds wait) {
    if (pid_ <= 0) return exit_status_;
    int status = 0;
    const auto end = std::chrono::steady_clock::now() + wait;
    bool done = false;
    while (std::chrono::steady_clock::now() < end) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        done = true;
        break;
      }
      usleep(20000);
    }
    if (!done) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      exit_status_ = -1;
    } else {
      exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    pid_ = -1;
    return exit_status_;
  }

  pid_t pid() const { return pid_; }
  // Empty if the server did not become ready.
  const std::string& address() const { return address_; }
  // "tpserve http on HOST:PORT", when serving HTTP.
  const std::string& http_address() const { return http_address_; }

  // The latest pid the server reported for worker `rank` (-1 if none).
  pid_t WorkerPid(int rank) const {
    std::lock_guard<std::mutex> lock(mu_);
    pid_t pid = -1;
    std::istringstream in(output_);
    std::string line;
    const std::string prefix =
        "tpserve worker rank " + std::to_string(rank) + " pid ";
    while (std::getline(in, line)) {
      if (line.rfind(prefix, 0) == 0) {
        pid = static_cast<pid_t>(std::atol(line.c_str() + prefix.size()));
      }
    }
    return pid;
  }

  // The latest address the server reported for worker `rank` ("" if none).
  std::string WorkerAddress(int rank) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string address;
    std::istringstream in(output_);
    std::string line;
    const std::string prefix = "tpserve worker rank " + std::to_string(rank);
    while (std::getline(in, line)) {
      const size_t on = line.find(" on ");
      if (line.rfind(prefix + " ", 0) == 0 && on != std::string::npos) {
        address = line.substr(on + 4);
      }
    }
    return address;
  }

  std::string output() const {
    std::lock_guard<std::mutex> lock(mu_);
    return output_;
  }

 private:
  pid_t pid_ = -1;
  int exit_status_ = -1;
  std::string address_;
  std::string http_address_;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string output_;  // Guarded by mu_.
  bool eof_ = false;    // Guarded by mu_.
};

// Whether process `pid` is gone (or a zombie nobody has reaped yet).
inline bool ProcessGone(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  if (!status) return true;
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("State:", 0) == 0) {
      return line.find('Z') != std::string::npos ||
             line.find('X') != std::string::npos;
    }
  }
  return true;
}

}  // namespace tpserve::testing

#endif  // TPSERVE_TESTS_SERVER_PROCESS_H_
