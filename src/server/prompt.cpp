#include "server/prompt.h"

#include <algorithm>

#include "server/options.h"
#include "tokenizer/tokenizer.h"

namespace g3n::server {
namespace {

std::string describe_tools(const nlohmann::json& tools) {
  std::string s =
      "You can call the following tools. To call one, answer with only a JSON object of the form "
      "{\"name\": \"<tool name>\", \"arguments\": {...}}.\nTools:\n";
  for (const auto& t : tools) s += t.dump() + "\n";
  return s;
}

// Cuts the oldest tokens (keeping BOS) when a prompt does not fit.
void cut_tokens(BuiltPrompt& out, int n_ctx, bool truncate) {
  const int n = static_cast<int>(out.tokens.size());
  if (n < n_ctx) return;
  if (!truncate)
    throw HttpError(400, "input length (" + std::to_string(n) + " tokens) exceeds the context length (" + std::to_string(n_ctx) + ")");
  const int keep = prompt_budget(n_ctx);
  const int drop = n - keep;
  out.tokens.erase(out.tokens.begin() + 1, out.tokens.begin() + 1 + drop);
  out.dropped_tokens += drop;
}

}  // namespace

int prompt_budget(int n_ctx) { return std::max(1, n_ctx - std::clamp(n_ctx / 4, 1, 1024)); }

BuiltPrompt build_chat_prompt(const std::vector<InMessage>& messages, const std::optional<std::string>& default_system,
                              const nlohmann::json& tools, const Tokenizer& tok, int n_ctx, bool truncate) {
  std::string system;
  bool has_system = false;
  std::vector<chat::Message> turns;
  for (const auto& m : messages) {
    if (m.role == "system") {
      if (has_system) system += "\n\n";
      system += m.content;
      has_system = true;
      continue;
    }
    const chat::Role role = m.role == "assistant" || m.role == "model" ? chat::Role::Model : chat::Role::User;
    // Gemma alternates user/model strictly: consecutive messages of one side become one turn.
    if (!turns.empty() && turns.back().role == role) turns.back().content += "\n\n" + m.content;
    else turns.push_back({role, m.content});
  }
  if (!has_system && default_system) system = *default_system;
  if (tools.is_array() && !tools.empty()) system += (system.empty() ? "" : "\n\n") + describe_tools(tools);
  if (turns.empty() || turns.front().role != chat::Role::User) turns.insert(turns.begin(), {chat::Role::User, ""});
  const bool continuation = turns.back().role == chat::Role::Model;

  auto render = [&](size_t from) {
    std::vector<chat::Message> msgs;
    if (!system.empty()) msgs.push_back({chat::Role::System, system});
    msgs.insert(msgs.end(), turns.begin() + static_cast<std::ptrdiff_t>(from), turns.end());
    std::string text = chat::format_gemma(msgs, !continuation);
    // Continue the assistant's last message: leave its turn open.
    static constexpr std::string_view kEnd = "<end_of_turn>\n";
    if (continuation && text.size() >= kEnd.size() && text.compare(text.size() - kEnd.size(), kEnd.size(), kEnd) == 0)
      text.resize(text.size() - kEnd.size());
    return tok.encode(text, true, true);
  };

  BuiltPrompt out;
  size_t from = 0;
  out.tokens = render(from);
  if (static_cast<int>(out.tokens.size()) >= n_ctx && truncate) {
    // Drop whole user/model pairs from the front (the history keeps starting with a user turn), keeping
    // the last user turn, until the prompt leaves room for an answer.
    while (turns.size() - from >= 3 && static_cast<int>(out.tokens.size()) > prompt_budget(n_ctx)) {
      from += 2;
      out.tokens = render(from);
    }
    out.dropped_messages = static_cast<int>(from);
  }
  cut_tokens(out, n_ctx, truncate);
  return out;
}

BuiltPrompt build_generate_prompt(const std::string& prompt, const std::optional<std::string>& system, bool raw,
                                  const std::vector<int32_t>& context, const Tokenizer& tok, int n_ctx, bool truncate) {
  BuiltPrompt out;
  out.tokens = context;
  if (raw) {
    // Verbatim, but a prompt that spells out <bos> itself does not get a second one.
    const bool has_bos = prompt.rfind("<bos>", 0) == 0;
    auto t = tok.encode(prompt, context.empty() && !has_bos, true);
    out.tokens.insert(out.tokens.end(), t.begin(), t.end());
  } else {
    std::vector<chat::Message> msgs;
    if (system && !system->empty()) msgs.push_back({chat::Role::System, *system});
    msgs.push_back({chat::Role::User, prompt});
    auto t = tok.encode(chat::format_gemma(msgs, true), context.empty(), true);
    out.tokens.insert(out.tokens.end(), t.begin(), t.end());
  }
  cut_tokens(out, n_ctx, truncate);
  return out;
}

}  // namespace g3n::server
