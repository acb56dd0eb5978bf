#include "services/state_store/key.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace skein::state_store {
namespace {

using ::testing::HasSubstr;

TEST(KeyTest, AcceptsPrintableNamespacedKeys) {
  for (const std::string& key :
       {std::string("k"), std::string("sessions/chat-42"), std::string("prefix/ab12/0-24"),
        std::string("a.b/c..d/...x"), std::string("with space"), std::string(256, 'z'),
        std::string("{tag}:colon~tilde")}) {
    EXPECT_TRUE(ValidateKey(key).ok()) << key;
  }
}

TEST(KeyTest, RejectsEmptyLongAndNonPrintableKeysSayingWhere) {
  EXPECT_THAT(ValidateKey("").message(), HasSubstr("empty"));
  EXPECT_THAT(ValidateKey(std::string(257, 'z')).message(), HasSubstr("257"));
  absl::Status control = ValidateKey(
      "abc\x01"
      "def");
  EXPECT_EQ(control.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(control.message(), HasSubstr("0x01 at offset 3"));
  // The message shows the control byte escaped, never raw.
  EXPECT_THAT(control.message(), HasSubstr("abc\\x01def"));
  EXPECT_FALSE(ValidateKey(std::string("a\0b", 3)).ok());
  EXPECT_FALSE(ValidateKey("del\x7f").ok());
  EXPECT_FALSE(ValidateKey("\xc3\xa9t\xc3\xa9").ok());
}

TEST(KeyTest, RejectsPathTricks) {
  for (const char* key : {"/etc/passwd", "a/", "a//b", "..", "../x", "a/../b", "a/..", ".", "./a",
                          "a/./b", "a\\b", "..\\x"}) {
    absl::Status s = ValidateKey(key);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << key;
  }
}

TEST(KeyTest, PrefixesMayBeEmptyOrEndInASlash) {
  EXPECT_TRUE(ValidateKeyPrefix("").ok());
  EXPECT_TRUE(ValidateKeyPrefix("sessions/").ok());
  EXPECT_FALSE(ValidateKeyPrefix("bad\n").ok());
  EXPECT_FALSE(ValidateKeyPrefix(std::string(257, 'p')).ok());
}

}  // namespace
}  // namespace skein::state_store
