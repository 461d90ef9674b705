#include "chat/chat.h"

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace g3n::chat {

std::optional<Role> parse_role(std::string_view name) {
  if (name == "system") return Role::System;
  if (name == "user") return Role::User;
  if (name == "model" || name == "assistant") return Role::Model;
  return std::nullopt;
}

std::string trim(std::string_view s) {
  // Find the first and last code points that are not whitespace; malformed bytes count as content.
  size_t begin = s.size(), end = 0;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8::decode(s, i, cp);
    bool space = n > 0 && utf8::is_python_space(cp);
    if (n == 0) n = 1;
    if (!space) {
      if (begin == s.size()) begin = i;
      end = i + n;
    }
    i += n;
  }
  if (begin >= end) return {};
  return std::string(s.substr(begin, end - begin));
}

std::string format_gemma(std::span<const Message> messages, bool add_generation_prompt) {
  std::string out;
  std::string prefix;
  size_t first = 0;
  if (!messages.empty() && messages[0].role == Role::System) {
    prefix = messages[0].content + "\n\n";
    first = 1;
  }
  for (size_t i = first; i < messages.size(); ++i) {
    const Message& m = messages[i];
    const bool expect_user = ((i - first) % 2) == 0;
    if (m.role == Role::System || (m.role == Role::User) != expect_user)
      throw ChatFormatError("Conversation roles must alternate user/assistant/user/assistant/...");
    out += "<start_of_turn>";
    out += m.role == Role::User ? "user" : "model";
    out += '\n';
    if (i == first) out += prefix;
    out += trim(m.content);
    out += "<end_of_turn>\n";
  }
  if (add_generation_prompt) out += "<start_of_turn>model\n";
  return out;
}

std::optional<std::string> chat_template(const GgufFile& file) {
  return file.get_string("tokenizer.chat_template");
}

void Conversation::add_user(std::string content) {
  if (!turns_.empty() && turns_.back().role == Role::User)
    throw ChatFormatError("two user turns in a row");
  turns_.push_back({Role::User, std::move(content)});
}

void Conversation::add_model(std::string content) {
  if (turns_.empty() || turns_.back().role != Role::User)
    throw ChatFormatError("a model turn must follow a user turn");
  turns_.push_back({Role::Model, std::move(content)});
}

std::vector<Message> Conversation::messages() const {
  std::vector<Message> all;
  all.reserve(turns_.size() + 1);
  if (!system_.empty()) all.push_back({Role::System, system_});
  all.insert(all.end(), turns_.begin(), turns_.end());
  return all;
}

std::string Conversation::render(bool add_generation_prompt) const {
  return format_gemma(messages(), add_generation_prompt);
}

size_t Conversation::fit_to_budget(const Tokenizer& tok, size_t max_tokens, bool add_generation_prompt) {
  size_t dropped = 0;
  // Dropping whole user/model pairs keeps the history starting with a user turn.
  while (turns_.size() >= 3) {
    const size_t n = tok.encode(render(add_generation_prompt), tok.add_bos_default(), true).size();
    if (n <= max_tokens) break;
    turns_.erase(turns_.begin(), turns_.begin() + 2);
    dropped += 2;
  }
  return dropped;
}

}  // namespace g3n::chat
