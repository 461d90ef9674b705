#include "cli/format.h"

#include <cmath>
#include <cstdio>

namespace g3n::cli {

// Ollama's byte format: decimal units, one decimal under 10 when fractional.
std::string human_bytes(double b) {
  static const char* kUnits[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%.0f B", b);
  else if (b < 10 && std::fabs(b - std::round(b)) >= 0.05) std::snprintf(buf, sizeof buf, "%.1f %s", b, kUnits[u]);
  else std::snprintf(buf, sizeof buf, "%.0f %s", b, kUnits[u]);
  return buf;
}

std::string human_eta(double secs) {
  if (!std::isfinite(secs) || secs < 0) return "";
  long s = long(secs + 0.5);
  char buf[32];
  if (s >= 100 * 3600) return "99h+";
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%ldm", s / 3600, (s % 3600) / 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%ldm%lds", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%lds", s);
  return buf;
}

}  // namespace g3n::cli
