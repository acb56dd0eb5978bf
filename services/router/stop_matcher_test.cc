#include "services/router/stop_matcher.h"

#include "gtest/gtest.h"

namespace skein::router {
namespace {

// Feeds `pieces`; returns everything emitted (with the flush unless a stop matched).
std::string Feed(StopMatcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  for (const std::string& p : pieces) out += m.Push(p);
  return out + m.Flush();
}

TEST(StopMatcherTest, StopSplitAcrossPiecesCutsTheTextBeforeIt) {
  StopMatcher m({"\n\nUser:"});
  EXPECT_EQ(Feed(m, {"Hello", " there", "\n", "\nUs", "er", ": more"}), "Hello there");
  EXPECT_TRUE(m.stopped());
}

TEST(StopMatcherTest, HeldBackTailIsReleasedWhenItStopsMatching) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.Push("abc ST"), "abc ");
  EXPECT_EQ(m.Push("ART"), "START");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.Push("xS"), "x");
  EXPECT_EQ(m.Flush(), "S");
}

TEST(StopMatcherTest, EarliestOfSeveralStopsWinsAndNothingFollows) {
  StopMatcher m({"world", "lo w"});
  EXPECT_EQ(m.Push("hello world"), "hel");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.Push("more"), "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, NoStopsStreamsEverythingAtOnce) {
  StopMatcher m({"", ""});
  EXPECT_EQ(m.Push("abc"), "abc");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, OverlappingPrefixesAreHeldCorrectly) {
  StopMatcher m({"aab"});
  EXPECT_EQ(m.Push("xaa"), "x");
  EXPECT_EQ(m.Push("a"), "a");  // "aaa": "aa" may still start "aab"
  EXPECT_EQ(m.Push("b"), "");
  EXPECT_TRUE(m.stopped());
}

}  // namespace
}  // namespace skein::router
