// Server logs and invariant checks: one small library with absl/log's shape,
//   TP_LOG(INFO) << "worker group " << n << " ready";
//   TP_CHECK(block < num_blocks) << "block " << block;
// so each line is one statement and each broken invariant aborts the same
// way. Debian bookworm's Abseil (20220623) predates absl/log (20230125);
// when it is there these become ABSL_LOG / ABSL_CHECK by a rename.
//
// Lines go to stderr as "PROGRAM: MESSAGE" (INFO), "PROGRAM: warning: ...",
// "PROGRAM: error: ..." and, for a failed check, "PROGRAM: FATAL FILE:LINE:
// Check failed: COND MESSAGE" followed by abort(). One write per line, so
// lines from concurrent threads do not interleave.
//
// TP_CHECK is for our own invariants only (a bug if it fires); untrusted
// input gets an absl::Status instead.
#ifndef TPSERVE_COMMON_LOGGING_H_
#define TPSERVE_COMMON_LOGGING_H_

#include <sstream>
#include <string>

namespace tpserve::logging {

enum class Severity { kInfo, kWarning, kError, kFatal };
// The spellings TP_LOG(SEVERITY) takes, as absl/log's.
inline constexpr Severity kINFO = Severity::kInfo;
inline constexpr Severity kWARNING = Severity::kWarning;
inline constexpr Severity kERROR = Severity::kError;

// The PROGRAM of every line ("tpserve" unless a main sets it first).
void SetProgramName(const std::string& name);

class LogMessage {
 public:
  LogMessage(Severity severity, const char* file, int line);
  ~LogMessage();  // Writes the line; aborts after a kFatal one.
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  const Severity severity_;
  const char* const file_;
  const int line_;
  std::ostringstream stream_;
};

// Turns the stream expression into void, so TP_CHECK is an expression.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace tpserve::logging

#define TP_LOG(severity)                                                    \
  ::tpserve::logging::LogMessage(::tpserve::logging::k##severity, __FILE__, \
                                 __LINE__)                                  \
      .stream()

#define TP_CHECK(condition)                                               \
  (condition)                                                             \
      ? (void)0                                                           \
      : ::tpserve::logging::Voidify() &                                   \
            ::tpserve::logging::LogMessage(                               \
                ::tpserve::logging::Severity::kFatal, __FILE__, __LINE__) \
                    .stream()                                             \
                << "Check failed: " #condition " "

#endif  // TPSERVE_COMMON_LOGGING_H_
