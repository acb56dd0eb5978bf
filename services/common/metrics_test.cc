#include "services/common/metrics.h"

#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"

namespace skein {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Serialize(Metrics& metrics) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, metrics.registry().Collect());
  return out.str();
}

TEST(MetricsTest, DeclaredMethodsAppearAtZero) {
  Metrics m("skein-test");
  m.DeclareMethods({"/pkg.Svc/A", "/pkg.Svc/B"});
  std::string text = Serialize(m);
  EXPECT_THAT(text, HasSubstr("skein_grpc_server_handled_total{service=\"skein-test\",code=\"OK\","
                              "method=\"/pkg.Svc/A\"} 0"));
  EXPECT_THAT(text, HasSubstr("method=\"/pkg.Svc/B\""));
}

TEST(MetricsTest, RecordsCountsAndLatencyByMethodAndCode) {
  Metrics m("skein-test");
  m.RpcStarted("/pkg.Svc/A");
  m.RecordRpc("/pkg.Svc/A", "OK", 0.003);
  m.RpcStarted("/pkg.Svc/A");
  m.RecordRpc("/pkg.Svc/A", "NOT_FOUND", 0.2);
  m.RpcStarted("/pkg.Svc/A");
  m.RecordRpc("/pkg.Svc/A", "NOT_FOUND", 0.4);
  std::string text = Serialize(m);
  EXPECT_THAT(text, HasSubstr("skein_grpc_server_started_total{service=\"skein-test\","
                              "method=\"/pkg.Svc/A\"} 3"));
  EXPECT_THAT(text, HasSubstr("code=\"NOT_FOUND\",method=\"/pkg.Svc/A\"} 2"));
  EXPECT_THAT(text, HasSubstr("code=\"OK\",method=\"/pkg.Svc/A\"} 1"));
  // 0.003 s lands in the 0.005 bucket and above, not in 0.0025.
  EXPECT_THAT(text, HasSubstr("skein_grpc_server_handling_seconds_bucket{service=\"skein-test\","
                              "code=\"OK\",method=\"/pkg.Svc/A\",le=\"0.005\"} 1"));
  EXPECT_THAT(text, HasSubstr("skein_grpc_server_handling_seconds_bucket{service=\"skein-test\","
                              "code=\"OK\",method=\"/pkg.Svc/A\",le=\"0.0025\"} 0"));
  EXPECT_THAT(text, HasSubstr("skein_grpc_server_handling_seconds_count{service=\"skein-test\","
                              "code=\"NOT_FOUND\",method=\"/pkg.Svc/A\"} 2"));
  EXPECT_THAT(text, HasSubstr("skein_grpc_server_in_flight{service=\"skein-test\","
                              "method=\"/pkg.Svc/A\"} 0"));
}

TEST(MetricsTest, ProcessCollectorReportsLiveValues) {
  Metrics m("skein-test");
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, m.process_collector()->Collect());
  std::string text = out.str();
  EXPECT_THAT(text, HasSubstr("process_cpu_seconds_total"));
  EXPECT_THAT(text, HasSubstr("process_resident_memory_bytes"));
  EXPECT_THAT(text, HasSubstr("process_open_fds"));
  EXPECT_THAT(text, HasSubstr("process_start_time_seconds"));
  EXPECT_THAT(text, Not(HasSubstr("process_resident_memory_bytes 0\n")));
}

TEST(MetricsTest, LatencyBucketsAreIncreasing) {
  const auto& b = RpcLatencyBuckets();
  ASSERT_GT(b.size(), 10u);
  for (size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);
}

}  // namespace
}  // namespace skein
