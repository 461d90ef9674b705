#include "server/prompt.h"

#include <algorithm>
#include <functional>

#include "chat/image_prompt.h"
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

size_t count_placeholders(std::string_view text) {
  size_t n = 0;
  for (size_t at = text.find(chat::kImagePlaceholder); at != std::string_view::npos;
       at = text.find(chat::kImagePlaceholder, at + chat::kImagePlaceholder.size()))
    ++n;
  return n;
}

void require_projector(ImageShape shape) {
  if (shape.rows <= 0) throw HttpError(400, "model has no vision projector: images need a model created with one (g3n create NAME --from MODEL.gguf --mmproj MMPROJ.gguf)");
}

// The rendered text must mark exactly the images it is given (a message's text that spells the marker
// itself would shift every image after it).
void check_marks(std::string_view text, size_t n_images) {
  const size_t marks = count_placeholders(text);
  if (marks != n_images)
    throw HttpError(400, "the prompt marks " + std::to_string(marks) + " image position(s) for " + std::to_string(n_images) +
                             " image(s): the text may not contain \"" + std::string(chat::kImagePlaceholder) +
                             "\", which marks where an image goes");
}

// Rows the prompt takes once its images are laid out (the layout's own count, with 1-wide stand-ins for
// the image rows, so nothing is encoded to measure it).
size_t count_rows(const Tokenizer& tok, std::string_view text, size_t n_images, ImageShape shape, bool add_bos) {
  const std::vector<float> soft(static_cast<size_t>(shape.soft_rows), 0.0f);
  static const float end_row = 0.0f;
  const std::vector<chat::ImageRows> stand_ins(n_images, chat::ImageRows{soft, std::span<const float>(&end_row, 1), 1});
  return chat::layout_image_prompt(tok, text, stand_ins, add_bos).size();
}

[[noreturn]] void image_overflow(size_t rows, size_t n_images, ImageShape shape, int n_ctx) {
  throw HttpError(400, "the prompt needs " + std::to_string(rows) + " rows (" + std::to_string(n_images) + " image(s) of " +
                           std::to_string(shape.rows) + " rows each, and " + std::to_string(rows - n_images * static_cast<size_t>(shape.rows)) +
                           " of text) but num_ctx is " + std::to_string(n_ctx) +
                           "; images are never cut: raise num_ctx, or send fewer images or a shorter conversation");
}

// A conversation with images: turns are dropped as chat::fit_to_context drops them (oldest pairs first,
// the system prompt and the last turn kept), images with their turns; text is never cut inside the rest.
BuiltPrompt fit_image_chat(const std::vector<chat::Message>& msgs, const std::vector<std::vector<ImageInput>>& images,
                           const Tokenizer& tok, int n_ctx, bool truncate, ImageShape shape) {
  const size_t first = !msgs.empty() && msgs[0].role == chat::Role::System ? 1 : 0;
  BuiltPrompt b;
  b.image_rows = static_cast<size_t>(shape.rows);
  size_t rows = 0;
  const auto render = [&](size_t from) {
    std::vector<chat::Message> kept(msgs.begin(), msgs.begin() + static_cast<std::ptrdiff_t>(first));
    b.images.clear();
    for (size_t i = 0; i < first; ++i) b.images.insert(b.images.end(), images[i].begin(), images[i].end());
    for (size_t i = first + from; i < msgs.size(); ++i) {
      kept.push_back(msgs[i]);
      b.images.insert(b.images.end(), images[i].begin(), images[i].end());
    }
    b.text = chat::render_prompt(kept);
    check_marks(b.text, b.images.size());
    rows = count_rows(tok, b.text, b.images.size(), shape, true);
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
  if (static_cast<int64_t>(rows) >= n_ctx) image_overflow(rows, b.images.size(), shape, n_ctx);
  b.dropped_turns = from;
  if (b.images.empty()) {  // the turns that held images were dropped: an ordinary text prompt now
    b.rows = InputRows(tok.encode(b.text, true, true));
    b.text.clear();
  }
  return b;
}

}  // namespace

BuiltPrompt build_chat_prompt(const std::vector<InMessage>& messages, const std::optional<std::string>& default_system,
                              const std::vector<chat::ToolSpec>* tools, const Tokenizer& tok, int n_ctx, bool truncate, ImageShape image) {
  std::string system;
  bool has_system = false;
  std::vector<chat::Message> turns;
  std::vector<ImageInput> system_images;
  std::vector<std::vector<ImageInput>> turn_images;
  size_t n_images = 0;
  for (const auto& m : messages) {
    n_images += m.images.size();
    if (m.role == "system") {
      if (has_system) system += "\n\n";
      system += m.content;
      has_system = true;
      system_images.insert(system_images.end(), m.images.begin(), m.images.end());
      continue;
    }
    const chat::Role role = m.role == "assistant" || m.role == "model" ? chat::Role::Model : chat::Role::User;
    // Gemma alternates user/model strictly: consecutive messages of one side become one turn.
    if (!turns.empty() && turns.back().role == role) {
      turns.back().content += "\n\n" + m.content;
      turn_images.back().insert(turn_images.back().end(), m.images.begin(), m.images.end());
    } else {
      turns.push_back({role, m.content});
      turn_images.push_back(m.images);
    }
  }
  if (n_images > 0) require_projector(image);
  if (!has_system && default_system) system = *default_system;
  // Gemma has no system turn: this text, and so the tools, open the first user turn.
  if (tools && !tools->empty()) system += (system.empty() ? "" : "\n\n") + chat::tools_preamble(*tools);
  if (turns.empty() || turns.front().role != chat::Role::User) {
    turns.insert(turns.begin(), {chat::Role::User, ""});
    turn_images.insert(turn_images.begin(), {});
  }
  std::vector<chat::Message> msgs;
  std::vector<std::vector<ImageInput>> msg_images;
  if (!system.empty() || !system_images.empty()) {
    msgs.push_back({chat::Role::System, system});
    msg_images.push_back(std::move(system_images));
  }
  msgs.insert(msgs.end(), turns.begin(), turns.end());
  msg_images.insert(msg_images.end(), turn_images.begin(), turn_images.end());
  if (n_images > 0) return fit_image_chat(msgs, msg_images, tok, n_ctx, truncate, image);
  return from_tokens(fit([&](chat::FitOptions o) { return chat::fit_to_context(msgs, tok, n_ctx, o); }, truncate));
}

BuiltPrompt build_generate_prompt(const std::string& prompt, const std::optional<std::string>& system, bool raw,
                                  const std::vector<int32_t>& context, const Tokenizer& tok, int n_ctx, bool truncate,
                                  const std::vector<ImageInput>& images, ImageShape image) {
  // Verbatim (raw), but a prompt that spells out <bos> itself does not get a second one.
  const bool raw_bos = raw && prompt.rfind("<bos>", 0) == 0;
  if (!images.empty()) {
    require_projector(image);
    BuiltPrompt b;
    b.images = images;
    b.image_rows = static_cast<size_t>(image.rows);
    b.prefix = context;
    if (raw) {
      // The prompt marks where the images go; one that marks none gets them first (after its <bos>).
      b.text = prompt;
      if (count_placeholders(b.text) == 0) {
        std::string marks;
        for (size_t i = 0; i < images.size(); ++i) marks += chat::kImagePlaceholder;
        b.text.insert(raw_bos ? 5 : 0, marks);
      }
      b.add_bos = context.empty() && !raw_bos;
    } else {
      std::vector<chat::Message> msgs;
      if (system && !system->empty()) msgs.push_back({chat::Role::System, *system});
      msgs.push_back({chat::Role::User, chat::images_then_text(images.size(), prompt)});
      b.text = chat::format_gemma(msgs, true);
      b.add_bos = context.empty();
    }
    check_marks(b.text, images.size());
    const size_t rows = context.size() + count_rows(tok, b.text, images.size(), image, b.add_bos);
    if (static_cast<int64_t>(rows) >= n_ctx) image_overflow(rows, images.size(), image, n_ctx);
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
