// libFuzzer target for structured output: compiles an arbitrary JSON schema (JsonSchema::compile) and runs
// the byte automaton (JsonMatcher) and the logits masks (JsonConstraint) over arbitrary text; or, with the
// tool bit set, builds a tool-call grammar from the schema object's entries (each key a tool, each value
// its arguments' schema) and runs ToolCallMatcher and ToolCallConstraint the same way.
// Input: one flags byte, the schema text, a NUL, then the text to match.
// Properties checked (a failure is a bug, reported by __builtin_trap):
//  - a text the JSON automaton reads whole and calls complete is valid JSON;
//  - every token a mask allows is one whose bytes the automaton accepts (or an end token once the
//    constraint is complete, or when nothing else may follow), over a small synthetic vocabulary.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sampling/json_constraint.h"
#include "sampling/tool_call_constraint.h"
#include "tokenizer/tokenizer.h"

using namespace g3n;
using json = nlohmann::json;

namespace {

constexpr int32_t kEos = 1;
constexpr int kMaxSteps = 24;  // constrained tokens per input: enough to walk nested values, still fast

// Specials, the 256 byte tokens, and multi-byte pieces JSON and tool calls are made of: masks must judge
// tokens that span several automaton states.
const Tokenizer& vocab() {
  static const Tokenizer tok = [] {
    VocabData v;
    v.model = "llama";
    v.tokens = {"<pad>", "<eos>", "<bos>", "<unk>"};
    v.types = {3, 3, 3, 2};
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      v.tokens.push_back(name);
      v.types.push_back(6);
    }
    for (const char* t : {"{\"", "\":", "\": ", "\",", "\"}", "},", "}]", "[{", "true", "false", "null", "tr", "ue", "nul",
                          "12", "-0", "0.", "e+", "1e", "\\u00", "\\n", "\\\"", "  ", "\n", ", ", "\"name", "\"arguments",
                          "<tool_call>", "<tool", "_call>", "\n{", "]}", "\"a\"", "abc", "x\""}) {
      v.tokens.push_back(t);
      v.types.push_back(1);
    }
    v.bos = 2;
    v.eos = kEos;
    v.unk = 3;
    v.pad = 0;
    return Tokenizer(std::move(v));
  }();
  return tok;
}

const TokenTexts& texts() {
  static const TokenTexts t(vocab());
  return t;
}

// The next token: the longest allowed one that starts the rest of the text, else one picked by the
// text's next byte among those allowed; -1 when none is allowed.
int32_t next_token(const std::vector<float>& masked, std::string_view rest) {
  int32_t best = -1;
  size_t best_len = 0;
  std::vector<int32_t> allowed;
  for (int32_t id = 0; id < static_cast<int32_t>(masked.size()); ++id) {
    if (!std::isfinite(masked[id])) continue;
    allowed.push_back(id);
    const std::string_view t = texts().text(id);
    if (!t.empty() && t.size() > best_len && rest.substr(0, t.size()) == t) {
      best = id;
      best_len = t.size();
    }
  }
  if (best >= 0 || allowed.empty()) return best;
  const size_t pick = rest.empty() ? 0 : static_cast<unsigned char>(rest[0]);
  return allowed[pick % allowed.size()];
}

// Drives a constraint and a shadow automaton over the same tokens, checking each mask against the shadow.
template <class Constraint, class Matcher, class CanEnd>
void drive(Constraint& c, Matcher shadow, std::string_view text, CanEnd can_end) {
  const int32_t n = texts().n_vocab();
  const std::vector<float> logits(static_cast<size_t>(n), 0.0f);
  std::vector<float> out;
  for (int step = 0; step < kMaxSteps; ++step) {
    c.mask(logits, n, out);
    if (out.size() != logits.size()) __builtin_trap();
    bool other = false;
    for (int32_t id = 0; id < n; ++id) {
      if (!std::isfinite(out[id])) continue;
      if (id == kEos) continue;
      other = true;
      Matcher m = shadow;
      if (!m.feed(texts().text(id))) __builtin_trap();  // the mask let through a token the grammar refuses
    }
    if (std::isfinite(out[kEos]) && other && !can_end(shadow)) __builtin_trap();  // end allowed mid-value
    const int32_t id = next_token(out, text);
    if (id < 0 || id == kEos) return;
    const std::string_view t = texts().text(id);
    c.accept(id);
    if (!shadow.feed(t)) __builtin_trap();
    if (text.substr(0, t.size()) == t) text.remove_prefix(t.size());
    else text = {};
    if (c.complete() != shadow.complete()) __builtin_trap();
  }
}

void fuzz_json(const std::shared_ptr<const JsonSchema>& schema, std::string_view text) {
  JsonMatcher m(*schema);
  bool whole = true;
  for (unsigned char ch : text)
    if (!m.feed(ch)) {
      whole = false;
      break;
    }
  if (whole && m.complete() && !json::accept(text)) __builtin_trap();  // accepted a text that is not JSON
  JsonConstraint c(schema, texts(), {kEos});
  drive(c, JsonMatcher(*schema), text, [](const JsonMatcher& s) { return s.complete(); });
}

void fuzz_tools(const json& spec, uint8_t flags, std::string_view text) {
  auto g = std::make_shared<ToolCallGrammar>();
  g->trigger = "<tool_call>";
  g->open = "\n{\"name\": ";
  g->between = ", \"arguments\": ";
  g->close = "}";
  g->separator = "\n";
  g->lazy = flags & 2;
  g->parallel = flags & 4;
  if (!spec.is_object() || spec.empty()) return;
  for (auto it = spec.begin(); it != spec.end() && g->tools.size() < 8; ++it)  // keys come sorted
    g->tools.emplace_back(json(it.key()).dump(), JsonSchema::compile(it.value()));
  ToolCallMatcher m(g);
  for (unsigned char ch : text)
    if (!m.feed(ch)) break;
  ToolCallConstraint c(g, texts(), {kEos});
  drive(c, ToolCallMatcher(g), text, [](const ToolCallMatcher& s) { return s.may_end() || s.free(); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t nul = rest.find('\0');
  const std::string_view schema_text = rest.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
  const json spec = json::parse(schema_text, nullptr, false);
  if (spec.is_discarded()) return 0;
  try {
    if (flags & 1) fuzz_tools(spec, flags, text);
    else fuzz_json(JsonSchema::compile(spec), text);
  } catch (const std::invalid_argument&) {  // a schema the compiler refuses, with a message
  }
  return 0;
}
