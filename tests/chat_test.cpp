// Gemma turn format (docs/model.md §7.2). Expected strings follow Hugging Face's chat-template rules;
// expected token sequences are assembled from the golden ids of the fixtures (cases g372/g395/g044, the tiny model's "chat" prompt).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "chat/chat.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

using namespace g3n;
using chat::Conversation;
using chat::Message;
using chat::Role;
using Ids = std::vector<int32_t>;

namespace {

const std::string kFix = G3N_FIXTURES_DIR;

const Tokenizer& vocab() {
  static Tokenizer t = Tokenizer::from_gguf(GgufFile::open(kFix + "/gemma3-vocab/vocab.gguf"));
  return t;
}
const Tokenizer& tiny() {
  static Tokenizer t = Tokenizer::from_gguf(GgufFile::open(kFix + "/gemma3n-tiny/models/gemma3n-tiny-f16.gguf"));
  return t;
}

Ids cat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Ids encode_chat(const Tokenizer& t, const std::string& text) { return t.encode(text, t.add_bos_default(), true); }

// Golden pieces of the real vocabulary.
const Ids kBos = {2};
const Ids kUserHeader = {105, 2364, 107};        // "<start_of_turn>user\n" (g372)
const Ids kEndTurn = {106, 107};                 // "<end_of_turn>\n" (g395)
const Ids kHelpful = {3048, 659, 11045, 236761}; // "You are helpful." (g395)
const Ids kHello = {9259, 1902};                 // "Hello world" (g044)
const Ids kBlank = {108};                        // "\n\n" (ids 107.. are runs of "\n")
Ids model_header() { return {105, *vocab().find_token("model"), 107}; }

}  // namespace

TEST(ChatFormat, SpecExampleHf) {
  // A system turn folded into the first user turn, HF rules (BOS left to the tokenizer).
  std::vector<Message> m = {{Role::System, "You are terse."},
                            {Role::User, "Hi"},
                            {Role::Model, "Hello!"},
                            {Role::User, "2+2?"}};
  EXPECT_EQ(chat::format_gemma(m, true),
            "<start_of_turn>user\nYou are terse.\n\nHi<end_of_turn>\n"
            "<start_of_turn>model\nHello!<end_of_turn>\n"
            "<start_of_turn>user\n2+2?<end_of_turn>\n"
            "<start_of_turn>model\n");
  EXPECT_EQ(chat::format_gemma(m, false),
            "<start_of_turn>user\nYou are terse.\n\nHi<end_of_turn>\n"
            "<start_of_turn>model\nHello!<end_of_turn>\n"
            "<start_of_turn>user\n2+2?<end_of_turn>\n");
}

TEST(ChatFormat, TrimsContentNotSystem) {
  // Content is stripped like Python's str.strip() (Unicode spaces too); the system text and its "\n\n"
  // are not.
  std::vector<Message> m = {{Role::System, " sys "}, {Role::User, "\n\t  Hi there \xE3\x80\x80\xC2\xA0\n"}};
  EXPECT_EQ(chat::format_gemma(m, true), "<start_of_turn>user\n sys \n\nHi there<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(chat::trim("  \xE2\x80\xA8x y\x0b\x1c"), "x y");
  EXPECT_EQ(chat::trim(" \n "), "");
  EXPECT_EQ(chat::trim("\xE2\x96\x81x\xE2\x96\x81"), "\xE2\x96\x81x\xE2\x96\x81");  // U+2581 is not a space
}

TEST(ChatFormat, RoleOrderEnforced) {
  EXPECT_THROW(chat::format_gemma(std::vector<Message>{{Role::Model, "x"}}, true), chat::ChatFormatError);
  EXPECT_THROW(chat::format_gemma(std::vector<Message>{{Role::User, "a"}, {Role::User, "b"}}, true),
               chat::ChatFormatError);
  EXPECT_THROW(chat::format_gemma(std::vector<Message>{{Role::User, "a"}, {Role::System, "b"}}, true),
               chat::ChatFormatError);
  EXPECT_EQ(chat::format_gemma(std::vector<Message>{}, true), "<start_of_turn>model\n");
  EXPECT_EQ(chat::parse_role("assistant"), Role::Model);
  EXPECT_EQ(chat::parse_role("model"), Role::Model);
  EXPECT_FALSE(chat::parse_role("tool"));
  Conversation c;
  EXPECT_THROW(c.add_model("x"), chat::ChatFormatError);
  c.add_user("a");
  EXPECT_THROW(c.add_user("b"), chat::ChatFormatError);
}

TEST(ChatTokens, SystemAndUser) {
  Conversation c("You are helpful.");
  c.add_user("Hello world");
  EXPECT_EQ(encode_chat(vocab(), c.render(true)),
            cat({kBos, kUserHeader, kHelpful, kBlank, kHello, kEndTurn, model_header()}));
}

TEST(ChatTokens, TrimmedContentSameTokens) {
  Conversation c("You are helpful.");
  c.add_user("  \n Hello world \t\n\n");
  EXPECT_EQ(encode_chat(vocab(), c.render(true)),
            cat({kBos, kUserHeader, kHelpful, kBlank, kHello, kEndTurn, model_header()}));
}

TEST(ChatTokens, MultiTurn) {
  Conversation c;
  c.add_user("Hello world");
  c.add_model("You are helpful.");
  c.add_user("Hello world");
  EXPECT_EQ(encode_chat(vocab(), c.render(true)),
            cat({kBos, kUserHeader, kHello, kEndTurn, model_header(), kHelpful, kEndTurn, kUserHeader, kHello,
                 kEndTurn, model_header()}));
}

TEST(ChatTokens, TinyModelChatPrompt) {
  // The tiny fixture's "chat" prompt: BOS + the single-user-turn rendering with a generation prompt.
  std::ifstream in(kFix + "/gemma3n-tiny/prompts.json");
  auto j = nlohmann::json::parse(in);
  Ids want;
  for (const auto& p : j["prompts"])
    if (p["name"] == "chat") want = p["tokens"].get<Ids>();
  ASSERT_EQ(want.size(), 18u);
  Conversation c;
  c.add_user("What is the capital of France?");
  EXPECT_EQ(encode_chat(tiny(), c.render(true)), want);
}

// chat::fit_to_context, the one prompt-fitting policy of g3n run and g3n serve.
// Per pair ("Hello world" / "You are helpful."): user turn 3+2+2 = 7, model turn 3+4+2 = 9 tokens.
// Fixed part: BOS 1 + last user turn 7 + generation prompt 3 = 11; three pairs before it: 59.
Conversation three_pairs_and_a_question() {
  Conversation c;
  for (int i = 0; i < 3; ++i) {
    c.add_user("Hello world");
    c.add_model("You are helpful.");
  }
  c.add_user("Hello world");
  return c;
}

TEST(ChatFit, APromptThatFitsIsLeftAlone) {
  const Conversation c = three_pairs_and_a_question();
  ASSERT_EQ(encode_chat(vocab(), c.render(true)).size(), 11u + 3 * 16);
  const auto fit = chat::fit_to_context(c.messages(), vocab(), 60);  // 59 tokens leave room for one more
  EXPECT_EQ(fit.dropped_turns, 0u);
  EXPECT_EQ(fit.dropped_tokens, 0u);
  EXPECT_EQ(fit.tokens, encode_chat(vocab(), c.render(true)));
  EXPECT_EQ(chat::prompt_budget(59), 45);  // a quarter is left for the answer
  EXPECT_EQ(chat::prompt_budget(8192), 8192 - 1024);
}

TEST(ChatFit, DropsOldestPairsDownToTheBudget) {
  Conversation c = three_pairs_and_a_question();
  auto fit = chat::fit_to_context(c.messages(), vocab(), 59);  // does not fit: cut to 45 -> one pair goes
  EXPECT_EQ(fit.dropped_turns, 2u);
  EXPECT_EQ(fit.tokens.size(), 43u);
  fit = chat::fit_to_context(c.messages(), vocab(), 40);  // budget 30: 59 -> 43 -> 27
  EXPECT_EQ(fit.dropped_turns, 4u);
  EXPECT_EQ(fit.dropped_tokens, 0u);
  c.drop_oldest(fit.dropped_turns);
  EXPECT_EQ(c.turns().front().role, Role::User);
  EXPECT_EQ(fit.tokens, encode_chat(vocab(), c.render(true)));
}

TEST(ChatFit, CutsTokensOnlyWhenAllowed) {
  const Conversation c = three_pairs_and_a_question();
  // Every pair dropped leaves 11 tokens: over 8, so the oldest tokens after BOS go (budget 6).
  auto fit = chat::fit_to_context(c.messages(), vocab(), 8);
  EXPECT_EQ(fit.dropped_turns, 6u);
  EXPECT_EQ(fit.dropped_tokens, 5u);
  ASSERT_EQ(fit.tokens.size(), 6u);
  EXPECT_EQ(fit.tokens[0], kBos[0]);
  EXPECT_THROW(chat::fit_to_context(c.messages(), vocab(), 8, {.drop_turns = true, .cut_tokens = false}), chat::ContextOverflow);
  // Nothing may be dropped: the error says how long the prompt is.
  try {
    chat::fit_to_context(c.messages(), vocab(), 59, {.drop_turns = false, .cut_tokens = false});
    ADD_FAILURE() << "no ContextOverflow";
  } catch (const chat::ContextOverflow& e) {
    EXPECT_EQ(e.tokens, 59u);
    EXPECT_EQ(e.n_ctx, 59);
  }
  // Tokens only (raw prompts): cut to the budget, BOS kept.
  fit = chat::fit_to_context(Ids{2, 10, 11, 12, 13, 14, 15, 16}, 8);
  EXPECT_EQ(fit.tokens, (Ids{2, 12, 13, 14, 15, 16}));
  EXPECT_EQ(fit.dropped_tokens, 2u);
}

TEST(ChatFit, SystemPromptAndContinuedTurnSurvive) {
  Conversation c("You are helpful.");
  c.add_user("Hello world");
  c.add_model("Hello world");
  c.add_user("Hello world");
  c.add_model("Hello world");
  // Ends on a model turn: it is continued (left open), and the last exchange stays with the system text.
  const auto fit = chat::fit_to_context(c.messages(), vocab(), 20, {.drop_turns = true, .cut_tokens = false});
  EXPECT_EQ(fit.dropped_turns, 2u);
  EXPECT_EQ(fit.tokens, cat({kBos, kUserHeader, kHelpful, kBlank, kHello, kEndTurn, model_header(), kHello}));
}

TEST(ChatTemplate, ReadForDisplay) {
  GgufWriter w;
  w.set_string("general.architecture", "gemma3n");
  w.set_string("tokenizer.chat_template", "{{ bos_token }}{% for m in messages %}...{% endfor %}");
  auto bytes = w.to_bytes();
  auto f = GgufFile::from_memory(bytes.data(), bytes.size());
  EXPECT_EQ(chat::chat_template(f), "{{ bos_token }}{% for m in messages %}...{% endfor %}");
  auto v = GgufFile::open(kFix + "/gemma3-vocab/vocab.gguf");
  EXPECT_FALSE(chat::chat_template(v));
}
