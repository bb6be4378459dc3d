#include "common/logging.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace tpserve::logging {
namespace {

std::mutex& NameMutex() {
  static auto* mu = new std::mutex;
  return *mu;
}
std::string& ProgramName() {
  static auto* name = new std::string("tpserve");
  return *name;
}

}  // namespace

void SetProgramName(const std::string& name) {
  std::lock_guard<std::mutex> lock(NameMutex());
  ProgramName() = name;
}

LogMessage::LogMessage(Severity severity, const char* file, int line)
    : severity_(severity), file_(file), line_(line) {}

LogMessage::~LogMessage() {
  std::string out;
  {
    std::lock_guard<std::mutex> lock(NameMutex());
    out = ProgramName();
  }
  switch (severity_) {
    case Severity::kInfo:
      out += ": ";
      break;
    case Severity::kWarning:
      out += ": warning: ";
      break;
    case Severity::kError:
      out += ": error: ";
      break;
    case Severity::kFatal: {
      const char* slash = std::strrchr(file_, '/');
      out += ": FATAL ";
      out += slash != nullptr ? slash + 1 : file_;
      out += ":" + std::to_string(line_) + ": ";
      break;
    }
  }
  out += stream_.str();
  if (out.empty() || out.back() != '\n') out += '\n';
  // One write(2): whole lines even with several threads logging.
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::write(STDERR_FILENO, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  if (severity_ == Severity::kFatal) std::abort();
}

}  // namespace tpserve::logging
