#include "coordinator/worker_pool.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "tpserve/worker/v1/worker.grpc.pb.h"

namespace tpserve {
namespace {

std::string DescribeExit(int status) {
  if (WIFEXITED(status))
    return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return absl::StrCat("was killed by signal ", WTERMSIG(status));
  return "stopped";
}

}  // namespace

bool WorkerAnswers(const std::string& address, const ChannelSecurity& security,
                   std::chrono::milliseconds deadline) {
  auto stub = worker::v1::Worker::NewStub(SecureChannel(address, security));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  worker::v1::HealthResponse resp;
  return stub->Health(&ctx, worker::v1::HealthRequest(), &resp).ok();
}

absl::StatusOr<std::vector<std::string>> StaticWorkerPool::Ensure(
    std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (const std::string& a : addresses_) {
    while (!WorkerAnswers(a, security_, std::chrono::milliseconds(1000))) {
      if (std::chrono::steady_clock::now() >= end) {
        return absl::UnavailableError(absl::StrCat(
            "worker ", a, " does not answer; start tpserve-worker there"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
  return addresses_;
}

SpawnedWorkerPool::SpawnedWorkerPool(std::string binary, int world,
                                     std::vector<std::string> argv_tail,
                                     ChannelSecurity security)
    : binary_(std::move(binary)),
      argv_tail_(std::move(argv_tail)),
      security_(std::move(security)),
      children_(static_cast<size_t>(world)) {}

SpawnedWorkerPool::~SpawnedWorkerPool() { StopAll(); }

int64_t SpawnedWorkerPool::restarts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return restarts_;
}

absl::Status SpawnedWorkerPool::Spawn(int rank, Child& child) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  std::vector<std::string> args = {binary_, "--listen", "127.0.0.1:0"};
  args.insert(args.end(), argv_tail_.begin(), argv_tail_.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The environment, built before fork (the child may only exec).
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string(*e).rfind("TPSERVE_WORKER_TOKEN=", 0) != 0) {
      env_strings.emplace_back(*e);
    }
  }
  if (!security_.token.empty()) {
    env_strings.push_back("TPSERVE_WORKER_TOKEN=" + security_.token);
  }
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return absl::InternalError("fork failed");
  }
  if (pid == 0) {
    // Child: stdout into the pipe, signals unblocked, and die with the
    // coordinator (also if it is SIGKILLed) so no worker is orphaned.
    dup2(fds[1], STDOUT_FILENO);
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_UNBLOCK, &all, nullptr);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);  // The parent died before prctl.
    execve(binary_.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  close(fds[1]);
  std::string line;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fds[0], POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      break;
    }
    char buf[256];
    const ssize_t got = read(fds[0], buf, sizeof(buf));
    if (got <= 0) break;
    line.append(buf, static_cast<size_t>(got));
  }
  close(fds[0]);
  const std::string prefix = "tpserve-worker listening on ";
  const size_t at = line.find(prefix);
  const size_t end = line.find('\n', at == std::string::npos ? 0 : at);
  if (at == std::string::npos || end == std::string::npos) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return absl::UnavailableError(
        absl::StrCat("worker rank ", rank, " (", binary_,
                     ") did not start; see its errors above"));
  }
  child.pid = pid;
  child.address = line.substr(at + prefix.size(), end - at - prefix.size());
  if (child.started_once) ++restarts_;
  child.started_once = true;
  // Machine-readable, for people and tests: which process is which rank.
  std::cout << "tpserve worker rank " << rank << " pid " << pid << " on "
            << child.address << std::endl;
  TP_LOG(INFO) << "worker rank " << rank << " (pid " << pid << ") listening on "
               << child.address;
  return absl::OkStatus();
}

void SpawnedWorkerPool::Kill(Child& child) {
  if (child.pid <= 0) return;
  kill(child.pid, SIGKILL);
  waitpid(child.pid, nullptr, 0);
  child.pid = -1;
}

absl::StatusOr<std::vector<std::string>> SpawnedWorkerPool::Ensure(
    std::chrono::milliseconds /*timeout*/) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> addresses;
  for (size_t r = 0; r < children_.size(); ++r) {
    Child& c = children_[r];
    if (c.pid > 0) {
      int status = 0;
      if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
        TP_LOG(WARNING) << "worker rank " << r << " (pid " << c.pid << ") "
                        << DescribeExit(status) << "; restarting it";
        c.pid = -1;
      } else if (!WorkerAnswers(c.address, security_,
                                std::chrono::milliseconds(1000))) {
        // Alive but not answering (hung, stopped): replace it. Its peers
        // blocked in a collective with it then fail at once.
        TP_LOG(WARNING) << "worker rank " << r << " (pid " << c.pid
                        << ") does not answer; restarting it";
        Kill(c);
      }
    }
    if (c.pid <= 0) {
      absl::Status s = Spawn(static_cast<int>(r), c);
      if (!s.ok()) return s;
    }
    addresses.push_back(c.address);
  }
  exited_.clear();
  return addresses;
}

std::string SpawnedWorkerPool::CheckExited() {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t r = 0; r < children_.size(); ++r) {
    Child& c = children_[r];
    if (c.pid <= 0) continue;
    int status = 0;
    if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
      if (exited_.empty()) {
        exited_ = absl::StrCat("worker rank ", r, " (pid ", c.pid, ") ",
                               DescribeExit(status));
      }
      c.pid = -1;
    }
  }
  return exited_;
}

void SpawnedWorkerPool::StopAll() {
  std::lock_guard<std::mutex> lock(mu_);
  for (Child& c : children_) {
    if (c.pid > 0) kill(c.pid, SIGTERM);
  }
  for (Child& c : children_) {
    if (c.pid <= 0) continue;
    // Up to 5 s for a clean exit, then SIGKILL.
    for (int i = 0; i < 100 && c.pid > 0; ++i) {
      if (waitpid(c.pid, nullptr, WNOHANG) == c.pid) c.pid = -1;
      if (c.pid > 0) usleep(50000);
    }
    Kill(c);
  }
}

}  // namespace tpserve
