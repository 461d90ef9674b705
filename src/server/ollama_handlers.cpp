// POST /api/generate and /api/chat.
#include <chrono>

#include "server/generation.h"
#include "server/handlers.h"
#include "server/media.h"
#include "server/options.h"
#include "server/requests.h"

namespace g3n::server {
namespace {
using json = nlohmann::json;

// A request without a prompt only loads the model (or, with keep_alive 0, unloads it).
std::string load_reason(const KeepAlive& k) { return k.unload_now() ? "unload" : "load"; }

// An unload request for a model that is not loaded: nothing to load or unload (Ollama answers it at once). The
// model must still exist (404 otherwise).
bool unloads_a_model_not_loaded(ServerState& s, const std::string& model, const KeepAlive& k) {
  if (!k.unload_now() || s.models.is_loaded(model)) return false;
  (void)s.models.resolve(model);
  return true;
}
}  // namespace

void ollama_generate(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  const GenerateRequest r = parse_generate(parse_json_body(req.body), req.body);
  if (r.prompt.empty() && r.context.empty() && r.media.empty() && unloads_a_model_not_loaded(s, r.model, r.keep_alive)) {
    set_json(res, 200, json{{"model", r.model}, {"created_at", rfc3339(std::chrono::system_clock::now())}, {"response", ""},
                            {"done", true}, {"done_reason", "unload"}});
    return;
  }
  double load_s = 0;
  auto lease = s.models.acquire(r.model, r.keep_alive, &load_s);
  LoadedModel& m = **lease;
  const Parameters params = request_parameters(s.cfg, m, r.options);
  bool images = false, audio = false;
  for (const MediaInput& x : r.media) (x.kind == chat::MediaKind::Image ? images : audio) = true;
  const MediaShape shape = media_shape(m, images, audio);
  if (r.prompt.empty() && r.context.empty() && r.media.empty()) {
    set_json(res, 200, json{{"model", r.model}, {"created_at", rfc3339(std::chrono::system_clock::now())}, {"response", ""},
                            {"done", true}, {"done_reason", load_reason(r.keep_alive)}});
    return;
  }
  for (int32_t t : r.context)
    if (t < 0 || t >= m.tok->n_vocab()) throw HttpError(400, "invalid token id in context: " + std::to_string(t));
  const ContextParams cp = context_params(m, params);
  const std::optional<std::string> system = r.system ? r.system : m.resolved.system;
  BuiltPrompt bp = build_generate_prompt(r.prompt, system, r.raw, r.context, *m.tok, cp.n_ctx, r.truncate, r.media, shape);
  auto out = std::make_shared<OllamaGenerateOutput>();
  out->model = r.model;
  out->with_context = !r.raw && r.media.empty();  // media rows are no token ids: no `context` for them
  if (out->with_context) out->prompt.assign(bp.rows.tokens().begin(), bp.rows.tokens().end());
  out->truncated = static_cast<int>(bp.dropped_tokens);
  out->tok = m.tok.get();
  out->logprobs = r.logprobs;
  respond(s, res, submit(s, std::move(lease), load_s, req, std::move(bp), params, r.format, out), r.stream);
}

void ollama_chat(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  const ChatRequest r = parse_chat(parse_json_body(req.body), req.body);
  if (r.messages.empty() && unloads_a_model_not_loaded(s, r.model, r.keep_alive)) {
    set_json(res, 200, json{{"model", r.model}, {"created_at", rfc3339(std::chrono::system_clock::now())},
                            {"message", {{"role", "assistant"}, {"content", ""}}}, {"done", true}, {"done_reason", "unload"}});
    return;
  }
  double load_s = 0;
  auto lease = s.models.acquire(r.model, r.keep_alive, &load_s);
  LoadedModel& m = **lease;
  const Parameters params = request_parameters(s.cfg, m, r.options);
  if (r.messages.empty()) {
    set_json(res, 200, json{{"model", r.model}, {"created_at", rfc3339(std::chrono::system_clock::now())},
                            {"message", {{"role", "assistant"}, {"content", ""}}}, {"done", true},
                            {"done_reason", load_reason(r.keep_alive)}});
    return;
  }
  const ContextParams cp = context_params(m, params);
  const MediaShape shape = media_shape(m, has_media(r.messages, chat::MediaKind::Image), has_media(r.messages, chat::MediaKind::Audio));
  const bool tools = r.tools.active();
  BuiltPrompt bp = build_chat_prompt(r.messages, m.resolved.system, tools ? &r.tools.tools : nullptr, *m.tok, cp.n_ctx, r.truncate, shape);
  auto out = std::make_shared<OllamaChatOutput>();
  out->model = r.model;
  out->truncated = static_cast<int>(bp.dropped_tokens + bp.dropped_turns);
  if (tools) out->tools = std::make_shared<ToolCallOutput>(s.random_u64());
  out->tok = m.tok.get();
  out->logprobs = r.logprobs;
  respond(s, res, submit(s, std::move(lease), load_s, req, std::move(bp), params, r.format, out, tools ? r.tools.grammar() : nullptr), r.stream);
}

}  // namespace g3n::server
