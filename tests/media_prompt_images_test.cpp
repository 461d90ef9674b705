// Image paths in typed prompts (media/prompt_images.h): which words are taken as images, what text is left.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "media/prompt_images.h"

namespace g3n {
namespace {

// A pretend file system holding these files, with home /home/u.
PromptWithImages extract(const std::string& prompt, const std::set<std::string>& files) {
  return extract_prompt_images(prompt, [&](const std::string& p) { return files.count(p) > 0; }, "/home/u");
}

std::vector<std::string> paths(const PromptWithImages& r) {
  std::vector<std::string> out;
  for (const auto& im : r.images) out.push_back(im.path);
  return out;
}

TEST(PromptImages, Extensions) {
  for (const char* p : {"a.jpg", "a.JPG", "x/a.jpeg", "a.Png", "a.gif", "a.bmp", "a.webp", "./b.c.WebP"})
    EXPECT_TRUE(has_image_extension(p)) << p;
  for (const char* p : {"a.svg", "a.jpgx", ".jpg", "dir.png/", "a.tiff", "jpg", "a.jp g", ""})
    EXPECT_FALSE(has_image_extension(p)) << p;
}

TEST(PromptImages, PathIsRemovedAndTextKept) {
  const auto r = extract("what is in ./photo.jpg?", {"./photo.jpg"});
  EXPECT_EQ(r.text, "what is in?");
  ASSERT_EQ(r.images.size(), 1u);
  EXPECT_EQ(r.images[0].written, "./photo.jpg");
  EXPECT_EQ(r.images[0].path, "./photo.jpg");
}

TEST(PromptImages, SeveralPathsInOrder) {
  const auto r = extract("compare /tmp/a.PNG and ../b.webp, then ./c.gif.", {"/tmp/a.PNG", "../b.webp", "./c.gif"});
  EXPECT_EQ(r.text, "compare and, then.");
  EXPECT_EQ(paths(r), (std::vector<std::string>{"/tmp/a.PNG", "../b.webp", "./c.gif"}));
  // The same file twice is two images, as written twice.
  const auto twice = extract("/a.jpg /a.jpg same?", {"/a.jpg"});
  EXPECT_EQ(twice.text, "same?");
  EXPECT_EQ(paths(twice), (std::vector<std::string>{"/a.jpg", "/a.jpg"}));
}

TEST(PromptImages, MissingFilesAndNonPathsStayInTheText) {
  const std::string p = "is ./missing.jpg here? see docs/x.png, a.jpg, ./notes.txt and /etc/x.svg";
  const auto r = extract(p, {"docs/x.png", "a.jpg", "./notes.txt", "/etc/x.svg"});
  EXPECT_TRUE(r.images.empty());
  EXPECT_EQ(r.text, p);
  // A path must start a word: "a/b.jpg" names no file here even though "/b.jpg" does.
  const auto inner = extract("look at a/b.jpg", {"/b.jpg"});
  EXPECT_TRUE(inner.images.empty());
  EXPECT_EQ(inner.text, "look at a/b.jpg");
}

TEST(PromptImages, HomeIsExpanded) {
  const auto r = extract("~/Pictures/cat.jpg describe", {"/home/u/Pictures/cat.jpg"});
  EXPECT_EQ(r.text, "describe");
  ASSERT_EQ(r.images.size(), 1u);
  EXPECT_EQ(r.images[0].written, "~/Pictures/cat.jpg");
  EXPECT_EQ(r.images[0].path, "/home/u/Pictures/cat.jpg");
  // No home: "~/" is taken literally.
  const auto none = extract_prompt_images("~/cat.jpg", [](const std::string& p) { return p == "~/cat.jpg"; }, "");
  EXPECT_EQ(paths(none), (std::vector<std::string>{"~/cat.jpg"}));
}

TEST(PromptImages, EscapedSpacesAndShellEscapes) {
  const auto r = extract("what about /tmp/my\\ holiday\\ \\(1\\).jpg please", {"/tmp/my holiday (1).jpg"});
  EXPECT_EQ(r.text, "what about please");
  ASSERT_EQ(r.images.size(), 1u);
  EXPECT_EQ(r.images[0].written, "/tmp/my holiday (1).jpg");
  const auto pct = extract("/tmp/my%20photo.png?", {"/tmp/my photo.png"});
  EXPECT_EQ(paths(pct), (std::vector<std::string>{"/tmp/my photo.png"}));
  EXPECT_EQ(pct.text, "?");
}

TEST(PromptImages, QuotedPaths) {
  const auto r = extract("describe '/tmp/my photo.jpg' and \"./other one.PNG\" now", {"/tmp/my photo.jpg", "./other one.PNG"});
  EXPECT_EQ(r.text, "describe and now");
  EXPECT_EQ(paths(r), (std::vector<std::string>{"/tmp/my photo.jpg", "./other one.PNG"}));
  // Quotes around a path that is not a file stay.
  const auto missing = extract("describe '/tmp/none.jpg'", {});
  EXPECT_EQ(missing.text, "describe '/tmp/none.jpg'");
  EXPECT_TRUE(missing.images.empty());
  // Escapes inside quotes (a terminal's drag and drop) are resolved when the literal name is no file.
  const auto esc = extract("'/tmp/a\\ b.jpg'", {"/tmp/a b.jpg"});
  EXPECT_EQ(paths(esc), (std::vector<std::string>{"/tmp/a b.jpg"}));
  EXPECT_EQ(esc.text, "");
}

TEST(PromptImages, PlainSpacesUpToTheFirstImageName) {
  // As in Ollama, an unquoted path runs over spaces up to the first image extension.
  const auto r = extract("see /tmp/my photo.jpg now", {"/tmp/my photo.jpg"});
  EXPECT_EQ(paths(r), (std::vector<std::string>{"/tmp/my photo.jpg"}));
  EXPECT_EQ(r.text, "see now");
  // The shortest candidate is the only one, and never across a line end.
  const auto two = extract("/a.jpg /b.jpg", {"/a.jpg", "/b.jpg", "/a.jpg /b.jpg"});
  EXPECT_EQ(paths(two), (std::vector<std::string>{"/a.jpg", "/b.jpg"}));
  const auto longer = extract("/a.jpg /b.jpg", {"/a.jpg /b.jpg"});
  EXPECT_TRUE(longer.images.empty());
  // A word start before an unrelated path does not swallow it: "/x" + " ./a.jpg" is no file, ./a.jpg is.
  const auto later = extract("a/b and /x then ./a.jpg", {"./a.jpg"});
  EXPECT_EQ(paths(later), (std::vector<std::string>{"./a.jpg"}));
  EXPECT_EQ(later.text, "a/b and /x then");
  const auto lines = extract("/tmp/x\ny.jpg", {"/tmp/x\ny.jpg"});
  EXPECT_TRUE(lines.images.empty());
}

TEST(PromptImages, ExtensionMustEndTheWord) {
  // "./a.jpgs" is not ./a.jpg; "./a.jpg_x" neither ('_' is a word character); "./a.jpg.bak" tries ./a.jpg.
  EXPECT_TRUE(extract("./a.jpgs", {"./a.jpg"}).images.empty());
  EXPECT_TRUE(extract("./a.jpg_x", {"./a.jpg"}).images.empty());
  const auto bak = extract("./a.jpg.bak", {"./a.jpg"});
  EXPECT_EQ(paths(bak), (std::vector<std::string>{"./a.jpg"}));
  EXPECT_EQ(bak.text, ".bak");
  const auto paren = extract("(see ./a.jpg)", {"./a.jpg"});
  EXPECT_EQ(paths(paren), (std::vector<std::string>{"./a.jpg"}));
  EXPECT_EQ(paren.text, "(see)");
}

TEST(PromptImages, MultiLineTextKeepsItsLines) {
  const auto r = extract("first line\n./a.png\nsecond line", {"./a.png"});
  EXPECT_EQ(r.text, "first line\n\nsecond line");
  EXPECT_EQ(paths(r), (std::vector<std::string>{"./a.png"}));
}

TEST(PromptImages, LongTextIsScannedQuickly) {
  // Many word starts that look like paths on one long line: one file probe each.
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "/x.png ";
  int probes = 0;
  const auto r = extract_prompt_images(text, [&](const std::string&) { return ++probes, false; }, "");
  EXPECT_EQ(r.text.size() + 1, text.size());  // nothing taken (trailing space trimmed)
  EXPECT_EQ(probes, 20000);  // one candidate per word start
}

TEST(PromptImages, RealFileSystem) {
  const std::string dir = std::string(G3N_BINARY_DIR) + "/prompt-images-test";
  std::filesystem::create_directories(dir);
  const std::string file = dir + "/pic one.JPEG";
  std::ofstream(file) << "x";
  const auto r = extract_prompt_images("look: '" + file + "' and " + dir + "/none.png");
  EXPECT_EQ(r.text, "look: and " + dir + "/none.png");
  ASSERT_EQ(r.images.size(), 1u);
  EXPECT_EQ(r.images[0].path, file);
  // A directory named like an image is no image.
  std::filesystem::create_directories(dir + "/folder.png");
  EXPECT_TRUE(extract_prompt_images(dir + "/folder.png").images.empty());
}

}  // namespace
}  // namespace g3n
