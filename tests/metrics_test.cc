// The Prometheus metrics end to end: report events, serve on loopback,
// scrape /metrics over HTTP and check the exposition text.
#include "coordinator/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tpserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// GET `path` from 127.0.0.1:`port` with HTTP/1.0, so the server closes the
// connection and the body ends at EOF (no chunking, no keep-alive): a plain
// socket keeps the test free of an HTTP client library.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect to port ", port));
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, 0);
    if (n <= 0) {
      close(fd);
      return absl::InternalError("send");
    }
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buffer[4096];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0) {
      close(fd);
      return absl::InternalError("recv");
    }
    if (n == 0) break;
    response.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return response;
}

// "127.0.0.1:1234" -> 1234, or -1.
int PortOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return -1;
  }
  return port;
}

TEST(MetricsTest, ServesEveryMetricWithItsValues) {
  std::unique_ptr<Metrics> metrics = MakePrometheusMetrics();
  metrics->RequestFinished("ok");
  metrics->RequestFinished("ok");
  metrics->RequestFinished("cancelled");
  metrics->RequestFinished("some_new_outcome");
  metrics->TimeToFirstToken(0.004);  // Below the first bucket (5 ms).
  metrics->TimeToFirstToken(0.3);
  metrics->InterTokenLatency(0.02);
  metrics->Step(0.012, 3, 100, 2);
  metrics->Step(0.008, 5, 0, 5);
  metrics->TokensGenerated(7);
  metrics->TokensGenerated(3);
  metrics->Preempted(2);
  metrics->SetQueue(4, 5);
  metrics->SetKvBlocks(30, 70);
  metrics->SetGroupState("ready");
  metrics->SetGroupState("recovering");
  metrics->GroupFailed();
  metrics->WorkerRestarted(3);

  absl::StatusOr<std::string> address = metrics->Serve("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_THAT(*address, StartsWith("127.0.0.1:"));
  const int port = PortOf(*address);
  ASSERT_GT(port, 0) << *address;

  absl::StatusOr<std::string> response = HttpGet(port, "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(*response, StartsWith("HTTP/1.1 200"));
  const std::string& text = *response;

  // Requests by outcome; the documented outcomes exist before any event.
  EXPECT_THAT(text, HasSubstr("# TYPE tpserve_requests_total counter"));
  EXPECT_THAT(text, HasSubstr("tpserve_requests_total{outcome=\"ok\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("tpserve_requests_total{outcome=\"cancelled\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_requests_total{outcome=\"error\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_requests_total{outcome="
                              "\"resource_exhausted\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_requests_total{outcome="
                              "\"some_new_outcome\"} 1\n"));

  // Histograms: cumulative buckets, _sum and _count.
  EXPECT_THAT(text, HasSubstr("# TYPE tpserve_time_to_first_token_seconds "
                              "histogram"));
  EXPECT_THAT(text, HasSubstr("tpserve_time_to_first_token_seconds_bucket{"
                              "le=\"0.005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_time_to_first_token_seconds_bucket{"
                              "le=\"0.5\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_time_to_first_token_seconds_bucket{"
                              "le=\"60\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_time_to_first_token_seconds_bucket{"
                              "le=\"+Inf\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_time_to_first_token_seconds_count 2\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_time_to_first_token_seconds_sum 0.304"));

  EXPECT_THAT(text, HasSubstr("# TYPE tpserve_inter_token_latency_seconds "
                              "histogram"));
  EXPECT_THAT(text, HasSubstr("tpserve_inter_token_latency_seconds_bucket{"
                              "le=\"0.001\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_inter_token_latency_seconds_bucket{"
                              "le=\"0.02\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_inter_token_latency_seconds_bucket{"
                              "le=\"5\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_inter_token_latency_seconds_count 1\n"));

  EXPECT_THAT(text,
              HasSubstr("# TYPE tpserve_step_duration_seconds histogram"));
  EXPECT_THAT(text, HasSubstr("tpserve_step_duration_seconds_bucket{"
                              "le=\"0.01\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_step_duration_seconds_bucket{"
                              "le=\"0.015\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_step_duration_seconds_count 2\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE tpserve_step_sequences histogram"));
  EXPECT_THAT(text, HasSubstr("tpserve_step_sequences_bucket{le=\"4\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_step_sequences_bucket{le=\"8\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_step_sequences_sum 8\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_step_sequences_count 2\n"));

  // Counters.
  EXPECT_THAT(text, HasSubstr("# TYPE tpserve_prefill_tokens_total counter"));
  EXPECT_THAT(text, HasSubstr("tpserve_prefill_tokens_total 100\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_decode_tokens_total 7\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_generated_tokens_total 10\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_preemptions_total 2\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_group_failures_total 1\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_worker_restarts_total 3\n"));

  // Gauges.
  EXPECT_THAT(text, HasSubstr("# TYPE tpserve_sequences_waiting gauge"));
  EXPECT_THAT(text, HasSubstr("tpserve_sequences_waiting 4\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_sequences_running 5\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_kv_blocks_used 30\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_kv_blocks_free 70\n"));

  // The group state: 1 for the current one only.
  EXPECT_THAT(text, HasSubstr("# TYPE tpserve_group_state gauge"));
  EXPECT_THAT(text, HasSubstr("tpserve_group_state{state=\"recovering\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_group_state{state=\"ready\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_group_state{state=\"failed\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("tpserve_group_state{state=\"draining\"} 0\n"));

  // Later events show in the next scrape.
  metrics->SetGroupState("ready");
  metrics->SetQueue(0, 1);
  response = HttpGet(port, "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(*response, HasSubstr("tpserve_group_state{state=\"ready\"} 1\n"));
  EXPECT_THAT(*response,
              HasSubstr("tpserve_group_state{state=\"recovering\"} 0\n"));
  EXPECT_THAT(*response, HasSubstr("tpserve_sequences_waiting 0\n"));

  // Serving twice is a caller bug, reported rather than ignored.
  EXPECT_EQ(metrics->Serve("127.0.0.1:0").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(MetricsTest, EveryMetricExistsBeforeAnyEvent) {
  std::unique_ptr<Metrics> metrics = MakePrometheusMetrics();
  absl::StatusOr<std::string> address = metrics->Serve("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  absl::StatusOr<std::string> response = HttpGet(PortOf(*address), "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  for (const char* name : {
           "tpserve_requests_total",
           "tpserve_time_to_first_token_seconds",
           "tpserve_inter_token_latency_seconds",
           "tpserve_step_duration_seconds",
           "tpserve_step_sequences",
           "tpserve_prefill_tokens_total",
           "tpserve_decode_tokens_total",
           "tpserve_generated_tokens_total",
           "tpserve_preemptions_total",
           "tpserve_sequences_waiting",
           "tpserve_sequences_running",
           "tpserve_kv_blocks_used",
           "tpserve_kv_blocks_free",
           "tpserve_group_state",
           "tpserve_group_failures_total",
           "tpserve_worker_restarts_total",
       }) {
    EXPECT_THAT(*response, HasSubstr(absl::StrCat("# TYPE ", name, " ")))
        << name;
  }
  // No state is current until the engine sets one.
  EXPECT_THAT(*response, Not(HasSubstr("tpserve_group_state{state=\"ready\"} "
                                       "1\n")));
}

TEST(MetricsTest, PortInUseNamesTheFlag) {
  std::unique_ptr<Metrics> first = MakePrometheusMetrics();
  absl::StatusOr<std::string> address = first->Serve("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();

  std::unique_ptr<Metrics> second = MakePrometheusMetrics();
  const absl::Status status = second->Serve(*address).status();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("--metrics-listen"));
  // The failed attempt leaves the second free to serve elsewhere.
  EXPECT_TRUE(second->Serve("127.0.0.1:0").ok());
}

TEST(MetricsTest, ServesOnTheWildcardAddress) {
  std::unique_ptr<Metrics> metrics = MakePrometheusMetrics();
  absl::StatusOr<std::string> address = metrics->Serve("0.0.0.0:0");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_THAT(*address, StartsWith("0.0.0.0:"));
  absl::StatusOr<std::string> response = HttpGet(PortOf(*address), "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(*response, HasSubstr("tpserve_requests_total"));
}

// IPv6 ("[::1]:0") too: Debian's civetweb is built without it.
TEST(MetricsTest, RejectsMalformedAddresses) {
  std::unique_ptr<Metrics> metrics = MakePrometheusMetrics();
  for (const char* listen :
       {"", "9090", ":9090", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:70000",
        "127.0.0.1:-1", "[::1]:0", "127.0.0.1:1,127.0.0.1:0"}) {
    const absl::Status status = metrics->Serve(listen).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << listen;
    EXPECT_THAT(std::string(status.message()), HasSubstr("--metrics-listen"))
        << listen;
  }
}

}  // namespace
}  // namespace tpserve
