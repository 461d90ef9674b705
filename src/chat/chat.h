// Gemma turn format (docs/model.md §7.2, the official Hugging Face template's rules) and a multi-turn history.
// Produces text for Tokenizer::encode(text, /*add_bos=*/true, /*parse_special=*/true): BOS comes from the
// tokenizer, never from the template.
#pragma once
#include <cstddef>
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

  // Drops the oldest turns, a user/model pair at a time, until the rendered prompt (BOS included) is
  // at most max_tokens. The system prompt and the last user turn are always kept, so the result may
  // still be over budget. Returns how many turns (messages) were dropped.
  size_t fit_to_budget(const Tokenizer& tok, size_t max_tokens, bool add_generation_prompt = true);

 private:
  std::string system_;
  std::vector<Message> turns_;
};

}  // namespace chat
}  // namespace g3n
