// Image prompt layout (chat/image_prompt.h) with the real Gemma vocabulary: the exact rows of a chat turn
// holding two images, checked against tokenizing the expanded string whole.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "chat/chat.h"
#include "chat/image_prompt.h"
#include "gguf/gguf.h"
#include "golden_util.h"
#include "tokenizer/tokenizer.h"

namespace g3n {
namespace {

Tokenizer vocab(const std::string& rel) { return Tokenizer::from_gguf(GgufFile::open(test::fixtures_dir() + "/" + rel)); }

struct FakeImage {
  std::vector<float> soft, end;
  explicit FakeImage(float base, int64_t n = 256, int64_t w = 8) : soft(static_cast<size_t>(n * w)), end(static_cast<size_t>(w), -1.0f) {
    for (size_t i = 0; i < soft.size(); ++i) soft[i] = base + static_cast<float>(i);
  }
  chat::ImageRows rows() const { return {soft, end, 8}; }
};

TEST(ChatImagePrompt, TwoImagesInAChatTurnRealVocabulary) {
  for (const std::string rel : {"gemma3-vocab/vocab.gguf", "gemma3-vocab/vocab-ollama.gguf"}) {
    SCOPED_TRACE(rel);
    const Tokenizer tok = vocab(rel);
    ASSERT_EQ(tok.find_token("<start_of_image>"), 255999);
    const FakeImage a(0.0f), b(10000.0f);
    const std::vector<chat::ImageRows> images = {a.rows(), b.rows()};
    const std::vector<chat::Message> msgs = {{chat::Role::User, chat::images_then_text(2, "  Compare these.  ")}};
    const std::string text = chat::render_prompt(msgs);
    EXPECT_EQ(text, "<start_of_turn>user\n<image_soft_token><image_soft_token>Compare these.<end_of_turn>\n<start_of_turn>model\n");
    const InputRows rows = chat::layout_image_prompt(tok, text, images);

    // HF: the placeholders expand to "\n\n<start_of_image>" + soft×256 + "<end_of_image>\n\n" and the whole string
    // is tokenized. <end_of_turn> stands in for the soft block + eoi (a special token splits text the same way).
    const std::string expanded = "<start_of_turn>user\n\n\n<start_of_image><end_of_turn>\n\n\n\n<start_of_image><end_of_turn>\n\nCompare these.<end_of_turn>\n<start_of_turn>model\n";
    const std::vector<int32_t> whole = tok.encode(expanded, true, true);
    std::vector<int32_t> want;
    const int32_t eot = *tok.eot();
    int blocks = 0;
    for (size_t i = 0; i < whole.size(); ++i) {
      if (whole[i] == eot && i > 0 && whole[i - 1] == 255999) {
        want.insert(want.end(), 257, kVectorRow);
        ++blocks;
      } else {
        want.push_back(whole[i]);
      }
    }
    ASSERT_EQ(blocks, 2);
    EXPECT_EQ(std::vector<int32_t>(rows.tokens().begin(), rows.tokens().end()), want);
    // Pinned ids: BOS, <start_of_turn>, "user", then the "\n\n\n" piece and <start_of_image>.
    ASSERT_GE(rows.size(), 5u);
    EXPECT_EQ(rows.tokens()[0], 2);
    EXPECT_EQ(rows.tokens()[1], 105);
    EXPECT_EQ(tok.piece(rows.tokens()[3]), "\n\n\n");
    EXPECT_EQ(rows.tokens()[4], 255999);
    // The vectors, in order: image a's 256 soft rows, its eoi row, ... image b's.
    const RowsView v = rows.view();
    ASSERT_EQ(v.width, 8);
    size_t k = 5;
    for (const FakeImage* im : {&a, &b}) {
      for (int t = 0; t < 256; ++t, ++k) {
        ASSERT_TRUE(rows.is_vector(k)) << k;
        EXPECT_EQ(v.vector(k)[0], im->soft[static_cast<size_t>(t) * 8]) << k;
      }
      ASSERT_TRUE(rows.is_vector(k));
      EXPECT_EQ(v.vector(k)[0], -1.0f);
      ++k;
      if (im == &a) {  // "\n\n" + "\n\n" between the images, then <start_of_image>
        EXPECT_EQ(tok.piece(rows.tokens()[k]), "\n\n\n\n");
        EXPECT_EQ(rows.tokens()[k + 1], 255999);
        k += 2;
      }
    }
    std::string rest;
    for (size_t i = k; i < rows.size(); ++i) rest += tok.piece(rows.tokens()[i], true);
    EXPECT_EQ(rest, "\n\nCompare these.<end_of_turn>\n<start_of_turn>model\n");
    EXPECT_EQ(rows.size(), want.size());
  }
}

// Two user messages with one image each, an answer between them: every image's block sits in its own
// message, rows pinned to the real vocabulary's ids.
TEST(ChatImagePrompt, ImagesInTwoMessagesRealVocabulary) {
  const Tokenizer tok = vocab("gemma3-vocab/vocab.gguf");
  const FakeImage a(0.0f), b(10000.0f);
  const std::vector<chat::ImageRows> images = {a.rows(), b.rows()};
  const std::vector<chat::Message> msgs = {{chat::Role::User, chat::images_then_text(1, "What is this?")},
                                           {chat::Role::Model, "A cat."},
                                           {chat::Role::User, chat::images_then_text(1, "And this?")}};
  const InputRows rows = chat::layout_image_prompt(tok, chat::render_prompt(msgs), images);
  // <bos> <start_of_turn> user "\n\n\n" <start_of_image> | a | "\n\n" What is this ? <end_of_turn> "\n"
  // <start_of_turn> model "\n" A cat . <end_of_turn> "\n" <start_of_turn> user "\n\n\n" <start_of_image> | b |
  // "\n\n" And this ? <end_of_turn> "\n" <start_of_turn> model "\n"
  std::vector<int32_t> want = {2, 105, 2364, 109, 255999};
  want.insert(want.end(), 257, kVectorRow);
  want.insert(want.end(), {108, 3689, 563, 672, 236881, 106, 107, 105, 4368, 107, 236776, 5866, 236761, 106, 107, 105, 2364, 109, 255999});
  want.insert(want.end(), 257, kVectorRow);
  want.insert(want.end(), {108, 3133, 672, 236881, 106, 107, 105, 4368, 107});
  EXPECT_EQ(std::vector<int32_t>(rows.tokens().begin(), rows.tokens().end()), want);
  EXPECT_EQ(tok.piece(108), "\n\n");
  EXPECT_EQ(tok.piece(109), "\n\n\n");
  // The vectors: a's soft rows and end row after the first <start_of_image>, b's after the second.
  const RowsView v = rows.view();
  for (const auto& [at, im] : {std::pair<size_t, const FakeImage*>{5, &a}, {5 + 257 + 19, &b}}) {
    for (size_t r = 0; r < 256; ++r) ASSERT_EQ(v.vector(at + r)[0], im->soft[r * 8]) << at + r;
    EXPECT_EQ(v.vector(at + 256)[0], -1.0f);
    EXPECT_EQ(rows.tokens()[at - 1], 255999);
  }
}

// The tiny fixture's vocabulary has no <start_of_image> piece: the string is tokenized as text.
TEST(ChatImagePrompt, VocabularyWithoutStartOfImageTokenizesItAsText) {
  const Tokenizer tok = vocab("gemma3n-tiny/models/gemma3n-tiny-q4_k_m.gguf");
  ASSERT_FALSE(tok.find_token("<start_of_image>"));
  const FakeImage a(0.0f);
  const std::vector<chat::ImageRows> images = {a.rows()};
  const InputRows rows = chat::layout_image_prompt(tok, "x<image_soft_token>y", images);
  std::vector<int32_t> want = tok.encode("x\n\n<start_of_image>", true, true);
  want.insert(want.end(), 257, kVectorRow);
  const std::vector<int32_t> tail = tok.encode("\n\ny", false, true);
  want.insert(want.end(), tail.begin(), tail.end());
  EXPECT_EQ(std::vector<int32_t>(rows.tokens().begin(), rows.tokens().end()), want);
}

TEST(ChatImagePrompt, CountOrWidthMismatchIsAnError) {
  const Tokenizer tok = vocab("gemma3-vocab/vocab.gguf");
  const FakeImage a(0.0f);
  const std::vector<chat::ImageRows> one = {a.rows()};
  EXPECT_THROW(chat::layout_image_prompt(tok, "no image here", one), std::invalid_argument);
  EXPECT_THROW(chat::layout_image_prompt(tok, "<image_soft_token><image_soft_token>", one), std::invalid_argument);
  const std::vector<chat::ImageRows> bad = {{a.soft, std::span<const float>(a.end).first(4), 8}};
  EXPECT_THROW(chat::layout_image_prompt(tok, "<image_soft_token>", bad), std::invalid_argument);
  EXPECT_EQ(chat::layout_image_prompt(tok, "plain", {}).tokens().size(), tok.encode("plain", true, true).size());
}

}  // namespace
}  // namespace g3n
