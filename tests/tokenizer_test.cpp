// Tokenizer against the golden ids of fixtures/gemma3-vocab (real Gemma vocabulary, both converters'
// typings) and fixtures/gemma3n-tiny/tokenizer (the tiny model's own vocabulary).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

using g3n::StreamingDetokenizer;
using g3n::Tokenizer;
using g3n::TokenType;
using nlohmann::json;

namespace {

const std::string kFix = G3N_FIXTURES_DIR;

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::vector<json> out;
  std::string line;
  // Split on '\n' only: some texts hold raw U+2028/U+0085.
  while (std::getline(in, line, '\n'))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

const Tokenizer& load(const std::string& rel) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[rel];
  if (!slot) {
    auto f = g3n::GgufFile::open(kFix + "/" + rel);
    slot = std::make_unique<Tokenizer>(Tokenizer::from_gguf(f));
  }
  return *slot;
}

const std::vector<json>& cases() {
  static std::vector<json> c = read_jsonl(kFix + "/gemma3-vocab/cases.jsonl");
  return c;
}

std::vector<int32_t> ids_of(const json& j) { return j.get<std::vector<int32_t>>(); }

std::string show(const std::vector<int32_t>& v) { return json(v).dump(); }

// Expected ids: llama.cpp's answer (the README's rule for the one known disagreement, g370).
std::vector<int32_t> expected(const json& c, bool parse_special) {
  if (!parse_special && c.contains("ids_no_parse_special")) return ids_of(c["ids_no_parse_special"]);
  if (c.contains("llamacpp_ids")) return ids_of(c["llamacpp_ids"]);
  return ids_of(c["ids"]);
}

void run_cases(const Tokenizer& tok, bool parse_special) {
  const auto& cs = cases();
  ASSERT_EQ(cs.size(), 364u);
  int pass = 0, fail = 0;
  for (const json& c : cs) {
    const std::string text = c["text"];
    const auto want = expected(c, parse_special);
    const auto got = tok.encode(text, false, parse_special);
    if (got == want) {
      ++pass;
    } else if (++fail <= 5) {
      ADD_FAILURE() << c["id"] << " parse_special=" << parse_special << "\n want " << show(want)
                    << "\n got  " << show(got);
    }
  }
  EXPECT_EQ(pass, 364) << "passing cases";
}

}  // namespace

TEST(TokenizerVocab, LlamaCppTypingMetadata) {
  const Tokenizer& t = load("gemma3-vocab/vocab.gguf");
  EXPECT_EQ(t.n_vocab(), 262144);
  EXPECT_FALSE(t.ollama_typing());
  EXPECT_EQ(t.bos(), 2);
  EXPECT_EQ(t.eos(), 1);
  EXPECT_EQ(t.unk(), 3);
  EXPECT_EQ(t.pad(), 0);
  EXPECT_EQ(t.eot(), 106);
  EXPECT_TRUE(t.add_bos_default());
  EXPECT_FALSE(t.add_space_prefix());
  EXPECT_EQ(t.stop_ids(), (std::vector<int32_t>{1, 106}));
  EXPECT_TRUE(t.is_control(105));
  EXPECT_TRUE(t.is_control(4));
  EXPECT_EQ(t.type(5), TokenType::UserDefined);
  EXPECT_EQ(t.type(238), TokenType::Byte);
  EXPECT_EQ(t.find_token("<start_of_turn>"), 105);
  EXPECT_EQ(t.find_token("\xE2\x96\x81world"), 1902);
  EXPECT_FALSE(t.find_token("no such piece at all"));
  EXPECT_EQ(t.piece(1902), " world");
  EXPECT_EQ(t.piece(248), "\n");  // <0x0A>
  EXPECT_EQ(t.piece(106), "<end_of_turn>");
  EXPECT_EQ(t.piece(106, false), "");
}

TEST(TokenizerVocab, OllamaTypingNormalized) {
  const Tokenizer& t = load("gemma3-vocab/vocab-ollama.gguf");
  EXPECT_EQ(t.n_vocab(), 262400);
  EXPECT_TRUE(t.ollama_typing());
  EXPECT_EQ(t.bos(), 2);
  EXPECT_EQ(t.eos(), 1);
  EXPECT_FALSE(t.add_space_prefix());  // absent in the file; Gemma default
  EXPECT_EQ(t.stop_ids(), (std::vector<int32_t>{1, 106}));
  EXPECT_EQ(t.type(238), TokenType::Byte);   // "<0x00>", typed NORMAL in the file
  EXPECT_TRUE(t.is_control(6));              // <unused0>, typed USER_DEFINED in the file
  EXPECT_TRUE(t.is_control(4));              // <mask>
  EXPECT_EQ(t.text(138), "  ");              // stored as "▁▁"
  EXPECT_GT(t.score(494), t.score(495));     // rank → score: lower id merges first
  // Past the text vocabulary: never produced, even when the text spells them.
  EXPECT_EQ(t.encode("<end_of_image>", false, true), load("gemma3-vocab/vocab.gguf").encode("<end_of_image>", false, true));
  EXPECT_EQ(t.encode("[PAD0]", false, true), load("gemma3-vocab/vocab.gguf").encode("[PAD0]", false, true));
}

TEST(TokenizerVocab, CasesLlamaParseSpecial) { run_cases(load("gemma3-vocab/vocab.gguf"), true); }
TEST(TokenizerVocab, CasesLlamaNoParseSpecial) { run_cases(load("gemma3-vocab/vocab.gguf"), false); }
TEST(TokenizerVocab, CasesOllamaParseSpecial) { run_cases(load("gemma3-vocab/vocab-ollama.gguf"), true); }
TEST(TokenizerVocab, CasesOllamaNoParseSpecial) { run_cases(load("gemma3-vocab/vocab-ollama.gguf"), false); }

TEST(TokenizerVocab, AddBosPrependsTwo) {
  for (const char* file : {"gemma3-vocab/vocab.gguf", "gemma3-vocab/vocab-ollama.gguf"}) {
    const Tokenizer& t = load(file);
    int pass = 0;
    for (const json& c : cases()) {
      auto want = expected(c, true);
      want.insert(want.begin(), 2);
      if (t.encode(c["text"].get<std::string>(), true, true) == want) ++pass;
    }
    EXPECT_EQ(pass, 364) << file;
  }
}

TEST(TokenizerVocab, DetokenizeRoundTrips) {
  // llama.cpp's detokenizer gives back every text, except where the text holds a literal "▁".
  for (const char* file : {"gemma3-vocab/vocab.gguf", "gemma3-vocab/vocab-ollama.gguf"}) {
    const Tokenizer& t = load(file);
    int checked = 0;
    for (const json& c : cases()) {
      const std::string text = c["text"];
      if (text.find("\xE2\x96\x81") != std::string::npos) continue;
      const auto ids = expected(c, true);
      EXPECT_EQ(t.decode(ids, true), text) << c["id"];
      ++checked;
    }
    EXPECT_GT(checked, 350);
  }
}

TEST(TokenizerVocab, ReadmeExamples) {
  const Tokenizer& t = load("gemma3-vocab/vocab.gguf");
  EXPECT_EQ(t.encode("Hello world", false, true), (std::vector<int32_t>{9259, 1902}));
  EXPECT_EQ(t.encode(std::string(32, ' '), false, true), (std::vector<int32_t>{167, 236743}));
  EXPECT_EQ(t.encode(std::string(45, '\n'), false, true), (std::vector<int32_t>{137, 120}));
  EXPECT_EQ(t.encode(std::string(40, '\t'), false, true), (std::vector<int32_t>{255998, 255976}));
  EXPECT_EQ(t.encode("\r", false, true), (std::vector<int32_t>{251}));
  EXPECT_EQ(t.encode(std::string(1, '\0'), false, true), (std::vector<int32_t>{238}));
  EXPECT_EQ(t.encode("\xC2\xA0", false, true), (std::vector<int32_t>{432, 398}));
  EXPECT_EQ(t.encode("\n", false, true), (std::vector<int32_t>{107}));
  EXPECT_EQ(t.encode("<start_of_turn>user\n", false, true), (std::vector<int32_t>{105, 2364, 107}));
  EXPECT_EQ(t.encode("<start_of_turn>user\n", false, false),
            (std::vector<int32_t>{236820, 3041, 236779, 1340, 236779, 887, 236813, 2364, 107}));
  EXPECT_EQ(t.encode("<<bos>>", false, false), (std::vector<int32_t>{6143, 46757, 6985}));
  EXPECT_EQ(t.encode("", true, true), (std::vector<int32_t>{2}));
  EXPECT_TRUE(t.encode("", false, true).empty());
}

// ---- the tiny model's own vocabulary (gemma3n-tiny/tokenizer) ----

namespace {
void run_tiny(const Tokenizer& t) {
  auto strings = read_jsonl(kFix + "/gemma3n-tiny/tokenizer/strings.jsonl");
  auto tokens = read_jsonl(kFix + "/gemma3n-tiny/tokenizer/tokens.jsonl");
  ASSERT_EQ(strings.size(), 34u);
  ASSERT_EQ(tokens.size(), 34u);
  int pass = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const json& c = tokens[i];
    const std::string text = c["text"];
    ASSERT_EQ(text, strings[i].get<std::string>());
    const auto ps = t.encode(text, false, true);
    const auto nops = t.encode(text, false, false);
    const auto bos = t.encode(text, true, true);
    const auto detok = t.decode(ids_of(c["ids"]), true);
    bool ok = true;
    ok &= ps == ids_of(c["ids"]);
    ok &= nops == ids_of(c["ids_parse_special_false"]);
    ok &= bos == ids_of(c["ids_add_special_true"]);
    ok &= detok == c["detok"].get<std::string>();
    if (ok) {
      ++pass;
    } else {
      ADD_FAILURE() << "line " << i << " " << c["text"] << "\n ps   " << show(ps) << " want " << c["ids"]
                    << "\n nops " << show(nops) << " want " << c["ids_parse_special_false"]
                    << "\n bos  " << show(bos) << "\n detok " << json(detok);
    }
  }
  EXPECT_EQ(pass, 34);
}
}  // namespace

TEST(TokenizerTiny, F16ModelStrings) {
  const Tokenizer& t = load("gemma3n-tiny/models/gemma3n-tiny-f16.gguf");
  EXPECT_EQ(t.n_vocab(), 448);
  EXPECT_EQ(t.stop_ids(), (std::vector<int32_t>{1, 6}));
  EXPECT_EQ(t.type(3), TokenType::Unknown);
  EXPECT_EQ(t.type(7), TokenType::UserDefined);  // <unused0>: matched even without parse_special
  run_tiny(t);
}

TEST(TokenizerTiny, OllamaModelStrings) {
  // 512 tokenizer entries but 448 per-layer rows: ids >= 448 are never produced.
  const Tokenizer& t = load("gemma3n-tiny/models/gemma3n-tiny-ollama.gguf");
  EXPECT_EQ(t.n_vocab(), 512);
  EXPECT_EQ(t.stop_ids(), (std::vector<int32_t>{1, 6}));
  run_tiny(t);
  for (int32_t id : t.encode("<end_of_image><start_of_audio>", false, true)) EXPECT_LT(id, 448);
}

// ---- streaming detokenizer ----

TEST(TokenizerStream, SplitUtf8ByteTokens) {
  const Tokenizer& t = load("gemma3-vocab/vocab.gguf");
  // U+1FAE9 (🫩, Unicode 16) has no piece: it arrives as 4 byte tokens.
  const std::string text = "face \xF0\x9F\xAB\xA9 ok \xC3\xA9\xE6\x97\xA5";
  const auto ids = t.encode(text, false, true);
  StreamingDetokenizer d(t);
  std::string out;
  std::vector<std::string> chunks;
  for (int32_t id : ids) {
    std::string s = d.push(id);
    chunks.push_back(s);
    out += s;
  }
  out += d.flush();
  EXPECT_EQ(out, text);
  for (const auto& c : chunks) {  // every chunk is whole characters
    std::string tmp = c;
    EXPECT_EQ(g3n::take_complete_utf8(tmp), c);
    EXPECT_TRUE(tmp.empty());
  }
  // The emoji's four byte tokens: three pushes give nothing, the fourth the whole character.
  StreamingDetokenizer d2(t);
  EXPECT_EQ(d2.push(238 + 0xF0), "");
  EXPECT_EQ(d2.push(238 + 0x9F), "");
  EXPECT_EQ(d2.pending_bytes(), 2u);
  EXPECT_EQ(d2.push(238 + 0xAB), "");
  EXPECT_EQ(d2.push(238 + 0xA9), "\xF0\x9F\xAB\xA9");
  EXPECT_EQ(d2.pending_bytes(), 0u);
}

TEST(TokenizerStream, SpacesControlAndMalformed) {
  const Tokenizer& t = load("gemma3-vocab/vocab.gguf");
  StreamingDetokenizer d(t);
  EXPECT_EQ(d.push(9259), "Hello");
  EXPECT_EQ(d.push(1902), " world");
  EXPECT_EQ(d.push(106), "");  // control hidden
  StreamingDetokenizer shown(t, true);
  EXPECT_EQ(shown.push(106), "<end_of_turn>");
  // A stray continuation byte and an invalid lead byte become U+FFFD; output stays valid UTF-8.
  EXPECT_EQ(d.push(238 + 0x80), "\xEF\xBF\xBD");
  EXPECT_EQ(d.push(238 + 0xFF), "\xEF\xBF\xBD");
  // A lead byte followed by ASCII: the lead is replaced, the ASCII kept.
  EXPECT_EQ(d.push(238 + 0xC3), "");
  EXPECT_EQ(d.push(238 + 'A'), "\xEF\xBF\xBD" "A");
  // A truncated character at the end is flushed as one U+FFFD.
  EXPECT_EQ(d.push(238 + 0xE6), "");
  EXPECT_EQ(d.push(238 + 0x97), "");
  EXPECT_EQ(d.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(d.flush(), "");
}

TEST(TokenizerStream, EveryCaseStreamsToItsText) {
  const Tokenizer& t = load("gemma3-vocab/vocab.gguf");
  for (const json& c : cases()) {
    const std::string text = c["text"];
    if (text.find("\xE2\x96\x81") != std::string::npos) continue;
    StreamingDetokenizer d(t, true);
    std::string out;
    for (int32_t id : expected(c, true)) out += d.push(id);
    out += d.flush();
    EXPECT_EQ(out, text) << c["id"];
  }
}

// ---- hand-built vocabularies: paths the Gemma files do not reach ----

namespace {
// 0-2 control, 3-258 bytes, then normal pieces with scores that favour later (longer) pieces.
g3n::VocabData small_vocab(const std::vector<std::string>& pieces) {
  g3n::VocabData d;
  d.architecture = "gemma3n";
  d.tokens = {"<pad>", "<eos>", "<bos>"};
  d.types = {3, 3, 3};
  char buf[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    d.tokens.push_back(buf);
    d.types.push_back(6);
  }
  for (const auto& p : pieces) {
    d.tokens.push_back(p);
    d.types.push_back(1);
  }
  for (size_t i = 0; i < d.tokens.size(); ++i) d.scores.push_back(d.types[i] == 1 ? static_cast<float>(i) : 0.0f);
  d.bos = 2;
  d.eos = 1;
  d.pad = 0;
  return d;
}
const std::string M = "\xE2\x96\x81";  // ▁
}  // namespace

TEST(TokenizerSynthetic, PieceAcrossWordBoundary) {
  // "a▁b" spans the place where the word splitter would cut ("a" | "▁b"); it must still be found.
  Tokenizer t(small_vocab({"a", "b", "x", M, "a" + M, M + "b", "a" + M + "b"}));
  const int32_t a = 259, b = 260, x = 261, sp = 262, sp_b = 264, a_sp_b = 265;
  EXPECT_EQ(t.encode("a b", false, true), (std::vector<int32_t>{a_sp_b}));
  EXPECT_EQ(t.encode("x b", false, true), (std::vector<int32_t>{x, sp_b}));
  EXPECT_EQ(t.encode("x b a b", false, true), (std::vector<int32_t>{x, sp_b, sp, a_sp_b}));
  EXPECT_EQ(t.encode("ab", false, true), (std::vector<int32_t>{a, b}));
  EXPECT_EQ(t.encode("a\xC3\xA9", false, true), (std::vector<int32_t>{a, 3 + 0xC3, 3 + 0xA9}));
  // Repeated calls hit the word cache and must give the same answer.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(t.encode("x b a b", false, true), (std::vector<int32_t>{x, sp_b, sp, a_sp_b}));
}

TEST(TokenizerSynthetic, WordCacheIsPerTokenizer) {
  Tokenizer with(small_vocab({"a", "b", M, M + "b", "a" + M + "b"}));
  Tokenizer without(small_vocab({"a", "b", M, M + "b"}));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(with.encode("q a b", false, true).back(), 263);
    EXPECT_EQ(without.encode("q a b", false, true), (std::vector<int32_t>{3 + 'q', 261, 259, 262}));
  }
  Tokenizer::clear_thread_cache();
  EXPECT_EQ(with.encode("q a b", false, true).back(), 263);
}

TEST(TokenizerSynthetic, SpacePrefixAfterSpecialTokens) {
  auto d = small_vocab({"b", M, M + "b"});
  d.add_space_prefix = true;
  Tokenizer t(d);
  EXPECT_TRUE(t.add_space_prefix());
  EXPECT_EQ(t.encode("b", false, true), (std::vector<int32_t>{261}));
  EXPECT_EQ(t.encode("b<eos>b", true, true), (std::vector<int32_t>{2, 261, 1, 261}));
  EXPECT_EQ(t.encode("b<eos>b", false, false).front(), 261);
  d.add_space_prefix.reset();
  d.architecture = "llama";  // llama.cpp's default for SPM vocabularies without the key
  EXPECT_TRUE(Tokenizer(d).add_space_prefix());
}

TEST(TokenizerSynthetic, RejectsBadVocabularies) {
  g3n::VocabData empty;
  EXPECT_THROW(Tokenizer{empty}, std::runtime_error);
  auto d = small_vocab({"a"});
  d.scores.pop_back();
  EXPECT_THROW(Tokenizer{d}, std::runtime_error);
  auto w = small_vocab({"a"});
  w.model = "bert";
  EXPECT_THROW(Tokenizer{w}, std::runtime_error);
}
