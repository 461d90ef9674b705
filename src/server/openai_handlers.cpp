// The OpenAI-compatible /v1 endpoints.
#include <chrono>
#include <ctime>

#include "server/generation.h"
#include "server/handlers.h"
#include "server/media.h"
#include "server/options.h"
#include "server/requests.h"
#include "store/model_store.h"

namespace g3n::server {
namespace {

using json = nlohmann::json;

// The response writer shared by /v1/chat/completions and /v1/completions.
std::shared_ptr<OpenAIOutput> openai_output(ServerState& s, const OpenAIRequest& r, const LoadedModel& m) {
  auto out = std::make_shared<OpenAIOutput>();
  out->chat = r.chat;
  out->model = r.model;
  out->id = std::string(r.chat ? "chatcmpl-" : "cmpl-") + std::to_string(s.random_u64() % 1000000);
  out->created = static_cast<int64_t>(std::time(nullptr));
  out->include_usage = r.include_usage;
  if (r.chat && r.tools.active())
    for (int i = 0; i < r.n; ++i) out->tools.push_back(std::make_shared<ToolCallOutput>(s.random_u64()));
  out->tok = m.tok.get();
  out->logprobs = r.logprobs;
  return out;
}

void generate(ServerState& s, const HttpRequest& req, HttpResponse& res, const OpenAIRequest& r) {
  double load_s = 0;
  auto lease = s.models.acquire(r.model, r.keep_alive, &load_s);
  LoadedModel& m = **lease;
  const Parameters params = request_parameters(s.cfg, m, r.options);
  const ContextParams cp = context_params(m, params);
  const bool tools = r.chat && r.tools.active();
  BuiltPrompt bp = r.chat ? build_chat_prompt(r.messages, m.resolved.system, tools ? &r.tools.tools : nullptr, *m.tok, cp.n_ctx, true,
                                              media_shape(m, has_media(r.messages, chat::MediaKind::Image), has_media(r.messages, chat::MediaKind::Audio)))
                          : build_generate_prompt(r.prompt, m.resolved.system, false, {}, *m.tok, cp.n_ctx, true);
  respond(s, res, submit(s, std::move(lease), load_s, req, std::move(bp), params, r.format, openai_output(s, r, m), tools ? r.tools.grammar() : nullptr,
                         r.n),
          r.stream);
}

}  // namespace

void openai_chat(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  generate(s, req, res, parse_openai_chat(parse_json_body(req.body), req.body));
}

void openai_completions(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  generate(s, req, res, parse_openai_completion(parse_json_body(req.body), req.body));
}

void openai_models(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  store::ModelStore st(s.cfg.store);
  json data = json::array();
  const std::string wanted = req.params.empty() ? std::string() : req.params[0];
  for (const auto& e : st.list()) {
    json m{{"id", e.name.display()},
           {"object", "model"},
           {"created", std::chrono::duration_cast<std::chrono::seconds>(to_system_time(e.modified).time_since_epoch()).count()},
           {"owned_by", e.name.ns}};
    if (!wanted.empty()) {
      store::ModelName w;
      if (store::try_parse_model_name(wanted, &w) && w.same_as(e.name)) {
        m["id"] = wanted;
        set_json(res, 200, m);
        return;
      }
      continue;
    }
    data.push_back(m);
  }
  if (!wanted.empty()) throw HttpError(404, "model '" + wanted + "' not found");
  set_json(res, 200, json{{"object", "list"}, {"data", data}});
}

}  // namespace g3n::server
