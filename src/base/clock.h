// Wall-clock intervals for the timings g3n reports (encode times, load times, request durations).
#pragma once
#include <chrono>

namespace g3n {

using SteadyClock = std::chrono::steady_clock;

// Seconds from t0 to now, on the monotonic clock.
inline double seconds_since(SteadyClock::time_point t0) { return std::chrono::duration<double>(SteadyClock::now() - t0).count(); }

}  // namespace g3n
