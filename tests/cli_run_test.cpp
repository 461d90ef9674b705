// `g3n run` as a person uses it: an interactive session driven through a pseudo-terminal (answers
// stream, /set works, Ctrl-C stops an answer and the session goes on), and clean one-shot output.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "cli_util.h"
#include "golden_util.h"
#include "runtime/parameters.h"

namespace g3n {
namespace {

using test::kG3n;
using test::run_capture;
std::string tiny_model() { return test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf"; }

class PtySession {
 public:
  explicit PtySession(const std::vector<std::string>& args) {
    pid_ = forkpty(&fd_, nullptr, nullptr, nullptr);
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      setenv("G3N_MODELS", (std::string(G3N_BINARY_DIR) + "/pty-store").c_str(), 1);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~PtySession() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }
  void send(const std::string& s) { ASSERT_EQ(write(fd_, s.data(), s.size()), static_cast<ssize_t>(s.size())); }
  // Reads until `needle` appears in the output since `from`, or the timeout passes.
  bool wait_for(const std::string& needle, size_t from = 0, int timeout_ms = 60000) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (out_.find(needle, from) == std::string::npos) {
      const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count());
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, left) <= 0) continue;
      char buf[4096];
      const ssize_t n = read(fd_, buf, sizeof buf);
      if (n <= 0) return out_.find(needle, from) != std::string::npos;
      out_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  int wait_exit() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  const std::string& output() const { return out_; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string out_;
};

TEST(CliRun, InteractiveSessionThroughPty) {
  PtySession s({kG3n, "run", tiny_model()});
  ASSERT_TRUE(s.wait_for(">>> ")) << s.output();
  // A .gguf path has no params layer: /show parameters prints the table's defaults, the same ones
  // g3n serve starts from (ServerGenerate.DefaultsComeFromTheParameterTable).
  size_t mark = s.output().size();
  s.send("/show parameters\r");
  const std::vector<std::string> defaults = show_parameters(default_parameters());
  ASSERT_TRUE(s.wait_for(defaults.back(), mark)) << s.output();
  for (const auto& line : defaults) EXPECT_NE(s.output().find(line, mark), std::string::npos) << line;
  ASSERT_TRUE(s.wait_for(">>> ", mark)) << s.output();
  // /set and /show work.
  mark = s.output().size();
  s.send("/set parameter temperature 0\r");
  ASSERT_TRUE(s.wait_for("Set parameter 'temperature' to '0'", mark)) << s.output();
  mark = s.output().size();
  s.send("/show parameters\r");
  ASSERT_TRUE(s.wait_for("temperature 0", mark)) << s.output();
  ASSERT_TRUE(s.wait_for(">>> ", mark)) << s.output();
  // A short answer streams and the prompt comes back.
  mark = s.output().size();
  s.send("/set parameter num_predict 8\r");
  ASSERT_TRUE(s.wait_for(">>> ", mark + 1)) << s.output();
  mark = s.output().size();
  s.send("Hello world\r");
  ASSERT_TRUE(s.wait_for(">>> ", mark + 12)) << s.output();
  const std::string answer = s.output().substr(mark);
  EXPECT_GT(answer.size(), std::string("Hello world\r\n\r\n>>> ").size()) << answer;
  // A long answer is stopped by Ctrl-C; the session continues.
  mark = s.output().size();
  s.send("/set parameter num_predict 100000\r");
  ASSERT_TRUE(s.wait_for(">>> ", mark + 1)) << s.output();
  mark = s.output().size();
  s.send("Tell me a long story\r");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  s.send("\x03");
  ASSERT_TRUE(s.wait_for("(interrupted)", mark, 30000)) << s.output().substr(mark);
  ASSERT_TRUE(s.wait_for(">>> ", mark)) << s.output().substr(mark);
  mark = s.output().size();
  s.send("/bye\r");
  EXPECT_EQ(s.wait_exit(), 0);
}

TEST(CliRun, OneShotStdoutHoldsOnlyTheAnswer) {
  const std::string cmd = "echo 'What is the capital of France?' | G3N_MODELS=" + std::string(G3N_BINARY_DIR) +
                          "/pty-store " + kG3n + " run " + tiny_model() + " -p num_predict=40 2>/dev/null";
  int status = -1;
  const std::string out = run_capture(cmd, status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out.find(">>>"), std::string::npos) << out;
  EXPECT_EQ(out.find("Send a message"), std::string::npos) << out;
  EXPECT_EQ(out.find("<end_of_turn>"), std::string::npos) << out;  // special tokens never echoed
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back(), '\n');
}

TEST(CliRun, MissingFileIsAClearError) {
  const std::string cmd = kG3n + " run /nonexistent/model.gguf hi 2>&1";
  int status = -1;
  const std::string out = run_capture(cmd, status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("/nonexistent/model.gguf"), std::string::npos) << out;
}

}  // namespace
}  // namespace g3n
