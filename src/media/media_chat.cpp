#include "media/media_chat.h"

#include <algorithm>

#include "chat/media_prompt.h"
#include "media/media_rows.h"

namespace g3n {

void MediaConversation::add_user(std::string text, std::vector<ChatImage> images, std::vector<ChatAudio> audio) {
  if (!turns_.empty() && turns_.back().role == chat::Role::User) throw chat::ChatFormatError("two user turns in a row");
  turns_.push_back({chat::Role::User, std::move(text), std::move(images), std::move(audio)});
}

void MediaConversation::add_model(std::string text) {
  if (turns_.empty() || turns_.back().role != chat::Role::User) throw chat::ChatFormatError("a model turn must follow a user turn");
  turns_.push_back({chat::Role::Model, std::move(text), {}, {}});
}

void MediaConversation::drop_oldest(size_t n) {
  turns_.erase(turns_.begin(), turns_.begin() + static_cast<std::ptrdiff_t>(std::min(n, turns_.size())));
}

std::vector<MediaChatMessage> MediaConversation::messages() const {
  std::vector<MediaChatMessage> all;
  all.reserve(turns_.size() + 1);
  if (!system_.empty()) all.push_back({chat::Role::System, system_, {}, {}});
  all.insert(all.end(), turns_.begin(), turns_.end());
  return all;
}

size_t MediaConversation::image_count() const {
  size_t n = 0;
  for (const auto& m : turns_) n += m.images.size();
  return n;
}

size_t MediaConversation::audio_count() const {
  size_t n = 0;
  for (const auto& m : turns_) n += m.audio.size();
  return n;
}

namespace {
size_t audio_blocks(const MediaChatMessage& m) {
  size_t n = 0;
  for (const auto& a : m.audio) n += a.encoded->chunks.size();
  return n;
}
}  // namespace

std::string render_media_chat(std::span<const MediaChatMessage> messages) {
  std::vector<chat::Message> text;
  text.reserve(messages.size());
  for (const auto& m : messages) {
    const size_t blocks = audio_blocks(m);
    text.push_back({m.role, m.images.empty() && blocks == 0 ? m.text : chat::media_then_text(m.images.size(), blocks, m.text)});
  }
  return chat::render_prompt(text);
}

MediaChatPrompt media_chat_rows(const Tokenizer& tok, std::span<const MediaChatMessage> messages, MediaEndRows end_rows, int n_ctx) {
  const size_t first = !messages.empty() && messages[0].role == chat::Role::System ? 1 : 0;
  MediaChatPrompt out;
  auto build = [&](size_t from) {
    std::vector<MediaChatMessage> kept(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(first));
    kept.insert(kept.end(), messages.begin() + static_cast<std::ptrdiff_t>(first + from), messages.end());
    std::vector<std::shared_ptr<const EncodedImage>> images;
    std::vector<std::shared_ptr<const EncodedAudio>> audio;
    out.audio_blocks = 0;
    for (const auto& m : kept) {
      for (const auto& im : m.images) images.push_back(im.encoded);
      for (const auto& a : m.audio) audio.push_back(a.encoded);
      out.audio_blocks += audio_blocks(m);
    }
    out.rows = media_prompt_rows(tok, render_media_chat(kept), images, end_rows.image, audio, end_rows.audio);
    out.images = images.size();
    return out.rows.size();
  };
  out.dropped_turns = chat::turns_to_drop(messages.size() - first, n_ctx, build);
  if (static_cast<int64_t>(out.rows.size()) >= n_ctx) throw chat::ContextOverflow(out.rows.size(), n_ctx);
  return out;
}

}  // namespace g3n
