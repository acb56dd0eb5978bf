#include "services/tokenizer/python_literal.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace skein::tokenizer {
namespace {

std::string Decode(const std::string& literal) {
  absl::StatusOr<std::string> out = DecodePythonLiteral(literal);
  EXPECT_TRUE(out.ok()) << literal << ": " << out.status();
  return out.ok() ? *out : "<error>";
}

void ExpectError(const std::string& literal, const std::string& fragment) {
  absl::StatusOr<std::string> out = DecodePythonLiteral(literal);
  ASSERT_FALSE(out.ok()) << literal << " decoded to " << *out;
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find(fragment), std::string::npos)
      << literal << ": " << out.status();
}

TEST(PythonLiteralTest, QuotesAndPlainText) {
  EXPECT_EQ(Decode("'abc'"), "abc");
  EXPECT_EQ(Decode("\"it's\""), "it's");
  EXPECT_EQ(Decode("'say \"hi\"'"), "say \"hi\"");
  EXPECT_EQ(Decode("'  two spaces  '"), "  two spaces  ");
  EXPECT_EQ(Decode("  'surrounding spaces are ignored' "), "surrounding spaces are ignored");
  EXPECT_EQ(Decode("''"), "");
  EXPECT_EQ(Decode("'\xE4\xBD\xA0\xE5\xA5\xBD'"), "\xE4\xBD\xA0\xE5\xA5\xBD");  // raw UTF-8
  EXPECT_EQ(Decode("u'text'"), "text");
}

TEST(PythonLiteralTest, SimpleEscapes) {
  EXPECT_EQ(Decode(R"('\n\t\r')"), "\n\t\r");
  EXPECT_EQ(Decode(R"('\\')"), "\\");
  EXPECT_EQ(Decode(R"('\'')"), "'");
  EXPECT_EQ(Decode(R"("\"")"), "\"");
  EXPECT_EQ(Decode(R"('\"')"), "\"");
  EXPECT_EQ(Decode(R"('\a\b\f\v')"), "\a\b\f\v");
  EXPECT_EQ(Decode(R"(b'\n\\\'')"), "\n\\'");
}

TEST(PythonLiteralTest, OctalEscapes) {
  EXPECT_EQ(Decode(R"('\0')"), std::string(1, '\0'));
  EXPECT_EQ(Decode(R"('\08')"), std::string("\0"
                                            "8",
                                            2));  // at most octal digits
  EXPECT_EQ(Decode(R"(b'\101\7')"), "A\a");
  EXPECT_EQ(Decode(R"(b'\377')"), "\xFF");
  EXPECT_EQ(Decode(R"('\377')"), "\xC3\xBF");  // a str escape is a code point: U+00FF
  EXPECT_EQ(Decode(R"('\1234')"), "S4");       // three digits at most: \123 is 'S'
}

TEST(PythonLiteralTest, HexEscapeMeansCodePointInStrAndByteInBytes) {
  EXPECT_EQ(Decode(R"('\x41')"), "A");
  EXPECT_EQ(Decode(R"('\x80')"), "\xC2\x80");  // U+0080, two bytes (spec §8.2 pitfall)
  EXPECT_EQ(Decode(R"('\xff')"), "\xC3\xBF");
  EXPECT_EQ(Decode(R"(b'\x80')"), "\x80");
  EXPECT_EQ(Decode(R"(b'\xe4\xbd\xa0')"), "\xE4\xBD\xA0");
  EXPECT_EQ(Decode(R"(B'\xFF')"), "\xFF");
}

TEST(PythonLiteralTest, UnicodeEscapes) {
  EXPECT_EQ(Decode(R"('\u2002')"), "\xE2\x80\x82");
  EXPECT_EQ(Decode(R"('\u00e9')"), "\xC3\xA9");
  EXPECT_EQ(Decode(R"('\U0001F600')"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(Decode(R"('\U0010FFFF')"), "\xF4\x8F\xBF\xBF");
  // Not escapes in a bytes literal: kept as written.
  EXPECT_EQ(Decode(R"(b'\u2002')"), "\\u2002");
  EXPECT_EQ(Decode(R"(b'\U0001F600')"), "\\U0001F600");
}

TEST(PythonLiteralTest, UnknownEscapesKeepTheBackslash) {
  EXPECT_EQ(Decode(R"('\q')"), "\\q");
  EXPECT_EQ(Decode(R"('\ ')"), "\\ ");
}

TEST(PythonLiteralTest, RawLiterals) {
  EXPECT_EQ(Decode(R"(r'\n\x41')"), "\\n\\x41");
  EXPECT_EQ(Decode(R"(r'\'')"), "\\'");
  EXPECT_EQ(Decode(R"(br'\xff')"), "\\xff");
  EXPECT_EQ(Decode(R"(Rb'a')"), "a");
}

TEST(PythonLiteralTest, Errors) {
  ExpectError("abc", "expected a quoted");
  ExpectError("'abc", "missing closing quote");
  ExpectError("'abc\"", "missing closing quote");
  ExpectError("'a' 'b'", "after the closing quote");
  ExpectError("'a'x", "after the closing quote");
  ExpectError("'''a'''", "triple-quoted");
  ExpectError("f'a'", "prefix");
  ExpectError("bb'a'", "prefix");
  ExpectError("ub'a'", "prefix");
  ExpectError(R"('\x4')", "truncated \\x");
  ExpectError(R"('\xZZ')", "truncated \\x");
  ExpectError(R"('\u12')", "truncated \\u");
  ExpectError(R"('\U0011000')", "truncated \\U");
  ExpectError(R"('\U00110000')", "beyond U+10FFFF");
  ExpectError(R"('\ud800')", "surrogate");
  ExpectError(R"('\N{BULLET}')", "\\N{");
  ExpectError(R"(b'\400')", "out of range");
  ExpectError("b'\xC3\xA9'", "non-ASCII");
  ExpectError("'\xFF'", "not valid UTF-8");
  ExpectError("'abc\\", "lone backslash");
}

}  // namespace
}  // namespace skein::tokenizer
