#include "chat/media_prompt.h"

#include <optional>
#include <stdexcept>
#include <vector>

#include "chat/chat.h"
#include "tokenizer/tokenizer.h"

namespace g3n::chat {

std::string_view placeholder(MediaKind kind) { return kind == MediaKind::Image ? kImagePlaceholder : kAudioPlaceholder; }

std::string_view start_piece(MediaKind kind) { return kind == MediaKind::Image ? "<start_of_image>" : "<start_of_audio>"; }

namespace {

struct Mark {
  size_t at;
  MediaKind kind;
};

// The next placeholder of either kind at or after pos (npos when none).
Mark next_mark(std::string_view text, size_t pos) {
  const size_t i = text.find(kImagePlaceholder, pos), a = text.find(kAudioPlaceholder, pos);
  return i <= a ? Mark{i, MediaKind::Image} : Mark{a, MediaKind::Audio};
}

const char* noun(MediaKind kind) { return kind == MediaKind::Image ? "image" : "audio block"; }

}  // namespace

std::vector<MediaKind> find_placeholders(std::string_view text) {
  std::vector<MediaKind> kinds;
  for (Mark m = next_mark(text, 0); m.at != std::string_view::npos; m = next_mark(text, m.at + placeholder(m.kind).size()))
    kinds.push_back(m.kind);
  return kinds;
}

InputRows layout_media_prompt(const Tokenizer& tok, std::string_view text, std::span<const MediaRows> blocks, bool add_bos) {
  std::vector<std::string_view> segments;
  std::vector<MediaKind> kinds;
  for (size_t pos = 0;;) {
    const Mark m = next_mark(text, pos);
    segments.push_back(text.substr(pos, m.at == std::string_view::npos ? std::string_view::npos : m.at - pos));
    if (m.at == std::string_view::npos) break;
    kinds.push_back(m.kind);
    pos = m.at + placeholder(m.kind).size();
  }
  if (kinds.size() != blocks.size())
    throw std::invalid_argument("the prompt marks " + std::to_string(kinds.size()) + " media position(s), " + std::to_string(blocks.size()) +
                                " given");
  for (size_t i = 0; i < kinds.size(); ++i)
    if (kinds[i] != blocks[i].kind)
      throw std::invalid_argument("media position " + std::to_string(i) + " is marked for an " + noun(kinds[i]) + " but holds an " +
                                  noun(blocks[i].kind));
  const int64_t width = blocks.empty() ? 0 : blocks[0].width;
  for (const MediaRows& b : blocks)
    if (b.width <= 0 || b.width != width || b.soft.empty() || b.soft.size() % static_cast<size_t>(width) != 0 ||
        b.end_row.size() != static_cast<size_t>(width))
      throw std::invalid_argument("media rows are not whole vectors of one width");
  const std::optional<int32_t> start[2] = {tok.find_token(std::string(start_piece(MediaKind::Image))),
                                           tok.find_token(std::string(start_piece(MediaKind::Audio)))};
  InputRows rows;
  for (size_t i = 0; i < segments.size(); ++i) {
    std::string seg(i > 0 ? "\n\n" : "");
    seg += segments[i];
    const std::optional<int32_t>* start_id = i < blocks.size() ? &start[blocks[i].kind == MediaKind::Image ? 0 : 1] : nullptr;
    if (start_id) {
      seg += "\n\n";
      if (!*start_id) seg += start_piece(blocks[i].kind);
    }
    rows.push_tokens(tok.encode(seg, add_bos && i == 0, true));
    if (!start_id) break;
    if (*start_id) rows.push_token(**start_id);
    rows.push_vectors(blocks[i].soft, width);
    rows.push_vectors(blocks[i].end_row, width);
  }
  return rows;
}

std::string media_then_text(size_t n_images, size_t n_audio_blocks, std::string_view text) {
  std::string s;
  for (size_t i = 0; i < n_images; ++i) s += kImagePlaceholder;
  for (size_t i = 0; i < n_audio_blocks; ++i) s += kAudioPlaceholder;
  s += trim(text);  // HF trims each text item
  return s;
}

}  // namespace g3n::chat
