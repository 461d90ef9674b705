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
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "golden_util.h"
#include "pty_util.h"
#include "runtime/parameters.h"
#include "sampling/json_constraint.h"

namespace g3n {
namespace {

using test::kG3n;
using test::PtySession;
using test::run_capture;
std::string tiny_model() { return test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf"; }

TEST(CliRun, InteractiveSessionThroughPty) {
  PtySession s({kG3n, "run", tiny_model()}, std::string(G3N_BINARY_DIR) + "/pty-store");
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
  // A long answer is stopped by Ctrl-C; the session continues. Without the repeat penalty the tiny
  // model's greedy answer falls into a loop that never reaches an end token, so it is still running when
  // Ctrl-C arrives, however fast the machine (with Ollama's default 1.1 it ends in well under a second).
  mark = s.output().size();
  s.send("/set parameter num_predict 100000\r");
  ASSERT_TRUE(s.wait_for(">>> ", mark + 1)) << s.output();
  mark = s.output().size();
  s.send("/set parameter repeat_penalty 1\r");
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

// --format: one-shot answers constrained to JSON. The tiny model's weights are random, so its text is
// noise, but the constraint must still make it one complete JSON value. Free strings are unbounded, so
// generation can legitimately stop at num_predict inside a value; the prompts below were picked (greedy,
// --threads 2) so that the value closes well before num_predict 200 ("no": 74 tokens, "hi" with the schema:
// 44 tokens). If a change to the model path makes one run out, expect_json_answer says so explicitly
// (a valid but unfinished prefix) instead of reporting a parse error.
std::string run_format(const std::string& prompt, const std::string& format, int& status) {
  const std::string cmd = "G3N_MODELS=" + std::string(G3N_BINARY_DIR) + "/pty-store " + kG3n + " run " + tiny_model() +
                          " '" + prompt + "' --threads 2 --format '" + format +
                          "' -p temperature=0 -p num_predict=200 2>/dev/null";
  return run_capture(cmd, status);
}

// Parses `out` (stdout: the answer and the newline the CLI adds). On failure, tells an answer that was
// cut off (every byte a valid prefix under `schema`: generation hit num_predict) from one that broke the
// grammar (a constraint bug).
nlohmann::json expect_json_answer(const std::string& out, const JsonSchema& schema) {
  std::string text = out;
  while (!text.empty() && (text.back() == '\n')) text.pop_back();
  if (nlohmann::json::accept(text)) return nlohmann::json::parse(text);
  JsonMatcher m(schema);
  if (m.feed(text) && !m.complete())
    ADD_FAILURE() << "INCOMPLETE: the answer is a valid JSON prefix that stopped before the value closed "
                     "(done reason 'length': num_predict 200 reached); pick a prompt whose answer completes:\n" << out;
  else
    ADD_FAILURE() << "the answer is not JSON that the constraint could have produced:\n" << out;
  return nullptr;
}

// Characters (code points) of a UTF-8 string, as JSON Schema's maxLength counts them.
size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

TEST(CliRun, FormatJsonAnswersAnObject) {
  int status = -1;
  const std::string out = run_format("ok", "json", status);
  EXPECT_EQ(status, 0);
  const nlohmann::json v = expect_json_answer(out, *JsonSchema::any_object());
  EXPECT_TRUE(v.is_object()) << out;
  EXPECT_FALSE(v.empty()) << out;  // this prompt's answer has a member: more than the trivial {}
  std::printf("[format json] %zu bytes, %zu member(s)\n", out.size(), v.is_object() ? v.size() : 0);
}

TEST(CliRun, FormatSchemaFileConstrainsTheAnswer) {
  const nlohmann::json schema_doc = {
      {"type", "object"},
      {"properties", {{"name", {{"type", "string"}, {"maxLength", 12}}}, {"age", {{"type", "integer"}}}}},
      {"required", {"name", "age"}}};
  const std::string path = std::string(G3N_BINARY_DIR) + "/cli-run-format-schema.json";
  {
    std::ofstream f(path);
    f << schema_doc.dump(2);
  }
  const auto schema = JsonSchema::compile(schema_doc);
  for (const char* prompt : {"hi", "Hello", "What is the capital of France?"}) {
    SCOPED_TRACE(prompt);
    int status = -1;
    const std::string out = run_format(prompt, path, status);
    EXPECT_EQ(status, 0);
    const nlohmann::json v = expect_json_answer(out, *schema);
    ASSERT_TRUE(v.is_object()) << out;
    ASSERT_TRUE(v.contains("name")) << out;
    ASSERT_TRUE(v.contains("age")) << out;
    ASSERT_TRUE(v["name"].is_string()) << out;
    EXPECT_LE(utf8_length(v["name"].get<std::string>()), 12u) << out;
    EXPECT_TRUE(v["age"].is_number_integer()) << out;
    EXPECT_EQ(v.size(), 2u) << out;  // the constraint allows no properties beyond the schema's
    std::printf("[format schema '%s'] name of %zu characters, age %s\n", prompt, utf8_length(v["name"].get<std::string>()),
                v["age"].dump().c_str());
  }
}

TEST(CliRun, FormatMissingSchemaFileIsAClearError) {
  const std::string missing = std::string(G3N_BINARY_DIR) + "/no-such-schema.json";
  const std::string cmd = kG3n + " run " + tiny_model() + " hi --format " + missing + " 2>&1";
  int status = -1;
  const std::string out = run_capture(cmd, status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find(missing), std::string::npos) << out;
}

}  // namespace
}  // namespace g3n
