// `g3n create --from-hf DIR` and a Modelfile's `FROM DIR` on a tiny Hugging Face checkpoint written from
// the F16 fixture and both tower fixtures: the model and its projector land in the store, `show` reads
// them, `run` answers (an image too); a bad checkpoint fails
// with its file named and leaves nothing in the store.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "cli_util.h"
#include "golden_util.h"
#include "process_dir.h"
#include "gguf/gguf.h"
#include "tools/hf_test_checkpoint.h"

namespace g3n {
namespace {

using test::kG3n;
using test::run_capture;
namespace fs = std::filesystem;

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

// The tiny checkpoint with both towers, at `d` (default: this process's scratch directory).
std::string tiny_checkpoint(std::string d = "") {
  if (d.empty()) d = test::process_dir("cli-create-hf") + "/ckpt";
  fs::remove_all(d);
  HfTestCheckpointOptions o;
  o.mmproj_from = {test::fixtures_dir() + "/gemma3n-vision-tiny/models/gemma3n-vision-tiny-mmproj-f16.gguf",
                   test::fixtures_dir() + "/gemma3n-audio-tiny/models/gemma3n-audio-tiny-mmproj-f16.gguf"};
  write_hf_test_checkpoint(GgufFile::open(test::tiny_dir() + "/models/gemma3n-tiny-f16.gguf"), d, o);
  return d;
}

TEST(CliCreateHf, FromHfAndModelfileFromDir) {
  const std::string ckpt = tiny_checkpoint();
  const std::string store = test::process_dir("cli-create-hf") + "/store";
  fs::remove_all(store);
  const std::string env = "G3N_MODELS=" + store + " OLLAMA_MODELS=" + store + "/none ";
  int status = -1;
  std::string log = run_capture(env + kG3n + " create tiny-hf --from-hf " + ckpt + " --quantize q8_0 --layout llamacpp 2>&1", status);
  ASSERT_EQ(exit_code(status), 0) << log;
  EXPECT_NE(log.find("converted"), std::string::npos) << log;
  EXPECT_NE(log.find("peak RSS"), std::string::npos) << log;
  EXPECT_NE(log.find("success"), std::string::npos) << log;
  log = run_capture(env + kG3n + " show tiny-hf 2>&1", status);
  ASSERT_EQ(exit_code(status), 0) << log;
  EXPECT_NE(log.find("gemma3n"), std::string::npos) << log;
  EXPECT_NE(log.find("Q8_0"), std::string::npos) << log;
  // The towers became the projector layer.
  EXPECT_NE(log.find("vision"), std::string::npos) << log;
  EXPECT_NE(log.find("audio"), std::string::npos) << log;
  EXPECT_NE(log.find("Projector"), std::string::npos) << log;
  // Parts, exact counts: the tiny text model, the vision fixture's tower + embedder, the audio fixture's.
  EXPECT_NE(log.find("text                23,937,616"), std::string::npos) << log;
  EXPECT_NE(log.find("vision              321,864 + embedder 98,816"), std::string::npos) << log;
  EXPECT_NE(log.find("audio               302,176 + embedder 24,704"), std::string::npos) << log;
  log = run_capture(env + kG3n + " run tiny-hf hello -p num_predict=3 -p temperature=0 2>&1", status);
  EXPECT_EQ(exit_code(status), 0) << log;
  // Nothing left in the staging folder once stored.
  if (fs::exists(store + "/hf-convert")) {
    EXPECT_TRUE(fs::is_empty(store + "/hf-convert"));
  }

  // A Modelfile naming the directory, default options (Ollama layout, Q4_K_M).
  const std::string mf = test::process_dir("cli-create-hf") + "/Modelfile";
  std::ofstream(mf) << "FROM " << ckpt << "\nPARAMETER temperature 0\n";
  log = run_capture(env + kG3n + " create tiny-hf-ollama -f " + mf + " 2>&1", status);
  ASSERT_EQ(exit_code(status), 0) << log;
  log = run_capture(env + kG3n + " show tiny-hf-ollama 2>&1", status);
  ASSERT_EQ(exit_code(status), 0) << log;
  EXPECT_NE(log.find("Q4_K_M"), std::string::npos) << log;
  // An image through the converted vision tower.
  log = run_capture(env + kG3n + " run tiny-hf-ollama 'what is this' --image " + test::fixtures_dir() +
                        "/gemma3n-vision-tiny/inputs/scene_640x480.jpg -p num_predict=2 2>&1", status);
  EXPECT_EQ(exit_code(status), 0) << log;

  // --no-vision --no-audio: a text-only model.
  log = run_capture(env + kG3n + " create tiny-hf-text --from-hf " + ckpt + " --quantize f16 --no-vision --no-audio 2>&1", status);
  ASSERT_EQ(exit_code(status), 0) << log;
  log = run_capture(env + kG3n + " show tiny-hf-text 2>&1", status);
  EXPECT_EQ(log.find("Projector"), std::string::npos) << log;
  log = run_capture(env + kG3n + " run tiny-hf-ollama hello -p num_predict=3 2>&1", status);
  EXPECT_EQ(exit_code(status), 0) << log;

  // A truncated shard: a clear error naming it, and no model in the store.
  const std::string shard = ckpt + "/model-00002-of-00002.safetensors";
  fs::resize_file(shard, fs::file_size(shard) / 2);
  log = run_capture(env + kG3n + " create broken --from-hf " + ckpt + " 2>&1", status);
  EXPECT_EQ(exit_code(status), 1) << log;
  EXPECT_NE(log.find("model-00002-of-00002.safetensors"), std::string::npos) << log;
  log = run_capture(env + kG3n + " list 2>&1", status);
  EXPECT_EQ(log.find("broken"), std::string::npos) << log;
  fs::remove_all(store);
  fs::remove_all(ckpt);
}

// A Modelfile naming the checkpoint as `FROM ~/dir` (from $HOME) and as `FROM ../dir` (from the
// Modelfile's directory, whatever the current one), with PARAMETER, SYSTEM and TEMPLATE lines that the
// stored model keeps, and --no-audio: a projector with the vision tower only.
TEST(CliCreateHf, ModelfileTildeAndRelativeFromWithCommands) {
  const std::string home = test::process_dir("cli-create-hf-mf") + "/home";
  tiny_checkpoint(home + "/ckpts/tiny-hf");
  fs::create_directories(home + "/modelfiles");
  const std::string store = test::process_dir("cli-create-hf-mf") + "/store";
  const std::string env = "HOME=" + home + " G3N_MODELS=" + store + " OLLAMA_MODELS=" + store + "/none ";
  const std::string commands =
      "PARAMETER temperature 0.25\nPARAMETER num_ctx 512\nSYSTEM \"You answer in one word.\"\n"
      "TEMPLATE \"\"\"<start_of_turn>user\n{{ .Prompt }}<end_of_turn>\n<start_of_turn>model\n\"\"\"\n";
  const std::string tilde = home + "/modelfiles/Tilde";
  std::ofstream(tilde) << "FROM ~/ckpts/tiny-hf\n" << commands;
  const std::string relative = home + "/modelfiles/Relative";
  std::ofstream(relative) << "FROM ../ckpts/tiny-hf\n" << commands;

  for (const auto& [name, mf] : {std::pair<std::string, std::string>{"tilde-hf", tilde}, {"relative-hf", relative}}) {
    SCOPED_TRACE(name);
    int status = -1;
    // From / as the current directory: the relative FROM must resolve against the Modelfile's folder.
    std::string log = run_capture("cd / && " + env + kG3n + " create " + name + " -f " + mf + " --quantize q8_0 --no-audio 2>&1", status);
    ASSERT_EQ(exit_code(status), 0) << log;
    EXPECT_NE(log.find("converted"), std::string::npos) << log;
    log = run_capture(env + kG3n + " show " + name + " 2>&1", status);
    ASSERT_EQ(exit_code(status), 0) << log;
    EXPECT_NE(log.find("Q8_0"), std::string::npos) << log;
    EXPECT_NE(log.find("vision              321,864 + embedder 98,816"), std::string::npos) << log;
    EXPECT_EQ(log.find("audio               "), std::string::npos) << log;  // --no-audio: no audio part
    EXPECT_NE(log.find("Projector"), std::string::npos) << log;
    EXPECT_NE(log.find("You answer in one word."), std::string::npos) << log;
    log = run_capture(env + kG3n + " show " + name + " --parameters 2>&1", status);
    EXPECT_NE(log.find("temperature"), std::string::npos) << log;
    EXPECT_NE(log.find("0.25"), std::string::npos) << log;
    EXPECT_NE(log.find("num_ctx"), std::string::npos) << log;
    log = run_capture(env + kG3n + " show " + name + " --template 2>&1", status);
    EXPECT_NE(log.find("<start_of_turn>model"), std::string::npos) << log;
    log = run_capture(env + kG3n + " run " + name + " hello -p num_predict=2 2>&1", status);
    EXPECT_EQ(exit_code(status), 0) << log;
  }
  // A FROM naming no directory is an error that names the path, not a crash, and stores nothing.
  const std::string missing = home + "/modelfiles/Missing";
  std::ofstream(missing) << "FROM ~/ckpts/no-such-dir\n";
  int status = -1;
  std::string log = run_capture(env + kG3n + " create missing-hf -f " + missing + " 2>&1", status);
  EXPECT_EQ(exit_code(status), 1) << log;
  log = run_capture(env + kG3n + " list 2>&1", status);
  EXPECT_EQ(log.find("missing-hf"), std::string::npos) << log;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// kill -9 in the middle of a conversion (the test hook G3N_TEST_STALL_CONVERSION holds it there, its
// temporary file half written): nothing of the model is visible in the store; a second `create` meanwhile
// waits for the staging lock instead of touching the first one's files; a rerun removes the stale files
// the killed one left and succeeds.
TEST(CliCreateHf, KilledConversionLeavesNothingAndARerunSucceeds) {
  const std::string work = test::process_dir("cli-create-hf-kill");
  const std::string ckpt = tiny_checkpoint(work + "/ckpt");
  const std::string store = work + "/store", staging = store + "/hf-convert", log_path = work + "/create.log";
  const std::string env = "G3N_MODELS=" + store + " OLLAMA_MODELS=" + store + "/none ";
  const std::string create = kG3n + " create killed --from-hf " + ckpt + " --quantize q8_0";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string cmd = "exec env G3N_TEST_STALL_CONVERSION=120 " + env + create + " > " + log_path + " 2>&1";
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool stalled = false;
  for (int i = 0; i < 1200 && !stalled; ++i) {
    stalled = read_text(log_path).find("G3N_TEST_STALL_CONVERSION: stalling") != std::string::npos;
    if (!stalled) ::usleep(100 * 1000);
  }
  int status = -1;
  std::string log;
  if (stalled) {
    // Meanwhile a second conversion into the same store waits for the lock (and is stopped by timeout;
    // 6 s leave a loaded machine time to start it).
    log = run_capture(env + "timeout 6 " + create + " 2>&1", status);
    EXPECT_NE(log.find("waiting for another conversion"), std::string::npos) << log;
  }
  ::kill(pid, SIGKILL);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  ASSERT_TRUE(stalled) << read_text(log_path);
  EXPECT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << read_text(log_path);

  // Killed mid-way: a temporary file in the staging directory, no model anywhere in the store.
  bool partial = false;
  for (const auto& e : fs::directory_iterator(staging)) partial = partial || e.path().filename().string().find(".tmp-") != std::string::npos;
  EXPECT_TRUE(partial) << "no temporary file: the conversion was not killed mid-way";
  log = run_capture(env + kG3n + " list 2>&1", status);
  EXPECT_EQ(log.find("killed"), std::string::npos) << log;
  log = run_capture(env + kG3n + " show killed 2>&1", status);
  EXPECT_NE(exit_code(status), 0) << log;
  if (fs::exists(store + "/manifests"))
    for (const auto& e : fs::recursive_directory_iterator(store + "/manifests")) EXPECT_NE(e.path().filename(), "killed") << e.path();

  // The rerun: the stale files go, the conversion runs anew and the model is stored.
  log = run_capture(env + create + " 2>&1", status);
  ASSERT_EQ(exit_code(status), 0) << log;
  EXPECT_NE(log.find("stale file(s) of an interrupted conversion"), std::string::npos) << log;
  EXPECT_NE(log.find("converted"), std::string::npos) << log;
  EXPECT_TRUE(fs::is_empty(staging));
  log = run_capture(env + kG3n + " show killed 2>&1", status);
  EXPECT_EQ(exit_code(status), 0) << log;
  EXPECT_NE(log.find("Q8_0"), std::string::npos) << log;
}

}  // namespace
}  // namespace g3n
