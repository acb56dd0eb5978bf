// Finds stop strings in generated text that arrives in pieces (a stop string may span any
// number of tokens), and says how much of the text is safe to stream: everything except a
// tail that could still grow into a stop string. Text is cut before the first stop string.
// Not thread-safe: one per stream.
#ifndef SKEIN_SERVICES_ROUTER_STOP_MATCHER_H_
#define SKEIN_SERVICES_ROUTER_STOP_MATCHER_H_

#include <string>
#include <vector>

namespace skein::router {

class StopMatcher {
 public:
  // Empty strings are ignored.
  explicit StopMatcher(std::vector<std::string> stops);

  // Adds text; returns the text that may be emitted now. Once a stop string is found,
  // stopped() is true, the returned text ends right before it, and later calls return "".
  std::string Push(const std::string& text);
  // The held-back tail, at the end of the stream (no stop string can complete any more).
  std::string Flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  size_t longest_ = 0;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace skein::router

#endif  // SKEIN_SERVICES_ROUTER_STOP_MATCHER_H_
