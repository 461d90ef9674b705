// Human-readable sizes and durations, formatted as Ollama's CLI does.
#pragma once
#include <string>

namespace g3n::cli {

// Decimal units, one decimal under 10 when fractional: "24 MB", "2.8 GB".
std::string human_bytes(double bytes);
// "42s", "3m20s", "1h5m"; empty for an unknown (negative or infinite) time.
std::string human_eta(double seconds);

}  // namespace g3n::cli
