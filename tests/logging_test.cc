// The one logging library: line format per severity and TP_CHECK's abort.
#include "common/logging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tpserve {
namespace {

using ::testing::MatchesRegex;

TEST(LoggingTest, OneLinePerStatementWithTheProgramAndSeverity) {
  logging::SetProgramName("prog");
  ::testing::internal::CaptureStderr();
  TP_LOG(INFO) << "group " << 2 << " ready";
  TP_LOG(WARNING) << "rank 1 did not answer";
  TP_LOG(ERROR) << "given up\n";  // A trailing newline is not doubled.
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "prog: group 2 ready\n"
            "prog: warning: rank 1 did not answer\n"
            "prog: error: given up\n");
  logging::SetProgramName("tpserve");
}

TEST(LoggingTest, CheckPassesWithoutEvaluatingItsMessage) {
  int evaluated = 0;
  auto message = [&] { return ++evaluated; };
  TP_CHECK(1 + 1 == 2) << message();
  EXPECT_EQ(evaluated, 0);
}

TEST(LoggingDeathTest, FailedCheckAbortsWithTheConditionAndMessage) {
  const int blocks = 3;
  EXPECT_DEATH(TP_CHECK(blocks < 2) << "blocks " << blocks,
               "tpserve: FATAL logging_test.cc:[0-9]+: Check failed: "
               "blocks < 2 blocks 3");
}

}  // namespace
}  // namespace tpserve
