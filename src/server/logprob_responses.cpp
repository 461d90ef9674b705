#include "server/logprob_responses.h"

#include <cmath>
#include <string>

namespace g3n::server {
namespace {

using json = nlohmann::json;

double value(float logprob) { return std::isfinite(logprob) ? static_cast<double>(logprob) : -9999.0; }

json bytes_of(const std::string& piece) {
  json b = json::array();
  for (unsigned char c : piece) b.push_back(static_cast<int>(c));
  return b;
}

// {"token", "logprob", "bytes"}; `omit_empty` leaves out empty bytes (Ollama).
json entry(const Tokenizer& tok, const TokenLogprob& t, bool omit_empty) {
  const std::string piece = tok.piece(t.id, true);
  json j{{"token", piece}, {"logprob", value(t.logprob)}};
  if (!omit_empty || !piece.empty()) j["bytes"] = bytes_of(piece);
  return j;
}

json step_json(const Tokenizer& tok, const LogprobStep& s, bool omit_empty) {
  json j = entry(tok, s.chosen, omit_empty);
  json top = json::array();
  for (const TokenLogprob& t : s.top) top.push_back(entry(tok, t, omit_empty));
  if (!omit_empty || !top.empty()) j["top_logprobs"] = std::move(top);
  return j;
}

}  // namespace

json ollama_logprobs(const Tokenizer& tok, std::span<const LogprobStep> steps) {
  json out = json::array();
  for (const LogprobStep& s : steps) out.push_back(step_json(tok, s, true));
  return out;
}

json openai_chat_logprobs(const Tokenizer& tok, std::span<const LogprobStep> steps) {
  json content = json::array();
  for (const LogprobStep& s : steps) content.push_back(step_json(tok, s, false));
  return json{{"content", std::move(content)}, {"refusal", nullptr}};
}

json openai_completion_logprobs(const Tokenizer& tok, std::span<const LogprobStep> steps, size_t& offset) {
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(), offsets = json::array();
  for (const LogprobStep& s : steps) {
    const std::string piece = tok.piece(s.chosen.id, true);
    tokens.push_back(piece);
    token_logprobs.push_back(value(s.chosen.logprob));
    json alternatives = json::object();
    for (const TokenLogprob& t : s.top) {
      const std::string key = tok.piece(t.id, true);
      if (!alternatives.contains(key)) alternatives[key] = value(t.logprob);  // pieces that render alike: the likelier
    }
    top.push_back(std::move(alternatives));
    offsets.push_back(offset);
    offset += piece.size();
  }
  return json{{"tokens", std::move(tokens)}, {"token_logprobs", std::move(token_logprobs)}, {"top_logprobs", std::move(top)},
              {"text_offset", std::move(offsets)}};
}

}  // namespace g3n::server
