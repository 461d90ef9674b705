#include "server/prompt.h"

#include <algorithm>
#include <functional>

#include "audio/clip.h"
#include "chat/media_prompt.h"
#include "server/options.h"
#include "tokenizer/tokenizer.h"

namespace g3n::server {
namespace {

chat::FitOptions fit_options(bool truncate) { return {.drop_turns = truncate, .cut_tokens = truncate}; }

chat::FittedPrompt fit(const std::function<chat::FittedPrompt(chat::FitOptions)>& f, bool truncate) {
  try {
    return f(fit_options(truncate));
  } catch (const chat::ContextOverflow& e) {
    throw HttpError(400, "input length (" + std::to_string(e.tokens) + " tokens) exceeds the context length (" + std::to_string(e.n_ctx) + ")");
  }
}

BuiltPrompt from_tokens(chat::FittedPrompt f) {
  BuiltPrompt b;
  b.rows = InputRows(f.tokens);
  b.dropped_turns = f.dropped_turns;
  b.dropped_tokens = f.dropped_tokens;
  return b;
}

size_t count_marks(std::string_view text, chat::MediaKind kind) {
  size_t n = 0;
  for (chat::MediaKind k : chat::find_placeholders(text)) n += k == kind;
  return n;
}

struct BlockCounts {
  size_t images = 0, audio = 0;
};

BlockCounts count_blocks(const std::vector<MediaInput>& media) {
  BlockCounts c;
  for (const MediaInput& m : media) (m.kind == chat::MediaKind::Image ? c.images : c.audio) += m.blocks();
  return c;
}

void require_towers(const std::vector<MediaInput>& media, MediaShape shape) {
  const BlockCounts c = count_blocks(media);
  if (c.images > 0 && shape.image_rows <= 0)
    throw HttpError(400, "model has no vision projector: images need a model created with one (g3n create NAME --from MODEL.gguf --mmproj MMPROJ.gguf)");
  if (c.audio > 0 && shape.audio_rows <= 0)
    throw HttpError(400, "model has no audio encoder: audio needs a model created with a projector that has one (g3n create NAME --from "
                         "MODEL.gguf --mmproj MMPROJ.gguf)");
}

// The rendered text must mark exactly the blocks it is given (a message's text that spells a marker
// itself would shift every block after it).
void check_marks(std::string_view text, const std::vector<MediaInput>& media) {
  const BlockCounts c = count_blocks(media);
  const size_t images = count_marks(text, chat::MediaKind::Image), audio = count_marks(text, chat::MediaKind::Audio);
  if (images != c.images)
    throw HttpError(400, "the prompt marks " + std::to_string(images) + " image position(s) for " + std::to_string(c.images) +
                             " image(s): the text may not contain \"" + std::string(chat::kImagePlaceholder) + "\", which marks where an image goes");
  if (audio != c.audio)
    throw HttpError(400, "the prompt marks " + std::to_string(audio) + " audio position(s) for " + std::to_string(c.audio) +
                             " 30-second audio block(s): the text may not contain \"" + std::string(chat::kAudioPlaceholder) +
                             "\", which marks where audio goes");
}

// Rows the prompt takes once its media are laid out (the layout's own count, with 1-wide stand-ins for
// the vector rows, so nothing is encoded to measure it).
size_t count_rows(const Tokenizer& tok, std::string_view text, MediaShape shape, bool add_bos) {
  const std::vector<float> image_soft(static_cast<size_t>(std::max<int64_t>(shape.image_soft_rows, 1)), 0.0f);
  const std::vector<float> audio_soft(static_cast<size_t>(std::max<int64_t>(shape.audio_soft_rows, 1)), 0.0f);
  static const float end_row = 0.0f;
  std::vector<chat::MediaRows> stand_ins;
  for (chat::MediaKind kind : chat::find_placeholders(text))
    stand_ins.push_back({kind, kind == chat::MediaKind::Image ? image_soft : audio_soft, std::span<const float>(&end_row, 1), 1});
  return chat::layout_media_prompt(tok, text, stand_ins, add_bos).size();
}

[[noreturn]] void media_overflow(size_t rows, const std::vector<MediaInput>& media, MediaShape shape, int n_ctx) {
  const BlockCounts c = count_blocks(media);
  const size_t media_rows = c.images * static_cast<size_t>(shape.image_rows) + c.audio * static_cast<size_t>(shape.audio_rows);
  std::string what;
  if (c.images > 0) what += std::to_string(c.images) + " image(s) of " + std::to_string(shape.image_rows) + " rows each, ";
  if (c.audio > 0) what += std::to_string(c.audio) + " 30-second audio block(s) of " + std::to_string(shape.audio_rows) + " rows each, ";
  std::string fit;
  if (c.audio > 0 && shape.audio_rows > 0) {
    // What the context holds beside the text and the images: whole 30 s blocks of audio.
    const int64_t room = static_cast<int64_t>(n_ctx) - 1 - static_cast<int64_t>(rows - c.audio * static_cast<size_t>(shape.audio_rows));
    const int64_t blocks = room > 0 ? room / shape.audio_rows : 0;
    fit = "; num_ctx " + std::to_string(n_ctx) + " holds " + std::to_string(blocks * 30) + " seconds of audio beside this text";
  }
  throw HttpError(400, "the prompt needs " + std::to_string(rows) + " rows (" + what + "and " + std::to_string(rows - media_rows) +
                           " of text) but num_ctx is " + std::to_string(n_ctx) + fit +
                           "; images and audio are never cut: raise num_ctx, or send fewer or shorter media or a shorter conversation");
}

// A conversation with media: turns are dropped as chat::fit_to_context drops them (oldest pairs first, the
// system prompt and the last turn kept), media with their turns; text is never cut inside the rest.
BuiltPrompt fit_media_chat(const std::vector<chat::Message>& msgs, const std::vector<std::vector<MediaInput>>& media,
                           const Tokenizer& tok, int n_ctx, bool truncate, MediaShape shape) {
  const size_t first = !msgs.empty() && msgs[0].role == chat::Role::System ? 1 : 0;
  BuiltPrompt b;
  size_t rows = 0;
  const auto render = [&](size_t from) {
    std::vector<chat::Message> kept(msgs.begin(), msgs.begin() + static_cast<std::ptrdiff_t>(first));
    b.media.clear();
    for (size_t i = 0; i < first; ++i) b.media.insert(b.media.end(), media[i].begin(), media[i].end());
    for (size_t i = first + from; i < msgs.size(); ++i) {
      kept.push_back(msgs[i]);
      b.media.insert(b.media.end(), media[i].begin(), media[i].end());
    }
    b.text = chat::render_prompt(kept);
    check_marks(b.text, b.media);
    rows = count_rows(tok, b.text, shape, true);
  };
  size_t from = 0;
  render(from);
  if (static_cast<int64_t>(rows) >= n_ctx && truncate) {
    const size_t turns = msgs.size() - first;
    while (turns - from >= 3 && static_cast<int64_t>(rows) > chat::prompt_budget(n_ctx)) {
      from += 2;
      render(from);
    }
  }
  if (static_cast<int64_t>(rows) >= n_ctx) media_overflow(rows, b.media, shape, n_ctx);
  b.dropped_turns = from;
  if (b.media.empty()) {  // the turns that held media were dropped: an ordinary text prompt now
    b.rows = InputRows(tok.encode(b.text, true, true));
    b.text.clear();
  }
  return b;
}

}  // namespace

size_t MediaInput::blocks() const {
  if (kind == chat::MediaKind::Image) return 1;
  return wave ? static_cast<size_t>(audio_chunk_count(static_cast<int64_t>(wave->samples.size()))) : 0;
}

bool has_media(const std::vector<InMessage>& messages, chat::MediaKind kind) {
  for (const auto& m : messages)
    for (const auto& x : m.media)
      if (x.kind == kind) return true;
  return false;
}

BuiltPrompt build_chat_prompt(const std::vector<InMessage>& messages, const std::optional<std::string>& default_system,
                              const std::vector<chat::ToolSpec>* tools, const Tokenizer& tok, int n_ctx, bool truncate, MediaShape shape) {
  std::string system;
  bool has_system = false;
  std::vector<chat::Message> turns;
  std::vector<MediaInput> system_images;
  std::vector<std::vector<MediaInput>> turn_images;
  std::vector<MediaInput> all_media;
  for (const auto& m : messages) {
    all_media.insert(all_media.end(), m.media.begin(), m.media.end());
    if (m.role == "system") {
      if (has_system) system += "\n\n";
      system += m.content;
      has_system = true;
      system_images.insert(system_images.end(), m.media.begin(), m.media.end());
      continue;
    }
    const chat::Role role = m.role == "assistant" || m.role == "model" ? chat::Role::Model : chat::Role::User;
    // Gemma alternates user/model strictly: consecutive messages of one side become one turn.
    if (!turns.empty() && turns.back().role == role) {
      turns.back().content += "\n\n" + m.content;
      turn_images.back().insert(turn_images.back().end(), m.media.begin(), m.media.end());
    } else {
      turns.push_back({role, m.content});
      turn_images.push_back(m.media);
    }
  }
  require_towers(all_media, shape);
  if (!has_system && default_system) system = *default_system;
  // Gemma has no system turn: this text, and so the tools, open the first user turn.
  if (tools && !tools->empty()) system += (system.empty() ? "" : "\n\n") + chat::tools_preamble(*tools);
  if (turns.empty() || turns.front().role != chat::Role::User) {
    turns.insert(turns.begin(), {chat::Role::User, ""});
    turn_images.insert(turn_images.begin(), {});
  }
  std::vector<chat::Message> msgs;
  std::vector<std::vector<MediaInput>> msg_images;
  if (!system.empty() || !system_images.empty()) {
    msgs.push_back({chat::Role::System, system});
    msg_images.push_back(std::move(system_images));
  }
  msgs.insert(msgs.end(), turns.begin(), turns.end());
  msg_images.insert(msg_images.end(), turn_images.begin(), turn_images.end());
  if (!all_media.empty()) return fit_media_chat(msgs, msg_images, tok, n_ctx, truncate, shape);
  return from_tokens(fit([&](chat::FitOptions o) { return chat::fit_to_context(msgs, tok, n_ctx, o); }, truncate));
}

BuiltPrompt build_generate_prompt(const std::string& prompt, const std::optional<std::string>& system, bool raw,
                                  const std::vector<int32_t>& context, const Tokenizer& tok, int n_ctx, bool truncate,
                                  const std::vector<MediaInput>& media, MediaShape shape) {
  // Verbatim (raw), but a prompt that spells out <bos> itself does not get a second one.
  const bool raw_bos = raw && prompt.rfind("<bos>", 0) == 0;
  if (!media.empty()) {
    require_towers(media, shape);
    const BlockCounts c = count_blocks(media);
    BuiltPrompt b;
    b.media = media;
    b.prefix = context;
    if (raw) {
      // The prompt marks where the media go; one that marks none gets them first (after its <bos>).
      b.text = prompt;
      if (chat::find_placeholders(b.text).empty()) b.text.insert(raw_bos ? 5 : 0, chat::media_then_text(c.images, c.audio, ""));
      b.add_bos = context.empty() && !raw_bos;
    } else {
      std::vector<chat::Message> msgs;
      if (system && !system->empty()) msgs.push_back({chat::Role::System, *system});
      msgs.push_back({chat::Role::User, chat::media_then_text(c.images, c.audio, prompt)});
      b.text = chat::format_gemma(msgs, true);
      b.add_bos = context.empty();
    }
    check_marks(b.text, media);
    const size_t rows = context.size() + count_rows(tok, b.text, shape, b.add_bos);
    if (static_cast<int64_t>(rows) >= n_ctx) media_overflow(rows, media, shape, n_ctx);
    return b;
  }
  std::vector<int32_t> tokens = context;
  if (raw) {
    auto t = tok.encode(prompt, context.empty() && !raw_bos, true);
    tokens.insert(tokens.end(), t.begin(), t.end());
  } else {
    std::vector<chat::Message> msgs;
    if (system && !system->empty()) msgs.push_back({chat::Role::System, *system});
    msgs.push_back({chat::Role::User, prompt});
    auto t = tok.encode(chat::format_gemma(msgs, true), context.empty(), true);
    tokens.insert(tokens.end(), t.begin(), t.end());
  }
  return from_tokens(fit([&](chat::FitOptions o) { return chat::fit_to_context(std::move(tokens), n_ctx, o); }, truncate));
}

}  // namespace g3n::server
