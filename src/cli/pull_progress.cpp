// Pull progress on stderr: a bar per layer redrawn in place on a terminal; plain lines otherwise
// (logs, CI), one per layer start, every tenth of progress, and completion.
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/format.h"

namespace g3n::cli {
namespace {
using Clock = std::chrono::steady_clock;

int terminal_width() {
  winsize ws{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) return ws.ws_col;
  return 80;
}

// Draws pull progress on stderr: redrawn bars on a terminal, plain lines otherwise (logs, CI).
class PullRenderer {
 public:
  explicit PullRenderer(bool tty) : tty_(tty) {}

  void on(const registry::PullProgress& p) {
    if (p.digest.empty()) {
      lines_.push_back({p.status, "", p});
      if (tty_) redraw(true);
      else std::fprintf(stderr, "%s\n", p.status.c_str());
      return;
    }
    auto it = index_.find(p.digest);
    if (it == index_.end()) {
      it = index_.emplace(p.digest, lines_.size()).first;
      lines_.push_back({p.status, p.digest, p});
      starts_[p.digest] = {Clock::now(), p.completed};
      if (!tty_) std::fprintf(stderr, "%s: %s\n", p.status.c_str(), human_bytes(double(p.total)).c_str());
    }
    Line& l = lines_[it->second];
    const int old_decile = l.p.total > 0 ? int(10 * l.p.completed / l.p.total) : 0;
    l.p = p;
    if (tty_) {
      redraw(p.done);
    } else if (p.done) {
      const auto& [t0, c0] = starts_[p.digest];
      const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      std::fprintf(stderr, "%s: 100%% %s", p.status.c_str(), human_bytes(double(p.total)).c_str());
      if (p.completed > c0 && dt > 0) std::fprintf(stderr, " (%s/s)", human_bytes(double(p.completed - c0) / dt).c_str());
      std::fprintf(stderr, "\n");
    } else if (p.total > 0 && p.completed < p.total && int(10 * p.completed / p.total) > old_decile) {
      std::fprintf(stderr, "%s: %3d%% %s/%s %s/s\n", p.status.c_str(), int(100 * p.completed / p.total),
                   human_bytes(double(p.completed)).c_str(), human_bytes(double(p.total)).c_str(),
                   human_bytes(p.bytes_per_sec).c_str());
    }
  }

 private:
  struct Line {
    std::string text;
    std::string digest;
    registry::PullProgress p;
  };

  std::string bar_line(const Line& l, int width) const {
    const auto& p = l.p;
    const int pct = p.total > 0 ? int(100 * p.completed / p.total) : 100;
    char head[96];
    std::snprintf(head, sizeof head, "%s: %3d%% ", p.status.c_str(), pct);
    std::string tail;
    if (p.done) {
      tail = " " + human_bytes(double(p.total));
    } else {
      char buf[96];
      const double eta = p.bytes_per_sec > 0 ? double(p.total - p.completed) / p.bytes_per_sec : -1;
      std::snprintf(buf, sizeof buf, " %6s/%6s  %6s/s  %6s", human_bytes(double(p.completed)).c_str(),
                    human_bytes(double(p.total)).c_str(), human_bytes(p.bytes_per_sec).c_str(),
                    human_eta(eta).c_str());
      tail = buf;
    }
    const int bar = std::max(10, width - int(std::string(head).size()) - int(tail.size()) - 3);
    const int filled = p.total > 0 ? int(double(bar) * double(p.completed) / double(p.total)) : bar;
    std::string out = head;
    out += "\u2595";
    for (int i = 0; i < bar; ++i) out += i < filled ? "\u2588" : " ";
    out += "\u258f";
    return out + tail;
  }

  void redraw(bool force) {
    const auto now = Clock::now();
    if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const int width = terminal_width() - 1;
    std::string out;
    if (drawn_ > 0) out += "\x1b[" + std::to_string(drawn_) + "A";  // back to the first line we drew
    for (const auto& l : lines_) {
      out += "\r\x1b[2K";
      out += l.digest.empty() ? l.text : bar_line(l, width);
      out += "\n";
    }
    drawn_ = int(lines_.size());
    std::fputs(out.c_str(), stderr);
    std::fflush(stderr);
  }

  bool tty_;
  std::vector<Line> lines_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::pair<Clock::time_point, int64_t>> starts_;
  int drawn_ = 0;
  Clock::time_point last_draw_{};
};

}  // namespace

registry::ProgressFn pull_progress_printer() {
  auto r = std::make_shared<PullRenderer>(::isatty(STDERR_FILENO) != 0);
  return [r](const registry::PullProgress& p) { r->on(p); };
}

}  // namespace g3n::cli
