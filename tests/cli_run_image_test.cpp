// `g3n run MODEL --mmproj FILE --image FILE PROMPT` on the tiny text model with the tiny vision projector
// (both 256 wide), and the errors around it.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <string>

#include "cli_util.h"
#include "gguf/gguf.h"
#include "golden_util.h"
#include "vision/encode.h"
#include "vision/mmproj.h"

namespace g3n {
namespace {

using test::kG3n;
using test::run_capture;

std::string text_model() { return test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf"; }
std::string vdir() { return test::fixtures_dir() + "/gemma3n-vision-tiny"; }
std::string mmproj() { return vdir() + "/models/gemma3n-vision-tiny-mmproj-f16.gguf"; }
int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

int run(const std::string& args, std::string& out) {
  int status = -1;
  out = run_capture(kG3n + " run " + text_model() + " --threads 2 -p num_predict=8 -p temperature=0 " + args + " </dev/null 2>&1", status);
  return exit_code(status);
}

TEST(CliRunImage, TwoImagesAnswerAndCountRows) {
  std::string out;
  ASSERT_EQ(run("--mmproj " + mmproj() + " --image " + vdir() + "/inputs/scene_640x480.jpg --image " + vdir() +
                    "/inputs/wide_640x360.png --num-ctx 1024 --verbose 'Describe the images.'",
                out),
            0)
      << out;
  // 2 × (<start_of_image> + 256 soft + <end_of_image>) rows plus the chat turn's text.
  const size_t at = out.find("prompt eval count:");
  ASSERT_NE(at, std::string::npos) << out;
  const int rows = std::stoi(out.substr(out.find(':', at) + 1));
  EXPECT_GT(rows, 2 * 258);
  EXPECT_LT(rows, 2 * 258 + 100);  // the tiny vocabulary spells <start_of_image> as text
  EXPECT_NE(out.find("eval count:           8 token(s)"), std::string::npos) << out;
}

TEST(CliRunImage, ErrorsAreClear) {
  std::string out;
  EXPECT_EQ(run("--image " + vdir() + "/inputs/scene_640x480.jpg hi", out), 1);
  EXPECT_NE(out.find("--image needs --mmproj"), std::string::npos) << out;
  EXPECT_EQ(run("--mmproj " + mmproj() + " --image /nonexistent/x.png hi", out), 1);
  EXPECT_NE(out.find("/nonexistent/x.png"), std::string::npos) << out;
  EXPECT_EQ(run("--mmproj " + mmproj() + " hi", out), 1);
  EXPECT_NE(out.find("no --image"), std::string::npos) << out;
  EXPECT_EQ(run("--mmproj " + mmproj() + " --image " + vdir() + "/inputs/scene_640x480.jpg", out), 1);
  EXPECT_NE(out.find("needs a prompt"), std::string::npos) << out;
  // Two images (516 rows) do not fit a 512 context: an error, not a cut prompt.
  EXPECT_EQ(run("--mmproj " + mmproj() + " --image " + vdir() + "/inputs/scene_640x480.jpg --image " + vdir() +
                    "/inputs/wide_640x360.png --num-ctx 512 hi",
                out),
            1);
  EXPECT_NE(out.find("does not fit"), std::string::npos) << out;
}

TEST(CliRunImage, ProjectorOfAnotherWidthIsRefused) {
  const Mmproj mm = load_mmproj(mmproj());
  EXPECT_NO_THROW(check_projector_width(mm, 256));
  try {
    check_projector_width(mm, 2048);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("256"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("2048"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace g3n
