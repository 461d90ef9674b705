#include "media/stage_times.h"

#include "runtime/benchmark.h"

namespace g3n {

void add_stage_time(StageTimes& t, const std::string& part, double s) {
  for (auto& [name, v] : t)
    if (name == part) {
      v += s;
      return;
    }
  t.emplace_back(part, s);
}

StageTimes median_stage_times(const std::vector<const StageTimes*>& runs) {
  if (runs.empty()) return {};
  StageTimes out = *runs.front();
  for (auto& [name, v] : out) {
    std::vector<double> xs;
    for (const StageTimes* run : runs)
      for (const auto& [n, s] : *run)
        if (n == name) xs.push_back(s);
    v = median(xs);
  }
  return out;
}

}  // namespace g3n
