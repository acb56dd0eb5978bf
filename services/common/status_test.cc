#include "services/common/status.h"

#include "gtest/gtest.h"

namespace skein {
namespace {

TEST(StatusTest, MapsEveryCanonicalCodeBothWaysWithMessage) {
  for (int code = 1; code <= 16; ++code) {
    absl::Status status(static_cast<absl::StatusCode>(code), "detail " + std::to_string(code));
    grpc::Status wire = ToGrpcStatus(status);
    EXPECT_EQ(static_cast<int>(wire.error_code()), code);
    EXPECT_EQ(wire.error_message(), "detail " + std::to_string(code));
    EXPECT_EQ(FromGrpcStatus(wire), status);
  }
}

TEST(StatusTest, OkStaysOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(StatusTest, NotFoundIsDistinctFromOtherFailures) {
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError("k")).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ToGrpcStatus(absl::DataLossError("k")).error_code(), grpc::StatusCode::DATA_LOSS);
}

TEST(StatusTest, CodeNamesAreCanonical) {
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::OK), "OK");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::UNAUTHENTICATED), "UNAUTHENTICATED");
  EXPECT_EQ(GrpcCodeName(static_cast<grpc::StatusCode>(42)), "UNKNOWN_CODE_42");
}

}  // namespace
}  // namespace skein
