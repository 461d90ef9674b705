#include "server/responses.h"

#include <chrono>
#include <ctime>
#include <new>

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

json usage_json(const GenerateStats& st) {
  return json{{"prompt_tokens", st.prompt_tokens}, {"completion_tokens", st.gen_tokens},
              {"total_tokens", st.prompt_tokens + st.gen_tokens},
              {"prompt_tokens_details", {{"cached_tokens", st.cached_tokens}}}};
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

std::string OllamaGenerateOutput::chunk(const std::string& text) {
  return ndjson(json{{"model", model}, {"created_at", rfc3339(SysClock::now())}, {"response", text}, {"done", false}});
}

std::string OllamaGenerateOutput::last_chunks(const GenerateStats& st, double load_s, double total_s) {
  return ndjson(final_object("", st, load_s, total_s));
}

std::string OllamaGenerateOutput::stream_error(const std::string& msg) { return ndjson(json{{"error", msg}}); }

json OllamaGenerateOutput::whole(const std::string& text, const GenerateStats& st, double load_s, double total_s) {
  return final_object(text, st, load_s, total_s);
}

// ---- /api/chat ----

namespace {
json chat_object(const std::string& model, const std::string& text) {
  return json{{"model", model}, {"created_at", rfc3339(SysClock::now())}, {"message", {{"role", "assistant"}, {"content", text}}}};
}
}  // namespace

std::string OllamaChatOutput::chunk(const std::string& text) {
  if (tools) return tool_chunks(tools->push(text));
  json j = chat_object(model, text);
  j["done"] = false;
  return ndjson(j);
}

// Content as it comes; each call in a chunk of its own as soon as it is complete, as Ollama streams them.
std::string OllamaChatOutput::tool_chunks(const chat::ToolCallParser::Update& u) const {
  std::string out;
  if (!u.content.empty()) {
    json j = chat_object(model, u.content);
    j["done"] = false;
    out += ndjson(j);
  }
  if (!u.calls.empty()) {
    json j = chat_object(model, "");
    j["message"]["tool_calls"] = tools->ollama(u.calls, tools->count() - static_cast<int>(u.calls.size()));
    j["done"] = false;
    out += ndjson(j);
  }
  return out;
}

std::string OllamaChatOutput::last_chunks(const GenerateStats& st, double load_s, double total_s) {
  std::string out = tools ? tool_chunks(tools->finish()) : std::string();
  json j = chat_object(model, "");
  add_timings(j, st, load_s, total_s, truncated);
  return out + ndjson(j);
}

std::string OllamaChatOutput::stream_error(const std::string& msg) { return ndjson(json{{"error", msg}}); }

json OllamaChatOutput::whole(const std::string& text, const GenerateStats& st, double load_s, double total_s) {
  json j = chat_object(model, text);
  if (tools) {
    auto u = tools->push(text);
    const auto rest = tools->finish();
    j["message"]["content"] = u.content + rest.content;
    if (!u.calls.empty()) j["message"]["tool_calls"] = tools->ollama(u.calls, 0);
  }
  add_timings(j, st, load_s, total_s, truncated);
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

json OpenAIOutput::choice(const std::string& text, const json& reason) const {
  if (chat) return json{{"index", 0}, {"delta", {{"role", "assistant"}, {"content", text}}}, {"finish_reason", reason}};
  return json{{"index", 0}, {"text", text}, {"finish_reason", reason}};
}

json OpenAIOutput::finish_reason(const GenerateStats& st) const {
  if (tools && tools->count() > 0 && st.done_reason == DoneReason::Stop) return "tool_calls";
  return server::finish_reason(st);
}

// Content deltas as they come; each complete call as one delta.tool_calls entry with its index, id,
// name and whole arguments (clients append arguments by index, so one piece is as good as many).
std::string OpenAIOutput::tool_chunks(const chat::ToolCallParser::Update& u) const {
  std::string out;
  if (!u.content.empty()) {
    json j = head(true);
    j["choices"] = json::array({choice(u.content, nullptr)});
    out += sse(j);
  }
  if (!u.calls.empty()) {
    json j = head(true);
    const int first = tools->count() - static_cast<int>(u.calls.size());
    j["choices"] = json::array({json{{"index", 0},
                                     {"delta", {{"role", "assistant"}, {"tool_calls", tools->openai(u.calls, first, true)}}},
                                     {"finish_reason", nullptr}}});
    out += sse(j);
  }
  return out;
}

std::string OpenAIOutput::chunk(const std::string& text) {
  if (tools) return tool_chunks(tools->push(text));
  json j = head(true);
  j["choices"] = json::array({choice(text, nullptr)});
  return sse(j);
}

std::string OpenAIOutput::last_chunks(const GenerateStats& st, double, double) {
  std::string out = tools ? tool_chunks(tools->finish()) : std::string();
  json j = head(true);
  j["choices"] = json::array({choice("", finish_reason(st))});
  out += sse(j);
  if (include_usage) {
    json u = head(true);
    u["choices"] = json::array();
    u["usage"] = usage_json(st);
    out += sse(u);
  }
  return out + "data: [DONE]\n\n";
}

std::string OpenAIOutput::stream_error(const std::string& msg) {
  return sse(json{{"error", {{"message", msg}, {"type", "api_error"}, {"param", nullptr}, {"code", nullptr}}}}) + "data: [DONE]\n\n";
}

json OpenAIOutput::whole(const std::string& text, const GenerateStats& st, double, double) {
  json j = head(false);
  if (chat && tools) {
    auto u = tools->push(text);
    const auto rest = tools->finish();
    const std::string content = u.content + rest.content;
    json message{{"role", "assistant"}, {"content", content.empty() && !u.calls.empty() ? json(nullptr) : json(content)}};
    if (!u.calls.empty()) message["tool_calls"] = tools->openai(u.calls, 0, false);
    j["choices"] = json::array({json{{"index", 0}, {"message", message}, {"finish_reason", finish_reason(st)}}});
  } else if (chat)
    j["choices"] = json::array(
        {json{{"index", 0}, {"message", {{"role", "assistant"}, {"content", text}}}, {"finish_reason", finish_reason(st)}}});
  else
    j["choices"] = json::array({json{{"index", 0}, {"text", text}, {"finish_reason", finish_reason(st)}, {"logprobs", nullptr}}});
  j["usage"] = usage_json(st);
  return j;
}

}  // namespace g3n::server
