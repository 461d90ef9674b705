// `g3n run` with images on the tiny text model and the tiny vision projector (both 256 wide): --mmproj and
// --image, image paths typed in one-shot prompts and in the chat, a store model's projector layer, and
// the errors around them.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "gguf/gguf.h"
#include "golden_util.h"
#include "media/image_encoder.h"
#include "projector_util.h"
#include "pty_util.h"
#include "vision/encode.h"
#include "vision/mmproj.h"

namespace g3n {
namespace {

using test::kG3n;
using test::PtySession;
using test::run_capture;

std::string text_model() { return test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf"; }
std::string vdir() { return test::fixtures_dir() + "/gemma3n-vision-tiny"; }
std::string mmproj() { return vdir() + "/models/gemma3n-vision-tiny-mmproj-f16.gguf"; }
int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

std::string scene() { return vdir() + "/inputs/scene_640x480.jpg"; }
std::string wide() { return vdir() + "/inputs/wide_640x360.png"; }

// A scratch directory for this test binary (stores, copies of images).
std::string scratch(const std::string& name) {
  const std::string dir = std::string(G3N_BINARY_DIR) + "/cli-run-image/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// `g3n run MODEL ARGS` (MODEL: the tiny .gguf unless given), stdin empty, stdout and stderr together.
int run_model(const std::string& model, const std::string& args, std::string& out, const std::string& env = "") {
  int status = -1;
  out = run_capture(env + kG3n + " run " + model + " --threads 2 -p num_predict=8 -p temperature=0 " + args + " </dev/null 2>&1", status);
  return exit_code(status);
}
int run(const std::string& args, std::string& out) { return run_model(text_model(), args, out); }

// --verbose's "prompt eval count: N token(s) (C cached)" after `from`: N and C, or -1s.
std::pair<int, int> prompt_count(const std::string& out, size_t from = 0) {
  const size_t at = out.find("prompt eval count:", from);
  if (at == std::string::npos) return {-1, -1};
  const size_t colon = out.find(':', at);
  const int n = std::stoi(out.substr(colon + 1));
  const size_t paren = out.find("token(s) (", colon);
  return {n, paren == std::string::npos ? -1 : std::stoi(out.substr(paren + 10))};
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
  // A model without a projector (a .gguf path, no --mmproj) cannot take an image.
  EXPECT_EQ(run("--image " + scene() + " hi", out), 1);
  EXPECT_NE(out.find("has no vision projector"), std::string::npos) << out;
  EXPECT_NE(out.find("--mmproj"), std::string::npos) << out;
  EXPECT_EQ(run("--mmproj " + mmproj() + " --image /nonexistent/x.png hi", out), 1);
  EXPECT_NE(out.find("/nonexistent/x.png"), std::string::npos) << out;
  EXPECT_EQ(run("--mmproj " + mmproj() + " --image " + scene(), out), 1);
  EXPECT_NE(out.find("needs a prompt"), std::string::npos) << out;
  // An image file that does not decode: an error naming it.
  const std::string dir = scratch("errors");
  std::ofstream(dir + "/broken.png") << "not a png";
  EXPECT_EQ(run("--mmproj " + mmproj() + " 'what is " + dir + "/broken.png'", out), 1);
  EXPECT_NE(out.find(dir + "/broken.png"), std::string::npos) << out;
  // --mmproj alone is fine: a text prompt is answered without images.
  EXPECT_EQ(run("--mmproj " + mmproj() + " --verbose hi", out), 0) << out;
  EXPECT_LT(prompt_count(out).first, 30) << out;
  // Two images (516 rows) do not fit a 512 context: an error, not a cut prompt.
  EXPECT_EQ(run("--mmproj " + mmproj() + " --image " + vdir() + "/inputs/scene_640x480.jpg --image " + vdir() +
                    "/inputs/wide_640x360.png --num-ctx 512 hi",
                out),
            1);
  EXPECT_NE(out.find("does not fit"), std::string::npos) << out;
}

// `g3n run MODEL "what is in ./x.jpg?"`: the path becomes the message's image, the rest its text.
TEST(CliRunImage, PathInPromptOneShot) {
  const std::string dir = scratch("one-shot");
  std::filesystem::copy_file(scene(), dir + "/my photo.JPG");
  std::string out;
  ASSERT_EQ(run("--mmproj " + mmproj() + " --verbose 'what is in " + scene() + "?'", out), 0) << out;
  EXPECT_NE(out.find("Added image '" + scene() + "'"), std::string::npos) << out;
  auto [rows, cached] = prompt_count(out);
  EXPECT_GT(rows, 258) << out;  // <start_of_image> (as text here) + 256 soft + <end_of_image>, and the turn
  EXPECT_LT(rows, 258 + 60) << out;
  EXPECT_EQ(cached, 0);
  EXPECT_NE(out.find("eval count:           8 token(s)"), std::string::npos) << out;
  // The same image via --image and the same remaining text: the same prompt, so the same answer.
  const size_t end = out.find("load duration:");
  std::string out2;
  ASSERT_EQ(run("--mmproj " + mmproj() + " --verbose --image " + scene() + " 'what is in?'", out2), 0) << out2;
  EXPECT_EQ(prompt_count(out2).first, rows) << out2;
  const std::string answer = out.substr(out.find('\n', out.find("Added image")) + 1, end - out.find('\n', out.find("Added image")) - 1);
  EXPECT_NE(out2.find(answer), std::string::npos) << "one-shot:\n" << out << "\n--image:\n" << out2;
  // Escaped spaces and quotes, two images in one prompt, and a case-insensitive extension.
  ASSERT_EQ(run("--mmproj " + mmproj() + " --verbose 'compare " + dir + "/my\\ photo.JPG with \"" + wide() + "\"'", out), 0) << out;
  EXPECT_NE(out.find("Added image '" + dir + "/my photo.JPG'"), std::string::npos) << out;
  EXPECT_NE(out.find("Added image '" + wide() + "'"), std::string::npos) << out;
  EXPECT_GT(prompt_count(out).first, 2 * 258) << out;
}

// Ollama leaves a path to no file in the text: so does g3n, with or without a projector.
TEST(CliRunImage, MissingFileStaysInThePrompt) {
  std::string out, plain;
  ASSERT_EQ(run("--mmproj " + mmproj() + " --verbose 'what is in /nonexistent/photo.jpg?'", out), 0) << out;
  EXPECT_EQ(out.find("Added image"), std::string::npos) << out;
  const int rows = prompt_count(out).first;
  EXPECT_GT(rows, 0) << out;
  EXPECT_LT(rows, 60) << out;  // text only
  // The path is in the text: the same rows as without --mmproj, where nothing is looked for.
  ASSERT_EQ(run("--verbose 'what is in /nonexistent/photo.jpg?'", plain), 0) << plain;
  EXPECT_EQ(prompt_count(plain).first, rows) << plain;
  ASSERT_EQ(run("--verbose 'what is in?'", plain), 0) << plain;
  EXPECT_LT(prompt_count(plain).first, rows) << plain;
}

TEST(CliRunImage, ModelWithoutProjectorRefusesAnImagePath) {
  std::string out;
  EXPECT_EQ(run("'what is in " + scene() + "?'", out), 1);
  EXPECT_NE(out.find("has no vision projector"), std::string::npos) << out;
  EXPECT_NE(out.find("g3n create NAME --from MODEL --mmproj FILE"), std::string::npos) << out;
}

// A store model made with `g3n create NAME --from m.gguf --mmproj p.gguf` reads images without --mmproj;
// --mmproj still overrides it, and a projector of another width is refused.
TEST(CliRunImage, StoreModelUsesItsProjectorLayer) {
  const std::string dir = scratch("store");
  const std::string env = "G3N_MODELS=" + dir + "/g3n OLLAMA_MODELS=" + dir + "/ollama ";
  int st = -1;
  const std::string created = run_capture(env + kG3n + " create seeing --from " + text_model() + " --mmproj " + mmproj() + " 2>&1", st);
  ASSERT_EQ(exit_code(st), 0) << created;
  std::string out;
  ASSERT_EQ(run_model("seeing", "--verbose 'what is in " + scene() + "?'", out, env), 0) << out;
  EXPECT_NE(out.find("Added image '" + scene() + "'"), std::string::npos) << out;
  const int rows = prompt_count(out).first;
  EXPECT_GT(rows, 258) << out;
  ASSERT_EQ(run_model("seeing", "--verbose --image " + scene() + " 'what is in?'", out, env), 0) << out;
  EXPECT_EQ(prompt_count(out).first, rows) << out;
  // --mmproj FILE instead of the layer: a projector for a 128-wide model does not fit this one (256).
  test::write_narrow_projector(mmproj(), dir + "/narrow.gguf", 128);
  EXPECT_EQ(run_model("seeing", "--mmproj " + dir + "/narrow.gguf hi", out, env), 1);
  EXPECT_NE(out.find("text width is 128"), std::string::npos) << out;
  EXPECT_NE(out.find("embedding width is 256"), std::string::npos) << out;
  EXPECT_NE(out.find(dir + "/narrow.gguf"), std::string::npos) << out;
  // A 256-wide projector of other weights overrides the layer: same rows, other vectors.
  test::write_narrow_projector(mmproj(), dir + "/other.gguf", 256);
  ASSERT_EQ(run_model("seeing", "--mmproj " + dir + "/other.gguf --verbose 'what is in " + scene() + "?'", out, env), 0) << out;
  EXPECT_EQ(prompt_count(out).first, rows) << out;
  // A model made without a projector refuses images.
  run_capture(env + kG3n + " create plain --from " + text_model() + " 2>&1", st);
  ASSERT_EQ(exit_code(st), 0);
  EXPECT_EQ(run_model("plain", "'what is in " + scene() + "?'", out, env), 1);
  EXPECT_NE(out.find("model 'plain' has no vision projector"), std::string::npos) << out;
}

// The chat: --image for the first message, a typed path in a later one, a text turn; the conversation
// keeps its images, and each turn reuses the rows of the ones before (the "cached" count).
TEST(CliRunImage, ChatWithImageTurnsThroughPty) {
  PtySession s({kG3n, "run", text_model(), "--mmproj", mmproj(), "--image", scene(), "--threads", "2", "--verbose", "-p",
                "temperature=0", "-p", "num_predict=6", "--num-ctx", "2048"},
               scratch("chat"));
  ASSERT_TRUE(s.wait_for("Added image '" + scene() + "'")) << s.output();
  ASSERT_TRUE(s.wait_for(">>> ")) << s.output();
  size_t mark = s.output().size();
  s.send("Describe it.\r");
  ASSERT_TRUE(s.wait_for("eval rate:", mark)) << s.output().substr(mark);
  ASSERT_TRUE(s.wait_for(">>> ", s.output().find("eval rate:", mark))) << s.output().substr(mark);
  const auto [rows1, cached1] = prompt_count(s.output(), mark);
  EXPECT_GT(rows1, 258);
  EXPECT_EQ(cached1, 0);
  // A second image by its path in the message.
  mark = s.output().size();
  s.send("and " + wide() + "?\r");
  ASSERT_TRUE(s.wait_for("Added image '" + wide() + "'", mark)) << s.output().substr(mark);
  ASSERT_TRUE(s.wait_for("eval rate:", mark)) << s.output().substr(mark);
  ASSERT_TRUE(s.wait_for(">>> ", s.output().find("eval rate:", mark))) << s.output().substr(mark);
  const auto [rows2, cached2] = prompt_count(s.output(), mark);
  EXPECT_GT(rows2, rows1 + 258);  // both images are in the prompt
  EXPECT_GE(cached2, rows1);      // the first turn, its image included, is not evaluated again
  EXPECT_LT(rows2 - cached2, 258 + 60);  // the answer, the turn marks, <start_of_image> spelt as text here
  // A text turn: only its own rows (and the previous answer's tail) are evaluated.
  mark = s.output().size();
  s.send("Thanks.\r");
  ASSERT_TRUE(s.wait_for("eval rate:", mark)) << s.output().substr(mark);
  ASSERT_TRUE(s.wait_for(">>> ", s.output().find("eval rate:", mark))) << s.output().substr(mark);
  const auto [rows3, cached3] = prompt_count(s.output(), mark);
  EXPECT_GT(rows3, rows2);
  EXPECT_GE(cached3, rows2);
  EXPECT_LT(rows3 - cached3, 40);
  // /save writes each message's images; /show info names the projector.
  const std::string saved = std::string(G3N_BINARY_DIR) + "/cli-run-image/chat/saved.json";
  mark = s.output().size();
  s.send("/save " + saved + "\r");
  ASSERT_TRUE(s.wait_for("Saved the conversation", mark)) << s.output().substr(mark);
  const nlohmann::json j = test::read_json(saved);
  ASSERT_EQ(j["messages"].size(), 6u) << j.dump();
  EXPECT_EQ(j["messages"][0]["images"], nlohmann::json::array({scene()}));
  EXPECT_EQ(j["messages"][0]["content"], "Describe it.");
  EXPECT_EQ(j["messages"][2]["images"], nlohmann::json::array({wide()}));
  EXPECT_EQ(j["messages"][2]["content"], "and?");
  EXPECT_FALSE(j["messages"][4].contains("images"));
  mark = s.output().size();
  s.send("/show info\r");
  ASSERT_TRUE(s.wait_for("projector           " + mmproj(), mark)) << s.output().substr(mark);
  // A missing file stays in the text; /clear forgets the images.
  mark = s.output().size();
  s.send("/clear\r");
  ASSERT_TRUE(s.wait_for("Cleared session context", mark)) << s.output().substr(mark);
  mark = s.output().size();
  s.send("what is /nonexistent/a.png\r");
  ASSERT_TRUE(s.wait_for("eval rate:", mark)) << s.output().substr(mark);
  EXPECT_EQ(s.output().find("Added image", mark), std::string::npos) << s.output().substr(mark);
  EXPECT_LT(prompt_count(s.output(), mark).first, 60) << s.output().substr(mark);
  ASSERT_TRUE(s.wait_for(">>> ", s.output().find("eval rate:", mark))) << s.output().substr(mark);
  s.send("/bye\r");
  EXPECT_EQ(s.wait_exit(), 0);
}

// A chat that outgrows num_ctx drops its oldest exchange with its image; the rest keeps theirs.
TEST(CliRunImage, ChatDropsOldTurnsWithTheirImages) {
  PtySession s({kG3n, "run", text_model(), "--mmproj", mmproj(), "--threads", "2", "--verbose", "-p", "temperature=0", "-p",
                "num_predict=6", "--num-ctx", "860"},
               scratch("chat-drop"));
  ASSERT_TRUE(s.wait_for(">>> ")) << s.output();
  int rows[3] = {0, 0, 0};
  const std::string messages[3] = {"one " + scene(), "two " + wide(), "three " + scene()};
  for (int i = 0; i < 3; ++i) {
    const size_t mark = s.output().size();
    s.send(messages[i] + "\r");
    ASSERT_TRUE(s.wait_for("eval rate:", mark)) << s.output().substr(mark);
    ASSERT_TRUE(s.wait_for(">>> ", s.output().find("eval rate:", mark))) << s.output().substr(mark);
    rows[i] = prompt_count(s.output(), mark).first;
    EXPECT_EQ(s.output().find("(dropped", mark) != std::string::npos, i == 2) << s.output().substr(mark);
  }
  EXPECT_GT(rows[1], 2 * 258);  // two images
  EXPECT_LT(rows[2], 860 * 3 / 4);  // within the policy's budget
  EXPECT_GT(rows[2], 2 * 258);  // the second and third images; the first went with its exchange
  std::printf("[chat drop] prompt rows per turn: %d, %d, %d\n", rows[0], rows[1], rows[2]);
  EXPECT_NE(s.output().find("(dropped the 2 oldest messages to fit the context of 860 tokens)"), std::string::npos) << s.output();
  s.send("/bye\r");
  EXPECT_EQ(s.wait_exit(), 0);
}

// Without a projector an image in the chat is an error line; the chat goes on.
TEST(CliRunImage, ChatWithoutProjectorSaysSoAndGoesOn) {
  PtySession s({kG3n, "run", text_model(), "--threads", "2", "--verbose", "-p", "num_predict=4"}, scratch("chat-plain"));
  ASSERT_TRUE(s.wait_for(">>> ")) << s.output();
  size_t mark = s.output().size();
  s.send("what is in " + scene() + "?\r");
  ASSERT_TRUE(s.wait_for("has no vision projector", mark)) << s.output().substr(mark);
  ASSERT_TRUE(s.wait_for(">>> ", mark)) << s.output().substr(mark);
  EXPECT_EQ(s.output().find("eval rate:", mark), std::string::npos) << s.output().substr(mark);
  mark = s.output().size();
  s.send("hello\r");
  ASSERT_TRUE(s.wait_for("eval rate:", mark)) << s.output().substr(mark);
  // The refused message was not kept: the prompt holds only this turn.
  EXPECT_LT(prompt_count(s.output(), mark).first, 20) << s.output().substr(mark);
  ASSERT_TRUE(s.wait_for(">>> ", s.output().find("eval rate:", mark))) << s.output().substr(mark);
  s.send("/bye\r");
  EXPECT_EQ(s.wait_exit(), 0);
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
  EXPECT_THROW(ImageEncoder(mmproj(), 2048, 1), std::runtime_error);
  EXPECT_NO_THROW(ImageEncoder(mmproj(), 256, 1));
}

}  // namespace
}  // namespace g3n
