#include "server/prompt.h"

#include <algorithm>
#include <functional>

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

chat::FitOptions fit_options(bool truncate) { return {.drop_turns = truncate, .cut_tokens = truncate}; }

BuiltPrompt fit(const std::function<BuiltPrompt(chat::FitOptions)>& f, bool truncate) {
  try {
    return f(fit_options(truncate));
  } catch (const chat::ContextOverflow& e) {
    throw HttpError(400, "input length (" + std::to_string(e.tokens) + " tokens) exceeds the context length (" + std::to_string(e.n_ctx) + ")");
  }
}

}  // namespace

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
  std::vector<chat::Message> msgs;
  if (!system.empty()) msgs.push_back({chat::Role::System, system});
  msgs.insert(msgs.end(), turns.begin(), turns.end());
  return fit([&](chat::FitOptions o) { return chat::fit_to_context(msgs, tok, n_ctx, o); }, truncate);
}

BuiltPrompt build_generate_prompt(const std::string& prompt, const std::optional<std::string>& system, bool raw,
                                  const std::vector<int32_t>& context, const Tokenizer& tok, int n_ctx, bool truncate) {
  std::vector<int32_t> tokens = context;
  if (raw) {
    // Verbatim, but a prompt that spells out <bos> itself does not get a second one.
    const bool has_bos = prompt.rfind("<bos>", 0) == 0;
    auto t = tok.encode(prompt, context.empty() && !has_bos, true);
    tokens.insert(tokens.end(), t.begin(), t.end());
  } else {
    std::vector<chat::Message> msgs;
    if (system && !system->empty()) msgs.push_back({chat::Role::System, *system});
    msgs.push_back({chat::Role::User, prompt});
    auto t = tok.encode(chat::format_gemma(msgs, true), context.empty(), true);
    tokens.insert(tokens.end(), t.begin(), t.end());
  }
  return fit([&](chat::FitOptions o) { return chat::fit_to_context(std::move(tokens), n_ctx, o); }, truncate);
}

}  // namespace g3n::server
