// Stop strings that may span tokens. Text goes in as it is decoded; what comes out is safe to show:
// anything that could still be the start of a stop string is held back until it is decided.
//
// Typical loop (the pieces the CLI/server combine):
//   StreamingDetokenizer detok(tok); StopMatcher stops(params.stop);
//   while (!sampler.reached_limit()) {
//     int32_t id = sampler.sample(logits); sampler.accept(id);
//     if (tok.is_stop(id)) break;
//     print(stops.push(detok.push(id))); if (stops.stopped()) break;
//   }
//   if (!stops.stopped()) print(stops.push(detok.flush()) + stops.flush());
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace g3n {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops = {});

  // Appends text; returns the part that can no longer belong to a stop string. When a stop string
  // completes, returns the text before it, sets stopped(), and drops the stop string and the rest.
  std::string push(std::string_view text);
  // End of generation: returns the held-back text (it was not a stop string after all).
  std::string flush();
  bool stopped() const { return stopped_; }
  const std::string& matched() const { return matched_; }  // the stop string that ended generation
  size_t held_bytes() const { return held_.size(); }
  void reset();

 private:
  std::vector<std::string> stops_;
  std::string held_;
  std::string matched_;
  bool stopped_ = false;
};

}  // namespace g3n
