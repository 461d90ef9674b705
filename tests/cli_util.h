// Helpers for tests that drive the built `g3n` binary.
#pragma once
#include <cstdio>
#include <string>

namespace g3n::test {

inline const std::string kG3n = std::string(G3N_BINARY_DIR) + "/g3n";

// Runs a shell command and returns its stdout; status receives pclose's result.
inline std::string run_capture(const std::string& cmd, int& status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  status = pclose(p);
  return out;
}

}  // namespace g3n::test
