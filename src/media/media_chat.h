// A conversation whose user messages may carry images and audio, and the rows of its prompt: every
// message's media stay with it across turns (chat::media_then_text places them before its text: images,
// then each recording's 30 s chunks), the rows come from media_prompt_rows, and media already encoded are
// only looked up (the encoders' caches), so a Session reuses the earlier turns' rows by their content keys
// and evaluates only the new ones.
//
//   MediaConversation conv;
//   conv.add_user("What is in it?", {{"./photo.jpg", images.encode_file("./photo.jpg")}});
//   MediaChatPrompt p = media_chat_rows(tok, conv.messages(), {images.end_of_image_row(), {}}, n_ctx);
//   conv.drop_oldest(p.dropped_turns);  ... session.generate(p.rows, ...); conv.add_model(answer);
#pragma once
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "chat/chat.h"
#include "media/audio_encoder.h"
#include "media/image_encoder.h"
#include "runtime/input_rows.h"

namespace g3n {

struct ChatImage {
  std::string source;  // where it came from (a path as typed), for messages and /save
  std::shared_ptr<const EncodedImage> encoded;
};

struct ChatAudio {
  std::string source;
  std::shared_ptr<const EncodedAudio> encoded;
};

struct MediaChatMessage {
  chat::Role role = chat::Role::User;
  std::string text;               // as typed, without placeholders
  std::vector<ChatImage> images;  // placed before the text, in order (user messages)
  std::vector<ChatAudio> audio;   // after the images, before the text
};

// An optional system prompt plus alternating user/model turns (chat::Conversation's rules).
class MediaConversation {
 public:
  void set_system(std::string system) { system_ = std::move(system); }
  const std::string& system() const { return system_; }
  // chat::ChatFormatError if the turn would break the user/model alternation.
  void add_user(std::string text, std::vector<ChatImage> images = {}, std::vector<ChatAudio> audio = {});
  void add_model(std::string text);
  void clear() { turns_.clear(); }
  // Forgets the n oldest turns, with their media (what media_chat_rows reported as dropped_turns).
  void drop_oldest(size_t n);

  const std::vector<MediaChatMessage>& turns() const { return turns_; }
  // The system message (if non-empty) followed by the turns.
  std::vector<MediaChatMessage> messages() const;
  size_t image_count() const;
  size_t audio_count() const;

 private:
  std::string system_;
  std::vector<MediaChatMessage> turns_;
};

struct MediaChatPrompt {
  InputRows rows;
  size_t dropped_turns = 0;  // oldest turns left out to fit (a system message never counts)
  size_t images = 0;         // images in the rows
  size_t audio_blocks = 0;   // 30 s audio chunks in the rows
};

// The encoders' end rows (empty for a kind no message carries).
struct MediaEndRows {
  std::span<const float> image;
  std::span<const float> audio;
};

// The prompt text: render_prompt over the messages, each with its media as chat::media_then_text.
std::string render_media_chat(std::span<const MediaChatMessage> messages);

// The rows of the conversation with a generation prompt (a trailing model message is continued), fitted to
// n_ctx by chat's policy (chat::turns_to_drop): the oldest user/model pairs go first, a leading system
// message and the last turn stay; media and tokens are never cut. Throws chat::ContextOverflow when the
// prompt still does not fit.
MediaChatPrompt media_chat_rows(const Tokenizer& tok, std::span<const MediaChatMessage> messages, MediaEndRows end_rows, int n_ctx);

}  // namespace g3n
