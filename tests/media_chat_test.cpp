// A conversation with images across turns (media/media_chat.h): the exact rows with the real Gemma
// vocabulary (two images in two messages), the tiny vocabulary's text <start_of_image>, the fitting policy
// with image rows, and a Session reusing the first turn's rows (image included) on the second turn.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "chat/chat.h"
#include "chat/image_prompt.h"
#include "gguf/gguf.h"
#include "golden_util.h"
#include "media/media_chat.h"
#include "media/image_encoder.h"
#include "model/model.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace g3n {
namespace {

using chat::Role;

Tokenizer vocab(const std::string& rel) { return Tokenizer::from_gguf(GgufFile::open(test::fixtures_dir() + "/" + rel)); }

constexpr int64_t kWidth = 8;

// A stand-in for an encoded image: 256 soft rows whose first float is base + row.
std::shared_ptr<const EncodedImage> fake_image(float base) {
  auto im = std::make_shared<EncodedImage>();
  im->width = kWidth;
  im->soft.resize(256 * kWidth);
  for (size_t i = 0; i < im->soft.size(); ++i) im->soft[i] = base + static_cast<float>(i / kWidth);
  return im;
}
const std::vector<float> kEndRow(kWidth, -1.0f);

std::vector<int32_t> ids(const InputRows& rows) { return {rows.tokens().begin(), rows.tokens().end()}; }

TEST(ImageChat, TwoImagesInTwoMessagesRealVocabulary) {
  const Tokenizer tok = vocab("gemma3-vocab/vocab.gguf");
  ASSERT_EQ(tok.find_token("<start_of_image>"), 255999);
  const auto a = fake_image(1000.0f), b = fake_image(2000.0f);
  MediaConversation conv;
  conv.add_user("What is this?", {{"./a.jpg", a}});
  conv.add_model("A cat.");
  conv.add_user("  And this? ", {{"./b.png", b}});
  EXPECT_EQ(conv.image_count(), 2u);
  const std::vector<MediaChatMessage> msgs = conv.messages();
  EXPECT_EQ(render_media_chat(msgs),
            "<start_of_turn>user\n<image_soft_token>What is this?<end_of_turn>\n<start_of_turn>model\nA cat.<end_of_turn>\n"
            "<start_of_turn>user\n<image_soft_token>And this?<end_of_turn>\n<start_of_turn>model\n");
  const MediaChatPrompt p = media_chat_rows(tok, msgs, {kEndRow, {}}, 4096);
  EXPECT_EQ(p.dropped_turns, 0u);
  EXPECT_EQ(p.images, 2u);

  // HF tokenizes the expanded string whole; <end_of_turn> stands in for each soft block + <end_of_image>
  // (a special token splits the text the same way), then becomes 257 vector rows.
  const std::string expanded =
      "<start_of_turn>user\n\n\n<start_of_image><end_of_turn>\n\nWhat is this?<end_of_turn>\n<start_of_turn>model\nA cat.<end_of_turn>\n"
      "<start_of_turn>user\n\n\n<start_of_image><end_of_turn>\n\nAnd this?<end_of_turn>\n<start_of_turn>model\n";
  std::vector<int32_t> want;
  const std::vector<int32_t> whole = tok.encode(expanded, true, true);
  for (size_t i = 0; i < whole.size(); ++i) {
    if (whole[i] == *tok.eot() && i > 0 && whole[i - 1] == 255999) want.insert(want.end(), 257, kVectorRow);
    else want.push_back(whole[i]);
  }
  EXPECT_EQ(ids(p.rows), want);

  // The ids themselves (gemma3-vocab): <bos> <start_of_turn> user "\n\n\n" <start_of_image> [256 soft + eoi]
  // "\n\n" What is this ? <end_of_turn> "\n" <start_of_turn> model "\n" A cat . <end_of_turn> "\n"
  // <start_of_turn> user "\n\n\n" <start_of_image> [256 soft + eoi] "\n\n" And this ? <end_of_turn> "\n"
  // <start_of_turn> model "\n".
  std::vector<int32_t> pinned = {2, 105, 2364, 109, 255999};
  pinned.insert(pinned.end(), 257, kVectorRow);
  pinned.insert(pinned.end(), {108, 3689, 563, 672, 236881, 106, 107, 105, 4368, 107, 236776, 5866, 236761, 106, 107, 105, 2364, 109, 255999});
  pinned.insert(pinned.end(), 257, kVectorRow);
  pinned.insert(pinned.end(), {108, 3133, 672, 236881, 106, 107, 105, 4368, 107});
  EXPECT_EQ(ids(p.rows), pinned);
  const std::vector<int32_t> t = ids(p.rows);
  ASSERT_GT(t.size(), 2u * 257);
  EXPECT_EQ(t[0], 2);
  EXPECT_EQ(t[1], 105);
  EXPECT_EQ(tok.piece(t[2]), "user");
  EXPECT_EQ(tok.piece(t[3]), "\n\n\n");
  EXPECT_EQ(t[4], 255999);
  EXPECT_EQ(tok.piece(t[5 + 257]), "\n\n");
  EXPECT_EQ(tok.piece(t[5 + 258]), "What");
  // <end_of_image> (262144) and <image_soft_token> (262145) are never tokens: vectors stand for them.
  for (int32_t id : t) {
    EXPECT_NE(id, 262144);
    EXPECT_NE(id, 262145);
  }
  // Two blocks of 257 vector rows, each right after a <start_of_image>: a's soft rows then the end row,
  // then b's; the second <start_of_image> follows "user" "\n\n\n" of the second user turn.
  const RowsView v = p.rows.view();
  std::vector<size_t> starts;
  for (size_t i = 0; i < t.size(); ++i)
    if (t[i] == 255999) starts.push_back(i + 1);
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_EQ(tok.piece(t[starts[1] - 2]), "\n\n\n");
  EXPECT_EQ(tok.piece(t[starts[1] - 3]), "user");
  size_t vectors = 0;
  for (size_t i = 0; i < t.size(); ++i) vectors += p.rows.is_vector(i);
  EXPECT_EQ(vectors, 2u * 257);
  for (size_t k = 0; k < 2; ++k) {
    const float base = k == 0 ? 1000.0f : 2000.0f;
    for (size_t r = 0; r < 256; ++r) {
      ASSERT_TRUE(p.rows.is_vector(starts[k] + r));
      ASSERT_EQ(v.vector(starts[k] + r)[0], base + static_cast<float>(r));
    }
    ASSERT_TRUE(p.rows.is_vector(starts[k] + 256));
    EXPECT_EQ(v.vector(starts[k] + 256)[0], -1.0f);
    EXPECT_FALSE(p.rows.is_vector(starts[k] + 257));
  }
}

TEST(ImageChat, TwoImagesInOneMessageMatchTheChatLayout) {
  const Tokenizer tok = vocab("gemma3-vocab/vocab.gguf");
  const auto a = fake_image(0.0f), b = fake_image(500.0f);
  MediaConversation conv;
  conv.set_system("Be brief.");
  conv.add_user("Compare these.", {{"a", a}, {"b", b}});
  const MediaChatPrompt p = media_chat_rows(tok, conv.messages(), {kEndRow, {}}, 4096);
  const std::vector<chat::ImageRows> rows = {{a->soft, kEndRow, kWidth}, {b->soft, kEndRow, kWidth}};
  const std::string text = "<start_of_turn>user\nBe brief.\n\n<image_soft_token><image_soft_token>Compare these.<end_of_turn>\n<start_of_turn>model\n";
  EXPECT_EQ(render_media_chat(conv.messages()), text);
  EXPECT_EQ(ids(p.rows), ids(chat::layout_image_prompt(tok, text, rows)));
  EXPECT_EQ(p.rows.keys().size(), p.rows.size());
  EXPECT_TRUE(std::equal(p.rows.keys().begin(), p.rows.keys().end(), chat::layout_image_prompt(tok, text, rows).keys().begin()));
}

// The tiny fixture's vocabulary has no <start_of_image> piece: the string is tokenized as text.
TEST(ImageChat, TinyVocabularySpellsStartOfImageAsText) {
  const Tokenizer tok = vocab("gemma3n-tiny/models/gemma3n-tiny-q4_k_m.gguf");
  ASSERT_FALSE(tok.find_token("<start_of_image>"));
  MediaConversation conv;
  conv.add_user("hi", {{"a", fake_image(0.0f)}});
  const MediaChatPrompt p = media_chat_rows(tok, conv.messages(), {kEndRow, {}}, 4096);
  std::vector<int32_t> want = tok.encode("<start_of_turn>user\n\n\n<start_of_image>", true, true);
  want.insert(want.end(), 257, kVectorRow);
  const std::vector<int32_t> tail = tok.encode("\n\nhi<end_of_turn>\n<start_of_turn>model\n", false, true);
  want.insert(want.end(), tail.begin(), tail.end());
  EXPECT_EQ(ids(p.rows), want);
  std::string text;
  for (int32_t id : ids(p.rows))
    if (id != kVectorRow) text += tok.piece(id, true);
  EXPECT_NE(text.find("<start_of_image>"), std::string::npos) << text;
}

TEST(ImageChat, TextOnlyConversationIsTheTextPrompt) {
  const Tokenizer tok = vocab("gemma3-vocab/vocab.gguf");
  MediaConversation conv;
  conv.set_system("sys");
  conv.add_user("Hello");
  conv.add_model("Hi there.");
  conv.add_user("How are you?");
  std::vector<chat::Message> text;
  for (const auto& m : conv.messages()) text.push_back({m.role, m.text});
  const MediaChatPrompt p = media_chat_rows(tok, conv.messages(), {}, 4096);
  EXPECT_EQ(ids(p.rows), chat::fit_to_context(text, tok, 4096).tokens);
  EXPECT_FALSE(p.rows.has_vectors());
}

TEST(ImageChat, OldTurnsAreDroppedWithTheirImagesAndImagesAreNeverCut) {
  const Tokenizer tok = vocab("gemma3-vocab/vocab.gguf");
  const auto a = fake_image(0.0f), b = fake_image(500.0f);
  MediaConversation conv;
  conv.set_system("sys");
  conv.add_user("one", {{"a", a}});
  conv.add_model("ok");
  conv.add_user("two", {{"b", b}});
  conv.add_model("fine");
  conv.add_user("three");
  const size_t total = media_chat_rows(tok, conv.messages(), {kEndRow, {}}, 100000).rows.size();
  // A context of exactly that many rows does not fit (no room for an answer): the oldest pair goes, with a.
  const MediaChatPrompt p = media_chat_rows(tok, conv.messages(), {kEndRow, {}}, static_cast<int>(total));
  EXPECT_EQ(p.dropped_turns, 2u);
  EXPECT_EQ(p.images, 1u);
  MediaConversation kept = conv;
  kept.drop_oldest(p.dropped_turns);
  EXPECT_EQ(kept.image_count(), 1u);
  EXPECT_EQ(kept.messages()[0].text, "sys");
  EXPECT_EQ(kept.messages()[1].text, "two");
  EXPECT_EQ(ids(p.rows), ids(media_chat_rows(tok, kept.messages(), {kEndRow, {}}, 100000).rows));
  EXPECT_LE(p.rows.size(), static_cast<size_t>(chat::prompt_budget(static_cast<int>(total))));
  // One message whose two images alone exceed the context: an error, nothing cut.
  MediaConversation big;
  big.add_user("x", {{"a", a}, {"b", b}});
  EXPECT_THROW(media_chat_rows(tok, big.messages(), {kEndRow, {}}, 400), chat::ContextOverflow);
  // Older pairs go, but the last message with its two images still does not fit: an error.
  MediaConversation last;
  last.add_user("one", {{"a", a}});
  last.add_model("ok");
  last.add_user("two", {{"a", a}, {"b", b}});
  EXPECT_THROW(media_chat_rows(tok, last.messages(), {kEndRow, {}}, 450), chat::ContextOverflow);
  // With the pair gone it fits a context just above its own size (above the budget: the last turn stays).
  const std::vector<MediaChatMessage> all = last.messages();
  const size_t alone = media_chat_rows(tok, std::span(all).subspan(2), {kEndRow, {}}, 100000).rows.size();
  const MediaChatPrompt fitted = media_chat_rows(tok, last.messages(), {kEndRow, {}}, static_cast<int>(alone + 10));
  EXPECT_EQ(fitted.dropped_turns, 2u);
  EXPECT_EQ(fitted.images, 2u);
  EXPECT_EQ(fitted.rows.size(), alone);
}

TEST(ImageChat, ConversationRules) {
  MediaConversation conv;
  EXPECT_THROW(conv.add_model("no"), chat::ChatFormatError);
  conv.add_user("a", {{"x", fake_image(0.0f)}});
  EXPECT_THROW(conv.add_user("b"), chat::ChatFormatError);
  conv.add_model("c");
  EXPECT_EQ(conv.turns().size(), 2u);
  EXPECT_EQ(conv.messages().size(), 2u);  // no system message while it is empty
  conv.set_system("s");
  EXPECT_EQ(conv.messages().size(), 3u);
  EXPECT_EQ(conv.messages()[0].role, Role::System);
  conv.drop_oldest(2);
  EXPECT_EQ(conv.image_count(), 0u);
  EXPECT_TRUE(conv.turns().empty());
}

// The tiny text model with the tiny projector (both 256 wide): the second turn reuses every row of the
// first prompt, its image included, and evaluates only what follows; the image is encoded once.
TEST(ImageChat, SecondTurnEvaluatesOnlyTheNewRows) {
  const auto model = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf");
  const Tokenizer tok = Tokenizer::from_gguf(model->file());
  const std::string vdir = test::fixtures_dir() + "/gemma3n-vision-tiny";
  ImageEncoder enc(vdir + "/models/gemma3n-vision-tiny-mmproj-f16.gguf", model->config().n_embd, 2, /*fast=*/true);
  ContextParams cp;
  cp.n_ctx = 1024;
  cp.n_threads = 2;
  Session session(*model, tok, cp);
  SamplingParams sp;
  sp.temperature = 0;
  sp.num_predict = 6;

  MediaConversation conv;
  const auto img = enc.encode_file(vdir + "/inputs/scene_640x480.jpg");
  conv.add_user("Describe it.", {{"scene", img}});
  const MediaChatPrompt p1 = media_chat_rows(tok, conv.messages(), {enc.end_of_image_row(), {}}, cp.n_ctx);
  std::string out1;
  const GenerateStats st1 = session.generate(p1.rows, sp, [&](std::string_view t) { out1 += t; });
  EXPECT_EQ(st1.cached_tokens, 0);
  EXPECT_EQ(st1.prompt_tokens, static_cast<int>(p1.rows.size()));
  conv.add_model(out1);

  // The next turn: the same file is looked up, not encoded again (same object from the cache).
  EXPECT_EQ(enc.encode_file(vdir + "/inputs/scene_640x480.jpg"), img);
  conv.add_user("And the colours?");
  const MediaChatPrompt p2 = media_chat_rows(tok, conv.messages(), {enc.end_of_image_row(), {}}, cp.n_ctx);
  ASSERT_GT(p2.rows.size(), p1.rows.size());
  // The first prompt's rows are the start of the second's (the image's 256 soft + end row among them).
  ASSERT_TRUE(std::equal(p1.rows.keys().begin(), p1.rows.keys().end(), p2.rows.keys().begin()));
  // What the session holds after turn 1: the first prompt plus the answer's tokens as far as they were
  // evaluated (the last sampled token is not fed back when generation stops). It reuses their common
  // prefix with the new prompt, and nothing less.
  const std::vector<uint64_t> held = session.keys();
  ASSERT_GE(held.size(), p1.rows.size());
  ASSERT_LE(held.size(), p1.rows.size() + st1.generated.size());
  EXPECT_TRUE(std::equal(p1.rows.keys().begin(), p1.rows.keys().end(), held.begin()));
  for (size_t i = p1.rows.size(); i < held.size(); ++i) EXPECT_EQ(held[i], token_key(st1.generated[i - p1.rows.size()]));
  const size_t common = common_prefix(held, p2.rows.keys());
  std::string out2;
  const GenerateStats st2 = session.generate(p2.rows, sp, [&](std::string_view t) { out2 += t; });
  EXPECT_EQ(st2.prompt_tokens, static_cast<int>(p2.rows.size()));
  EXPECT_EQ(st2.cached_tokens, static_cast<int>(common));
  EXPECT_GE(st2.cached_tokens, static_cast<int>(p1.rows.size()));
  std::printf("[image chat] turn 1: %zu rows (%zu with vectors); turn 2: %zu rows, %d reused, %d evaluated\n", p1.rows.size(),
              static_cast<size_t>(std::count(p1.rows.tokens().begin(), p1.rows.tokens().end(), kVectorRow)), p2.rows.size(),
              st2.cached_tokens, st2.prompt_tokens - st2.cached_tokens);
}

}  // namespace
}  // namespace g3n

namespace g3n {
namespace {

// A stand-in for an encoded recording of n chunks: 188 rows each, first float base + chunk * 1000 + row.
std::shared_ptr<const EncodedAudio> fake_audio(float base, size_t n_chunks) {
  auto a = std::make_shared<EncodedAudio>();
  a->width = kWidth;
  for (size_t c = 0; c < n_chunks; ++c) {
    std::vector<float> rows(188 * kWidth);
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = base + static_cast<float>(c * 1000 + i / kWidth);
    a->chunks.push_back(std::move(rows));
  }
  return a;
}
const std::vector<float> kEndAudio(kWidth, -3.0f);

// A message with an image and a 2-chunk recording: the image, then each chunk as its own audio block, then
// the text; the rows equal chat::layout_media_prompt's over the same blocks, pinned to the real vocabulary.
TEST(MediaChat, AudioChunksFollowTheImagesOfTheirMessage) {
  const Tokenizer tok = vocab("gemma3-vocab/vocab.gguf");
  const auto img = fake_image(0.0f);
  const auto talk = fake_audio(50000.0f, 2);
  MediaConversation conv;
  conv.add_user("Transcribe it.", {{"a.png", img}}, {{"talk.wav", talk}});
  EXPECT_EQ(conv.audio_count(), 1u);
  const MediaChatPrompt p = media_chat_rows(tok, conv.messages(), {kEndRow, kEndAudio}, 4096);
  EXPECT_EQ(p.images, 1u);
  EXPECT_EQ(p.audio_blocks, 2u);
  const std::string text = render_media_chat(conv.messages());
  EXPECT_EQ(text, "<start_of_turn>user\n<image_soft_token><audio_soft_token><audio_soft_token>Transcribe it.<end_of_turn>\n"
                  "<start_of_turn>model\n");
  const std::vector<chat::MediaRows> blocks = {{chat::MediaKind::Image, img->soft, kEndRow, kWidth},
                                               {chat::MediaKind::Audio, talk->chunks[0], kEndAudio, kWidth},
                                               {chat::MediaKind::Audio, talk->chunks[1], kEndAudio, kWidth}};
  const InputRows want = chat::layout_media_prompt(tok, text, blocks);
  EXPECT_EQ(ids(p.rows), ids(want));
  const RowsView v = p.rows.view();
  size_t starts = 0;
  for (size_t i = 0; i + 1 < p.rows.size(); ++i)
    if (p.rows.tokens()[i] == 256000) {
      ++starts;
      EXPECT_EQ(v.vector(i + 1)[0], 50000.0f + static_cast<float>((starts - 1) * 1000)) << i;
      EXPECT_EQ(v.vector(i + 189)[0], -3.0f);
    }
  EXPECT_EQ(starts, 2u);
  EXPECT_EQ(p.rows.size(), 5u + 257 + 2 * (2 + 189) + tok.encode("\n\nTranscribe it.<end_of_turn>\n<start_of_turn>model\n", false, true).size());
}

// Turns with audio are dropped whole, as turns with images: the last turn's recording stays.
TEST(MediaChat, OldTurnsGoWithTheirAudio) {
  const Tokenizer tok = vocab("gemma3-vocab/vocab.gguf");
  MediaConversation conv;
  conv.add_user("one", {}, {{"a.wav", fake_audio(0.0f, 1)}});
  conv.add_model("ok");
  conv.add_user("two", {}, {{"b.wav", fake_audio(9000.0f, 1)}});
  const size_t total = media_chat_rows(tok, conv.messages(), {{}, kEndAudio}, 100000).rows.size();
  const MediaChatPrompt p = media_chat_rows(tok, conv.messages(), {{}, kEndAudio}, static_cast<int>(total - 50));
  EXPECT_EQ(p.dropped_turns, 2u);
  EXPECT_EQ(p.audio_blocks, 1u);
  EXPECT_THROW(media_chat_rows(tok, conv.messages(), {{}, kEndAudio}, 150), chat::ContextOverflow);
}

}  // namespace
}  // namespace g3n
