#include "media/image_chat.h"

#include <algorithm>

#include "chat/image_prompt.h"

namespace g3n {

void ImageConversation::add_user(std::string text, std::vector<ChatImage> images) {
  if (!turns_.empty() && turns_.back().role == chat::Role::User) throw chat::ChatFormatError("two user turns in a row");
  turns_.push_back({chat::Role::User, std::move(text), std::move(images)});
}

void ImageConversation::add_model(std::string text) {
  if (turns_.empty() || turns_.back().role != chat::Role::User) throw chat::ChatFormatError("a model turn must follow a user turn");
  turns_.push_back({chat::Role::Model, std::move(text), {}});
}

void ImageConversation::drop_oldest(size_t n) {
  turns_.erase(turns_.begin(), turns_.begin() + static_cast<std::ptrdiff_t>(std::min(n, turns_.size())));
}

std::vector<ImageChatMessage> ImageConversation::messages() const {
  std::vector<ImageChatMessage> all;
  all.reserve(turns_.size() + 1);
  if (!system_.empty()) all.push_back({chat::Role::System, system_, {}});
  all.insert(all.end(), turns_.begin(), turns_.end());
  return all;
}

size_t ImageConversation::image_count() const {
  size_t n = 0;
  for (const auto& m : turns_) n += m.images.size();
  return n;
}

std::string render_image_chat(std::span<const ImageChatMessage> messages) {
  std::vector<chat::Message> text;
  text.reserve(messages.size());
  for (const auto& m : messages)
    text.push_back({m.role, m.images.empty() ? m.text : chat::images_then_text(m.images.size(), m.text)});
  return chat::render_prompt(text);
}

ImageChatPrompt image_chat_rows(const Tokenizer& tok, std::span<const ImageChatMessage> messages,
                                std::span<const float> end_of_image_row, int n_ctx) {
  const size_t first = !messages.empty() && messages[0].role == chat::Role::System ? 1 : 0;
  ImageChatPrompt out;
  auto build = [&](size_t from) {
    std::vector<ImageChatMessage> kept(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(first));
    kept.insert(kept.end(), messages.begin() + static_cast<std::ptrdiff_t>(first + from), messages.end());
    std::vector<std::shared_ptr<const EncodedImage>> images;
    for (const auto& m : kept)
      for (const auto& im : m.images) images.push_back(im.encoded);
    out.rows = image_prompt_rows(tok, render_image_chat(kept), images, end_of_image_row);
    out.images = images.size();
    return out.rows.size();
  };
  out.dropped_turns = chat::turns_to_drop(messages.size() - first, n_ctx, build);
  if (static_cast<int64_t>(out.rows.size()) >= n_ctx) throw chat::ContextOverflow(out.rows.size(), n_ctx);
  return out;
}

}  // namespace g3n
