// A conversation whose user messages may carry images, and the rows of its prompt: every message's images
// stay with it across turns (chat::images_then_text places them before its text), the rows come from
// image_prompt_rows, and an image that is already encoded is only looked up (ImageEncoder's cache), so a
// Session reuses the earlier turns' rows by their content keys and evaluates only the new ones.
//
//   ImageConversation conv;
//   conv.add_user("What is in it?", {{"./photo.jpg", enc.encode_file("./photo.jpg")}});
//   ImageChatPrompt p = image_chat_rows(tok, conv.messages(), enc.end_of_image_row(), n_ctx);
//   conv.drop_oldest(p.dropped_turns);  ... session.generate(p.rows, ...); conv.add_model(answer);
#pragma once
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "chat/chat.h"
#include "media/image_encoder.h"
#include "runtime/input_rows.h"

namespace g3n {

struct ChatImage {
  std::string source;  // where it came from (a path as typed), for messages and /save
  std::shared_ptr<const EncodedImage> encoded;
};

struct ImageChatMessage {
  chat::Role role = chat::Role::User;
  std::string text;               // as typed, without placeholders
  std::vector<ChatImage> images;  // placed before the text, in order (user messages)
};

// An optional system prompt plus alternating user/model turns (chat::Conversation's rules).
class ImageConversation {
 public:
  void set_system(std::string system) { system_ = std::move(system); }
  const std::string& system() const { return system_; }
  // chat::ChatFormatError if the turn would break the user/model alternation.
  void add_user(std::string text, std::vector<ChatImage> images = {});
  void add_model(std::string text);
  void clear() { turns_.clear(); }
  // Forgets the n oldest turns, with their images (what image_chat_rows reported as dropped_turns).
  void drop_oldest(size_t n);

  const std::vector<ImageChatMessage>& turns() const { return turns_; }
  // The system message (if non-empty) followed by the turns.
  std::vector<ImageChatMessage> messages() const;
  size_t image_count() const;

 private:
  std::string system_;
  std::vector<ImageChatMessage> turns_;
};

struct ImageChatPrompt {
  InputRows rows;
  size_t dropped_turns = 0;  // oldest turns left out to fit (a system message never counts)
  size_t images = 0;         // images in the rows
};

// The prompt text: render_prompt over the messages, each with its images as chat::images_then_text.
std::string render_image_chat(std::span<const ImageChatMessage> messages);

// The rows of the conversation with a generation prompt (a trailing model message is continued), fitted to
// n_ctx by chat's policy (chat::turns_to_drop): the oldest user/model pairs go first, a leading system
// message and the last turn stay; images and tokens are never cut. end_of_image_row: the encoder's (unused
// when no message has images). Throws chat::ContextOverflow when the prompt still does not fit.
ImageChatPrompt image_chat_rows(const Tokenizer& tok, std::span<const ImageChatMessage> messages,
                                std::span<const float> end_of_image_row, int n_ctx);

}  // namespace g3n
