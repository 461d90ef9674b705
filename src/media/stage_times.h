// Named stage times of the media benchmarks (image: stem, stage0..3, msfa, embedder; audio: sscp,
// conformer, embedder), kept in first-seen order, and their medians over repeated runs.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace g3n {

using StageTimes = std::vector<std::pair<std::string, double>>;

// Adds s seconds to the stage `part` (appended if new).
void add_stage_time(StageTimes& t, const std::string& part, double s);

// Per stage of the first run, in its order, the median of that stage over all runs.
StageTimes median_stage_times(const std::vector<const StageTimes*>& runs);

// The same over runs that each have a `stages` member.
template <class Run>
StageTimes median_stage_times(const std::vector<Run>& runs) {
  std::vector<const StageTimes*> ptrs;
  for (const Run& r : runs) ptrs.push_back(&r.stages);
  return median_stage_times(ptrs);
}

}  // namespace g3n
