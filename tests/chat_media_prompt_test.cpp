// Audio (and mixed image + audio) prompt layout (chat/media_prompt.h): the exact row sequence of a spoken
// question in a chat turn against ids from the real vocabulary, the tiny vocabularies with and without a
// <start_of_audio> piece, and mismatches.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "chat/chat.h"
#include "chat/media_prompt.h"
#include "gguf/gguf.h"
#include "golden_util.h"
#include "tokenizer/tokenizer.h"

namespace g3n {
namespace {

Tokenizer vocab(const std::string& rel) { return Tokenizer::from_gguf(GgufFile::open(test::fixtures_dir() + "/" + rel)); }

struct FakeBlock {
  std::vector<float> soft, end;
  chat::MediaKind kind;
  FakeBlock(chat::MediaKind k, float base, int64_t n, int64_t w = 4) : soft(static_cast<size_t>(n * w)), end(static_cast<size_t>(w), -2.0f), kind(k) {
    for (size_t i = 0; i < soft.size(); ++i) soft[i] = base + static_cast<float>(i);
  }
  chat::MediaRows rows() const { return {kind, soft, end, 4}; }
};

// One clip of 188 rows after the question text, as HF's processor expands "<audio_soft_token>": the text
// ends in "\n\n", then <start_of_audio> (256000), 188 soft rows, the <end_of_audio> row, "\n\n" and the rest.
TEST(ChatMediaPrompt, AudioInAChatTurnRealVocabulary) {
  for (const std::string rel : {"gemma3-vocab/vocab.gguf", "gemma3-vocab/vocab-ollama.gguf"}) {
    SCOPED_TRACE(rel);
    const Tokenizer tok = vocab(rel);
    ASSERT_EQ(tok.find_token("<start_of_audio>"), 256000);
    const FakeBlock clip(chat::MediaKind::Audio, 0.0f, 188);
    const std::vector<chat::MediaRows> blocks = {clip.rows()};
    const std::vector<chat::Message> msgs = {{chat::Role::User, chat::media_then_text(0, 1, " Transcribe this. ")}};
    const std::string text = chat::render_prompt(msgs);
    EXPECT_EQ(text, "<start_of_turn>user\n<audio_soft_token>Transcribe this.<end_of_turn>\n<start_of_turn>model\n");
    const InputRows rows = chat::layout_media_prompt(tok, text, blocks);
    // <bos> <start_of_turn> user "\n\n\n" <start_of_audio> | 188 + 1 vectors | "\n\n" Transcribe this . <end_of_turn> ...
    std::vector<int32_t> want = {2, 105, 2364, 109, 256000};
    want.insert(want.end(), 189, kVectorRow);
    const std::vector<int32_t> tail = tok.encode("\n\nTranscribe this.<end_of_turn>\n<start_of_turn>model\n", false, true);
    want.insert(want.end(), tail.begin(), tail.end());
    EXPECT_EQ(std::vector<int32_t>(rows.tokens().begin(), rows.tokens().end()), want);
    EXPECT_EQ(tail.front(), 108);  // "\n\n" stays its own piece after the block
    const RowsView v = rows.view();
    for (size_t r = 0; r < 188; ++r) ASSERT_EQ(v.vector(5 + r)[0], clip.soft[r * 4]) << r;
    EXPECT_EQ(v.vector(5 + 188)[0], -2.0f);  // <end_of_audio> is the given vector, never the token 262272
    for (int32_t id : rows.tokens()) EXPECT_NE(id, 262272);
  }
}

// An image then two audio chunks (a clip over 30 s) in one message: each block in its placeholder's place.
TEST(ChatMediaPrompt, ImageAndTwoAudioChunksInOrder) {
  const Tokenizer tok = vocab("gemma3-vocab/vocab.gguf");
  const FakeBlock img(chat::MediaKind::Image, 0.0f, 256), c0(chat::MediaKind::Audio, 1e4f, 188), c1(chat::MediaKind::Audio, 2e4f, 188);
  const std::vector<chat::MediaRows> blocks = {img.rows(), c0.rows(), c1.rows()};
  const std::string text = chat::media_then_text(1, 2, "What do you see and hear?");
  EXPECT_EQ(chat::find_placeholders(text),
            (std::vector<chat::MediaKind>{chat::MediaKind::Image, chat::MediaKind::Audio, chat::MediaKind::Audio}));
  const InputRows rows = chat::layout_media_prompt(tok, text, blocks);
  // "\n\n" + "\n\n" between two blocks merge into one piece.
  const std::vector<int32_t> between = tok.encode("\n\n\n\n", false, true);
  ASSERT_EQ(between.size(), 1u);
  const int32_t quad = between[0];
  std::vector<int32_t> want = {2, 108, 255999};
  want.insert(want.end(), 257, kVectorRow);
  want.insert(want.end(), {quad, 256000});
  want.insert(want.end(), 189, kVectorRow);
  want.insert(want.end(), {quad, 256000});
  want.insert(want.end(), 189, kVectorRow);
  const std::vector<int32_t> tail = tok.encode("\n\nWhat do you see and hear?", false, true);
  want.insert(want.end(), tail.begin(), tail.end());
  EXPECT_EQ(std::vector<int32_t>(rows.tokens().begin(), rows.tokens().end()), want);
  const RowsView v = rows.view();
  EXPECT_EQ(v.vector(3)[0], 0.0f);
  EXPECT_EQ(v.vector(3 + 257 + 2)[0], 1e4f);
  EXPECT_EQ(v.vector(3 + 257 + 2 + 189 + 2)[0], 2e4f);
}

// gemma3n-tiny-ollama.gguf has <start_of_audio> (id 450) and uses it; the llama.cpp-style tiny file lacks the
// piece, so the string is tokenized as text before the block.
TEST(ChatMediaPrompt, TinyVocabulariesWithAndWithoutStartOfAudio) {
  const FakeBlock clip(chat::MediaKind::Audio, 0.0f, 188);
  const std::vector<chat::MediaRows> blocks = {clip.rows()};
  {
    const Tokenizer tok = vocab("gemma3n-tiny/models/gemma3n-tiny-ollama.gguf");
    ASSERT_EQ(tok.find_token("<start_of_audio>"), 450);
    const InputRows rows = chat::layout_media_prompt(tok, "x<audio_soft_token>y", blocks);
    std::vector<int32_t> want = tok.encode("x\n\n", true, true);
    want.push_back(450);
    want.insert(want.end(), 189, kVectorRow);
    const std::vector<int32_t> tail = tok.encode("\n\ny", false, true);
    want.insert(want.end(), tail.begin(), tail.end());
    EXPECT_EQ(std::vector<int32_t>(rows.tokens().begin(), rows.tokens().end()), want);
  }
  {
    const Tokenizer tok = vocab("gemma3n-tiny/models/gemma3n-tiny-q4_k_m.gguf");
    ASSERT_FALSE(tok.find_token("<start_of_audio>"));
    const InputRows rows = chat::layout_media_prompt(tok, "x<audio_soft_token>y", blocks);
    std::vector<int32_t> want = tok.encode("x\n\n<start_of_audio>", true, true);
    want.insert(want.end(), 189, kVectorRow);
    const std::vector<int32_t> tail = tok.encode("\n\ny", false, true);
    want.insert(want.end(), tail.begin(), tail.end());
    EXPECT_EQ(std::vector<int32_t>(rows.tokens().begin(), rows.tokens().end()), want);
  }
}

TEST(ChatMediaPrompt, KindOrCountMismatchIsAnError) {
  const Tokenizer tok = vocab("gemma3-vocab/vocab.gguf");
  const FakeBlock clip(chat::MediaKind::Audio, 0.0f, 188), img(chat::MediaKind::Image, 0.0f, 256);
  const std::vector<chat::MediaRows> audio = {clip.rows()}, image = {img.rows()};
  EXPECT_THROW(chat::layout_media_prompt(tok, "<image_soft_token>", audio), std::invalid_argument);
  EXPECT_THROW(chat::layout_media_prompt(tok, "<audio_soft_token>", image), std::invalid_argument);
  EXPECT_THROW(chat::layout_media_prompt(tok, "<audio_soft_token><audio_soft_token>", audio), std::invalid_argument);
  EXPECT_THROW(chat::layout_media_prompt(tok, "none", audio), std::invalid_argument);
  EXPECT_NO_THROW(chat::layout_media_prompt(tok, "<audio_soft_token>", audio));
}

}  // namespace
}  // namespace g3n
