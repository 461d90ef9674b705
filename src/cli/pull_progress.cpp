// Pull progress: on a terminal, one line per layer redrawn in place (size, percent, speed, ETA);
// otherwise plain status lines, one per change of status, so logs stay readable.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"

namespace g3n::cli {
namespace {

std::string size_str(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) { b /= 1000; ++u; }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

std::string eta_str(double seconds) {
  if (!(seconds >= 0) || seconds > 360000) return "--";
  const int s = static_cast<int>(seconds);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", s / 3600, s / 60 % 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%ds", s);
  return buf;
}

struct State {
  bool tty = isatty(STDERR_FILENO);
  std::string last_line_key;  // status (+ digest) of the line being drawn
  bool line_open = false;
};

}  // namespace

registry::ProgressFn pull_progress_printer() {
  auto st = std::make_shared<State>();
  return [st](const registry::PullProgress& p) {
    const std::string key = p.status + p.digest;
    std::string line = p.status;
    if (p.total > 0) {
      const double frac = static_cast<double>(p.completed) / static_cast<double>(p.total);
      char buf[160];
      if (st->tty) {
        const int width = 25, fill = static_cast<int>(frac * width + 0.5);
        std::string bar = std::string(fill, '#') + std::string(width - fill, ' ');
        std::snprintf(buf, sizeof buf, " %3.0f%% [%s] %s/%s %s/s %s", frac * 100, bar.c_str(), size_str(p.completed).c_str(),
                      size_str(p.total).c_str(), size_str(p.bytes_per_sec).c_str(),
                      p.done ? "" : eta_str(p.bytes_per_sec > 0 ? (p.total - p.completed) / p.bytes_per_sec : -1).c_str());
      } else {
        std::snprintf(buf, sizeof buf, " %s", size_str(p.total).c_str());
      }
      line += buf;
    }
    if (st->tty) {
      if (st->line_open && key != st->last_line_key) std::fputc('\n', stderr);
      std::fprintf(stderr, "\r%s\033[K", line.c_str());
      st->line_open = true;
      if (p.done) { std::fputc('\n', stderr); st->line_open = false; }
    } else if (key != st->last_line_key || p.done) {
      std::fprintf(stderr, "%s%s\n", line.c_str(), p.done ? " done" : "");
    }
    st->last_line_key = key;
    std::fflush(stderr);
  };
}

}  // namespace g3n::cli
