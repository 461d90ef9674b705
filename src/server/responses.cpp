#include "server/responses.h"

#include <chrono>
#include <ctime>
#include <new>

#include "server/logprob_responses.h"
#include "server/model_manager.h"
#include "server/options.h"
#include "store/model_name.h"

namespace g3n::server {
namespace {

using json = nlohmann::json;
using SysClock = std::chrono::system_clock;

int64_t to_ns(double seconds) { return static_cast<int64_t>(seconds * 1e9); }

// "cancel" is ours; the APIs have no name for it.
// Ollama's done_reason ("stop" or "length"); none for a cancelled or failed request.
std::string done_reason(const GenerateStats& st) {
  return st.done_reason == DoneReason::Stop || st.done_reason == DoneReason::Length ? done_reason_name(st.done_reason) : "";
}

void add_timings(json& j, const GenerateStats& st, double load_s, double total_s, int truncated) {
  j["done"] = true;
  if (!done_reason(st).empty()) j["done_reason"] = done_reason(st);
  auto put = [&](const char* k, int64_t v) {
    if (v != 0) j[k] = v;  // Go's omitempty
  };
  put("total_duration", to_ns(total_s));
  put("load_duration", to_ns(load_s));
  put("prompt_eval_count", st.prompt_tokens);
  put("prompt_eval_duration", to_ns(st.prompt_s));
  put("eval_count", st.gen_tokens);
  put("eval_duration", to_ns(st.gen_s));
  if (truncated > 0) j["prompt_truncated"] = truncated;  // ours: how much of the prompt was cut to fit
}

// The prompt is read once for all choices; completion_tokens counts every choice's tokens.
json usage_json(std::span<const ChoiceResult> choices) {
  const GenerateStats& first = choices.front().stats;
  int completion = 0;
  for (const ChoiceResult& c : choices) completion += c.stats.gen_tokens;
  return json{{"prompt_tokens", first.prompt_tokens}, {"completion_tokens", completion},
              {"total_tokens", first.prompt_tokens + completion},
              {"prompt_tokens_details", {{"cached_tokens", first.cached_tokens}}}};
}

json finish_reason(const GenerateStats& st) {
  const std::string r = done_reason(st);
  return r.empty() ? json(nullptr) : json(r);
}

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }
std::string ndjson(const json& j) { return dump(j) + "\n"; }

}  // namespace

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void set_json(HttpResponse& res, int status, const json& body) {
  res.status = status;
  res.content_type = "application/json; charset=utf-8";
  res.body = dump(body);
}

json error_body(ErrorStyle style, int status, const std::string& msg) {
  if (style == ErrorStyle::Ollama) return json{{"error", msg}};
  const char* type = status == 404 ? "not_found_error" : status < 500 ? "invalid_request_error" : "api_error";
  return json{{"error", {{"message", msg}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}};
}

void set_error(HttpResponse& res, ErrorStyle style, int status, const std::string& msg) {
  set_json(res, status, error_body(style, status, msg));
}

std::pair<int, std::string> error_status(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const HttpError& x) {
    return {x.status(), x.what()};
  } catch (const ModelNotFound& x) {
    return {404, x.what()};
  } catch (const store::NameError& x) {
    return {400, x.what()};
  } catch (const nlohmann::json::type_error& x) {
    // A request field of the wrong type, read with json::value() or get(): the request's fault, not the server's.
    const std::string what = x.what();
    const size_t tag = what.find("] ");
    return {400, "invalid request: a field has the wrong type (" + (tag == std::string::npos ? what : what.substr(tag + 2)) + ")"};
  } catch (const std::bad_alloc&) {
    return {500, "out of memory"};
  } catch (const std::exception& x) {
    return {500, x.what()};
  } catch (...) {
    return {500, "internal error"};
  }
}

// ---- /api/generate ----

json OllamaGenerateOutput::final_object(const std::string& text, const GenerateStats& st, double load_s, double total_s) const {
  json j{{"model", model}, {"created_at", rfc3339(SysClock::now())}, {"response", text}};
  add_timings(j, st, load_s, total_s, truncated);
  if (with_context) {
    std::vector<int32_t> ctx = prompt;
    ctx.insert(ctx.end(), st.generated.begin(), st.generated.end());
    j["context"] = ctx;
  }
  return j;
}

std::string OllamaGenerateOutput::chunk(const Piece& p) {
  json j{{"model", model}, {"created_at", rfc3339(SysClock::now())}, {"response", p.text}, {"done", false}};
  if (tok && !p.logprobs.empty()) j["logprobs"] = ollama_logprobs(*tok, p.logprobs);
  return ndjson(j);
}

std::string OllamaGenerateOutput::last_chunks(std::span<const ChoiceResult> choices, double load_s, double total_s) {
  return ndjson(final_object("", choices.front().stats, load_s, total_s));
}

std::string OllamaGenerateOutput::stream_error(const std::string& msg) { return ndjson(json{{"error", msg}}); }

json OllamaGenerateOutput::whole(std::span<const ChoiceResult> choices, double load_s, double total_s) {
  const ChoiceResult& c = choices.front();
  json j = final_object(c.text, c.stats, load_s, total_s);
  if (tok && logprobs.enabled) j["logprobs"] = ollama_logprobs(*tok, c.stats.logprobs);
  return j;
}

// ---- /api/chat ----

namespace {
json chat_object(const std::string& model, const std::string& text) {
  return json{{"model", model}, {"created_at", rfc3339(SysClock::now())}, {"message", {{"role", "assistant"}, {"content", text}}}};
}
}  // namespace

std::string OllamaChatOutput::chunk(const Piece& p) {
  if (tools) return tool_chunks(tools->push(p.text), p.logprobs);
  json j = chat_object(model, p.text);
  if (tok && !p.logprobs.empty()) j["logprobs"] = ollama_logprobs(*tok, p.logprobs);
  j["done"] = false;
  return ndjson(j);
}

// Content as it comes; each call in a chunk of its own as soon as it is complete, as Ollama streams them.
// The tokens' logprobs ride on the first chunk written, or on a chunk of their own while the parser holds the text.
std::string OllamaChatOutput::tool_chunks(const chat::ToolCallParser::Update& u, const std::vector<LogprobStep>& lp) const {
  std::string out;
  bool lp_sent = !tok || lp.empty();
  const auto with_logprobs = [&](json& j) {
    if (!lp_sent) j["logprobs"] = ollama_logprobs(*tok, lp);
    lp_sent = true;
  };
  if (!u.content.empty()) {
    json j = chat_object(model, u.content);
    with_logprobs(j);
    j["done"] = false;
    out += ndjson(j);
  }
  if (!u.calls.empty()) {
    json j = chat_object(model, "");
    j["message"]["tool_calls"] = tools->ollama(u.calls, tools->count() - static_cast<int>(u.calls.size()));
    with_logprobs(j);
    j["done"] = false;
    out += ndjson(j);
  }
  if (!lp_sent) {
    json j = chat_object(model, "");
    with_logprobs(j);
    j["done"] = false;
    out += ndjson(j);
  }
  return out;
}

std::string OllamaChatOutput::last_chunks(std::span<const ChoiceResult> choices, double load_s, double total_s) {
  std::string out = tools ? tool_chunks(tools->finish(), {}) : std::string();
  json j = chat_object(model, "");
  add_timings(j, choices.front().stats, load_s, total_s, truncated);
  return out + ndjson(j);
}

std::string OllamaChatOutput::stream_error(const std::string& msg) { return ndjson(json{{"error", msg}}); }

json OllamaChatOutput::whole(std::span<const ChoiceResult> choices, double load_s, double total_s) {
  const ChoiceResult& c = choices.front();
  json j = chat_object(model, c.text);
  if (tools) {
    auto u = tools->push(c.text);
    const auto rest = tools->finish();
    j["message"]["content"] = u.content + rest.content;
    if (!u.calls.empty()) j["message"]["tool_calls"] = tools->ollama(u.calls, 0);
  }
  if (tok && logprobs.enabled) j["logprobs"] = ollama_logprobs(*tok, c.stats.logprobs);
  add_timings(j, c.stats, load_s, total_s, truncated);
  return j;
}

// ---- /v1 ----

json OpenAIOutput::head(bool chunked) const {
  return json{{"id", id},
              {"object", chat ? (chunked ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
              {"created", chunked ? static_cast<int64_t>(std::time(nullptr)) : created},
              {"model", model},
              {"system_fingerprint", "fp_ollama"}};
}

json OpenAIOutput::choice(int index, const std::string& text, const json& reason) const {
  if (chat) return json{{"index", index}, {"delta", {{"role", "assistant"}, {"content", text}}}, {"finish_reason", reason}};
  return json{{"index", index}, {"text", text}, {"finish_reason", reason}, {"logprobs", nullptr}};
}

// The choice's logprobs object for these tokens (chat: {"content": [...]}; completions: the four lists).
json OpenAIOutput::logprobs_json(int index, std::span<const LogprobStep> steps) {
  if (!tok || !logprobs.enabled) return nullptr;
  if (chat) return openai_chat_logprobs(*tok, steps);
  if (text_offsets_.size() <= static_cast<size_t>(index)) text_offsets_.resize(static_cast<size_t>(index) + 1, 0);
  return openai_completion_logprobs(*tok, steps, text_offsets_[static_cast<size_t>(index)]);
}

json OpenAIOutput::finish_reason(int index, const GenerateStats& st) const {
  const bool called = static_cast<size_t>(index) < tools.size() && tools[static_cast<size_t>(index)]->count() > 0;
  if (called && st.done_reason == DoneReason::Stop) return "tool_calls";
  return server::finish_reason(st);
}

// Content deltas as they come; each complete call as one delta.tool_calls entry with its index, id,
// name and whole arguments (clients append arguments by index, so one piece is as good as many). The
// tokens' logprobs ride on the first chunk written, or on an empty delta while the parser holds the text.
std::string OpenAIOutput::tool_chunks(int index, const chat::ToolCallParser::Update& u, const std::vector<LogprobStep>& lp) {
  const ToolCallOutput& calls = *tools[static_cast<size_t>(index)];
  std::string out;
  bool lp_sent = lp.empty() || !tok || !logprobs.enabled;
  const auto with_logprobs = [&](json& c) {
    if (!lp_sent) c["logprobs"] = logprobs_json(index, lp);
    lp_sent = true;
  };
  if (!u.content.empty()) {
    json j = head(true);
    json c = choice(index, u.content, nullptr);
    with_logprobs(c);
    j["choices"] = json::array({c});
    out += sse(j);
  }
  if (!u.calls.empty()) {
    json j = head(true);
    const int first = calls.count() - static_cast<int>(u.calls.size());
    json c{{"index", index}, {"delta", {{"role", "assistant"}, {"tool_calls", calls.openai(u.calls, first, true)}}}, {"finish_reason", nullptr}};
    with_logprobs(c);
    j["choices"] = json::array({c});
    out += sse(j);
  }
  if (!lp_sent) {
    json j = head(true);
    json c{{"index", index}, {"delta", json::object()}, {"finish_reason", nullptr}};
    with_logprobs(c);
    j["choices"] = json::array({c});
    out += sse(j);
  }
  return out;
}

std::string OpenAIOutput::chunk(const Piece& p) {
  if (static_cast<size_t>(p.index) < tools.size()) return tool_chunks(p.index, tools[static_cast<size_t>(p.index)]->push(p.text), p.logprobs);
  json j = head(true);
  json c = choice(p.index, p.text, nullptr);
  if (!p.logprobs.empty() && logprobs.enabled) c["logprobs"] = logprobs_json(p.index, p.logprobs);
  j["choices"] = json::array({c});
  return sse(j);
}

std::string OpenAIOutput::last_chunks(std::span<const ChoiceResult> choices, double, double) {
  std::string out;
  for (size_t i = 0; i < choices.size(); ++i) {
    const int index = static_cast<int>(i);
    if (i < tools.size()) out += tool_chunks(index, tools[i]->finish(), {});
    json j = head(true);
    j["choices"] = json::array({choice(index, "", finish_reason(index, choices[i].stats))});
    out += sse(j);
  }
  if (include_usage) {
    json u = head(true);
    u["choices"] = json::array();
    u["usage"] = usage_json(choices);
    out += sse(u);
  }
  return out + "data: [DONE]\n\n";
}

std::string OpenAIOutput::stream_error(const std::string& msg) {
  return sse(json{{"error", {{"message", msg}, {"type", "api_error"}, {"param", nullptr}, {"code", nullptr}}}}) + "data: [DONE]\n\n";
}

json OpenAIOutput::whole(std::span<const ChoiceResult> choices, double, double) {
  json j = head(false);
  j["choices"] = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const int index = static_cast<int>(i);
    const ChoiceResult& r = choices[i];
    json c{{"index", index}};
    if (chat && i < tools.size()) {
      auto u = tools[i]->push(r.text);
      const auto rest = tools[i]->finish();
      const std::string content = u.content + rest.content;
      json message{{"role", "assistant"}, {"content", content.empty() && !u.calls.empty() ? json(nullptr) : json(content)}};
      if (!u.calls.empty()) message["tool_calls"] = tools[i]->openai(u.calls, 0, false);
      c["message"] = message;
    } else if (chat) {
      c["message"] = {{"role", "assistant"}, {"content", r.text}};
    } else {
      c["text"] = r.text;
    }
    c["finish_reason"] = finish_reason(index, r.stats);
    c["logprobs"] = logprobs_json(index, r.stats.logprobs);
    j["choices"].push_back(std::move(c));
  }
  j["usage"] = usage_json(choices);
  return j;
}

}  // namespace g3n::server
