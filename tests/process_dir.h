// A scratch directory of this test process. ctest runs every gtest case as its own process, two at a
// time (-j2): a fixed scratch path shared by the cases of one file let one process rewrite or remove a
// checkpoint while its neighbour read it. process_dir("hf-convert") is <build>/hf-convert-<pid>: created
// empty on first use, removed when the process exits; directories of the same name left by processes
// that no longer run (a crash, a kill) are removed then too.
#pragma once
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>

namespace g3n::test {

namespace process_dir_detail {

// The directories this process made, removed at exit (static destruction, after the tests ran).
struct Made {
  std::mutex mu;
  std::set<std::string> dirs;
  ~Made() {
    std::error_code ec;
    for (const auto& d : dirs) std::filesystem::remove_all(d, ec);
  }
};

inline Made& made() {
  static Made m;
  return m;
}

// Removes <parent>/<name>-<pid> for every pid that is not a running process.
inline void remove_stale(const std::filesystem::path& parent, const std::string& name) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(parent, ec)) {
    const std::string f = e.path().filename().string();
    if (f.size() <= name.size() + 1 || f.compare(0, name.size() + 1, name + "-") != 0) continue;
    const std::string digits = f.substr(name.size() + 1);
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    std::filesystem::remove_all(e.path(), ec);
  }
}

}  // namespace process_dir_detail

// <G3N_BINARY_DIR>/<name>-<pid>, created (empty) on the first call of this process.
inline std::string process_dir(const std::string& name) {
  const std::filesystem::path parent = G3N_BINARY_DIR;
  const std::string d = (parent / (name + "-" + std::to_string(::getpid()))).string();
  auto& m = process_dir_detail::made();
  std::lock_guard<std::mutex> lock(m.mu);
  if (m.dirs.insert(d).second) {
    process_dir_detail::remove_stale(parent, name);
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
  }
  return d;
}

}  // namespace g3n::test
