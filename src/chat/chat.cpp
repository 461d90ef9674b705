#include "chat/chat.h"

#include <algorithm>

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

void Conversation::drop_oldest(size_t n) {
  turns_.erase(turns_.begin(), turns_.begin() + static_cast<std::ptrdiff_t>(std::min(n, turns_.size())));
}

std::string render_prompt(std::span<const Message> messages) {
  const bool continuation = !messages.empty() && messages.back().role == Role::Model;
  std::string text = format_gemma(messages, !continuation);
  static constexpr std::string_view kEnd = "<end_of_turn>\n";
  if (continuation && text.ends_with(kEnd)) text.resize(text.size() - kEnd.size());
  return text;
}

int prompt_budget(int n_ctx) { return std::max(1, n_ctx - std::clamp(n_ctx / 4, 1, 1024)); }

size_t turns_to_drop(size_t n_turns, int n_ctx, const std::function<size_t(size_t from)>& length) {
  size_t from = 0;
  size_t size = length(from);
  if (size >= static_cast<size_t>(std::max(n_ctx, 0))) {
    // Whole user/model pairs, so the history still starts with a user turn; at least one turn stays.
    while (n_turns - from >= 3 && size > static_cast<size_t>(prompt_budget(n_ctx))) {
      from += 2;
      size = length(from);
    }
  }
  return from;
}

FittedPrompt fit_to_context(std::span<const Message> messages, const Tokenizer& tok, int n_ctx, FitOptions opts) {
  const size_t first = !messages.empty() && messages[0].role == Role::System ? 1 : 0;
  std::vector<int32_t> tokens;
  auto render = [&](size_t from) {
    std::vector<Message> kept(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(first));
    kept.insert(kept.end(), messages.begin() + static_cast<std::ptrdiff_t>(first + from), messages.end());
    tokens = tok.encode(render_prompt(kept), true, true);
    return tokens.size();
  };
  const size_t from = opts.drop_turns ? turns_to_drop(messages.size() - first, n_ctx, render) : (render(0), 0);
  FittedPrompt out = fit_to_context(std::move(tokens), n_ctx, opts);
  out.dropped_turns = from;
  return out;
}

FittedPrompt fit_to_context(std::vector<int32_t> tokens, int n_ctx, FitOptions opts) {
  FittedPrompt out;
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n >= n_ctx) {
    if (!opts.cut_tokens || n_ctx < 2) throw ContextOverflow(tokens.size(), n_ctx);
    const int64_t drop = n - prompt_budget(n_ctx);  // keeps BOS (token 0)
    tokens.erase(tokens.begin() + 1, tokens.begin() + 1 + drop);
    out.dropped_tokens = static_cast<size_t>(drop);
  }
  out.tokens = std::move(tokens);
  return out;
}

}  // namespace g3n::chat
