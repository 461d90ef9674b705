// Gemma turn format (docs/model.md §7.2, the official Hugging Face template's rules) and a multi-turn history.
// Produces text for Tokenizer::encode(text, /*add_bos=*/true, /*parse_special=*/true): BOS comes from the
// tokenizer, never from the template.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace g3n {

class GgufFile;
class Tokenizer;

namespace chat {

enum class Role { System, User, Model };  // Model = "assistant"

struct Message {
  Role role;
  std::string content;
};

class ChatFormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "system", "user", "model"/"assistant" -> Role; nullopt otherwise.
std::optional<Role> parse_role(std::string_view name);

// Python str.strip() (what Jinja's `trim` does): removes Unicode whitespace at both ends.
std::string trim(std::string_view s);

// Renders messages in the HF Gemma template's way:
//  - a leading system message is removed and its text + "\n\n" is put in front of the first remaining
//    message's content (the system text itself is not trimmed);
//  - the rest must alternate user/model starting with user (else ChatFormatError, like the template's
//    raise_exception);
//  - each becomes "<start_of_turn>" + ("user" | "model") + "\n" + content.strip() + "<end_of_turn>\n";
//  - add_generation_prompt appends "<start_of_turn>model\n".
std::string format_gemma(std::span<const Message> messages, bool add_generation_prompt);

// Text to generate from: a trailing model message is continued (its turn is left open), otherwise the
// generation prompt "<start_of_turn>model\n" is added.
std::string render_prompt(std::span<const Message> messages);

// The prompt-fitting policy, one for every interface. A prompt fits when it leaves room for at least
// one new token (fewer than n_ctx tokens). One that does not is cut to prompt_budget(n_ctx) tokens, so
// the answer has room: first the oldest user/model pairs are dropped (a leading system message and the
// last user turn, or the last exchange when a model turn is continued, always stay), then, if still
// too long, the oldest tokens after BOS.
int prompt_budget(int n_ctx);  // n_ctx minus a quarter of it, at most 1024 tokens

struct FitOptions {
  bool drop_turns = true;  // may drop the oldest pairs
  bool cut_tokens = true;  // may cut the oldest tokens
};

struct FittedPrompt {
  std::vector<int32_t> tokens;
  size_t dropped_turns = 0;   // messages left out, oldest first (system messages are never counted)
  size_t dropped_tokens = 0;  // tokens cut after BOS
};

// Thrown when a prompt does not fit and the options forbid what would make it fit.
class ContextOverflow : public std::length_error {
 public:
  ContextOverflow(size_t tokens, int n_ctx)
      : std::length_error("the prompt (" + std::to_string(tokens) + " tokens) does not fit the context of " +
                          std::to_string(n_ctx) + " tokens"),
        tokens(tokens), n_ctx(n_ctx) {}
  size_t tokens;
  int n_ctx;
};

// The turn-dropping stage of the policy, for any measure of a prompt (tokens, or rows with images).
// n_turns: the turns after a leading system message; length(from): the prompt's size with the first
// `from` of them left out. Returns how many to leave out: 0 when the prompt fits (size < n_ctx), else the
// fewest whole user/model pairs that bring it within prompt_budget(n_ctx), keeping at least the last turn
// (or the last exchange). The last call to `length` is for the returned count, so a caller may keep what
// that call built.
size_t turns_to_drop(size_t n_turns, int n_ctx, const std::function<size_t(size_t from)>& length);

// Renders `messages` with render_prompt, encodes them (BOS first) and fits them to n_ctx.
FittedPrompt fit_to_context(std::span<const Message> messages, const Tokenizer& tok, int n_ctx, FitOptions opts = {});
// The token stage alone, for prompts that are not a conversation (raw text, earlier context tokens).
FittedPrompt fit_to_context(std::vector<int32_t> tokens, int n_ctx, FitOptions opts = {});

// The GGUF's tokenizer.chat_template, for display only (it is never executed).
std::optional<std::string> chat_template(const GgufFile& file);

// A conversation: an optional system prompt plus alternating user/model turns.
class Conversation {
 public:
  Conversation() = default;
  explicit Conversation(std::string system) : system_(std::move(system)) {}

  void set_system(std::string system) { system_ = std::move(system); }
  const std::string& system() const { return system_; }
  // ChatFormatError if the turn would break the user/model alternation.
  void add_user(std::string content);
  void add_model(std::string content);
  void clear() { turns_.clear(); }

  // The system message (if non-empty) followed by the turns.
  std::vector<Message> messages() const;
  const std::vector<Message>& turns() const { return turns_; }
  std::string render(bool add_generation_prompt) const;

  // Forgets the n oldest turns (what fit_to_context reported as dropped_turns).
  void drop_oldest(size_t n);

 private:
  std::string system_;
  std::vector<Message> turns_;
};

}  // namespace chat
}  // namespace g3n
