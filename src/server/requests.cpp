#include "server/requests.h"

#include <algorithm>
#include <cctype>

#include "base/json_nesting.h"
#include "chat/media_prompt.h"
#include "chat/tool_prompt.h"
#include "server/declared_order.h"
#include "server/media.h"
#include "server/options.h"
#include "server/responses.h"

namespace g3n::server {
namespace {

using json = nlohmann::json;

std::string require_model(const json& body) {
  auto m = get_string(body, "model");
  if (!m || m->empty()) m = get_string(body, "name");  // legacy field, still sent by some clients
  if (!m || m->empty()) throw HttpError(400, "model is required");
  return *m;
}

KeepAlive read_keep_alive(const json& body) {
  KeepAlive k;
  auto it = body.find("keep_alive");
  if (it == body.end() || it->is_null()) return k;
  k.given = true;
  k.duration = parse_keep_alive(*it);
  return k;
}

// "format": "json" or a JSON schema -> the constraint's schema (null: none).
std::shared_ptr<const JsonSchema> parse_format(const json& f, const DeclaredOrder& order, const json::json_pointer& at) {
  if (f.is_null()) return nullptr;
  if (f.is_string()) {
    const std::string s = f.get<std::string>();
    if (s.empty()) return nullptr;
    if (s == "json") return JsonSchema::any_object();
    throw HttpError(400, "invalid format: \"" + s + "\" (expected \"json\" or a JSON schema)");
  }
  if (f.is_object()) {
    try {
      return JsonSchema::compile(order.at(at, f));
    } catch (const std::exception& e) {
      throw HttpError(400, std::string("invalid JSON schema in format: ") + e.what());
    }
  }
  throw HttpError(400, "invalid format: expected \"json\" or a JSON schema object");
}

// Ollama's "images" and g3n's "audio": base64 strings (`where` names the field in errors: "images",
// "messages[1].audio").
std::vector<MediaInput> read_media(const json& v, const std::string& where, chat::MediaKind kind) {
  std::vector<MediaInput> out;
  if (v.is_null()) return out;
  if (!v.is_array()) throw HttpError(400, "invalid type for \"" + where + "\": expected an array of base64 strings");
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (!v[i].is_string()) throw HttpError(400, "invalid type for \"" + at + "\": expected a base64 string");
    const std::string& text = v[i].get_ref<const std::string&>();
    out.push_back(kind == chat::MediaKind::Image ? image_from_base64(text, at) : audio_from_base64(text, at));
  }
  return out;
}

// A request's images then its audio (what Ollama-style messages and /api/generate put before the text).
std::vector<MediaInput> read_images_and_audio(const json& obj, const std::string& prefix) {
  std::vector<MediaInput> out = read_media(obj.value("images", json()), prefix + "images", chat::MediaKind::Image);
  std::vector<MediaInput> audio = read_media(obj.value("audio", json()), prefix + "audio", chat::MediaKind::Audio);
  out.insert(out.end(), std::make_move_iterator(audio.begin()), std::make_move_iterator(audio.end()));
  return out;
}

size_t blocks_of(const std::vector<MediaInput>& media, chat::MediaKind kind) {
  size_t n = 0;
  for (const MediaInput& m : media) n += m.kind == kind ? m.blocks() : 0;
  return n;
}

// Tool calls have their own grammar; a second one for the content is not supported.
void reject_format_with_tools(const std::shared_ptr<const JsonSchema>& format, const ToolRequest& tools) {
  if (format && tools.active())
    throw HttpError(400, "format (response_format) cannot be combined with tools; send tool_choice \"none\" to use it");
}

void reject_thinking(const json& body, const std::string& model) {
  if (get_bool(body, "think").value_or(false)) throw HttpError(400, "\"" + model + "\" does not support thinking");
}

std::vector<InMessage> ollama_messages(const json& body) {
  std::vector<InMessage> out;
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) return out;
  if (!it->is_array()) throw HttpError(400, "invalid type for \"messages\": expected an array");
  for (size_t index = 0; index < it->size(); ++index) {
    const json& m = (*it)[index];
    if (!m.is_object()) throw HttpError(400, "invalid message: expected an object");
    std::string role = get_string(m, "role").value_or("");
    std::transform(role.begin(), role.end(), role.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      throw HttpError(400, "invalid message role: \"" + role + "\"");
    InMessage im{role, get_string(m, "content").value_or(""), {}};
    im.media = read_images_and_audio(m, "messages[" + std::to_string(index) + "].");
    // Ollama renders a message's images before its text; its audio (each 30 s chunk a block) goes after them.
    if (!im.media.empty())
      im.content = chat::media_then_text(blocks_of(im.media, chat::MediaKind::Image), blocks_of(im.media, chat::MediaKind::Audio), im.content);
    if (auto tc = m.find("tool_calls"); tc != m.end() && !tc->is_null()) {
      // Earlier calls, as the model writes them (chat/tool_prompt.h).
      const std::string calls = render_history_calls(*tc, "messages[" + std::to_string(index) + "].tool_calls", nullptr);
      if (!calls.empty()) im.content += (im.content.empty() ? "" : "\n") + calls;
    }
    if (role == "tool") im.content = chat::tool_result_text(m.value("tool_name", m.value("name", std::string())), im.content);
    out.push_back(std::move(im));
  }
  return out;
}

std::vector<InMessage> openai_messages(const json& body) {
  auto it = body.find("messages");
  if (it == body.end() || !it->is_array()) throw HttpError(400, "invalid type for \"messages\": expected an array");
  if (it->empty()) throw HttpError(400, "[] is too short - 'messages'");
  std::vector<InMessage> out;
  std::vector<std::pair<std::string, std::string>> call_names;  // tool_call_id -> function name
  for (size_t index = 0; index < it->size(); ++index) {
    const json& m = (*it)[index];
    if (!m.is_object()) throw HttpError(400, "invalid message: expected an object");
    std::string role = get_string(m, "role").value_or("");
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      throw HttpError(400, "invalid message role: \"" + role + "\"");
    std::string content;
    std::vector<MediaInput> images;
    const json c = m.value("content", json());
    if (c.is_string()) {
      content = c.get<std::string>();
    } else if (c.is_array()) {
      // Parts in order: text parts joined by line breaks, each image where it stands (the layout puts
      // "\n\n" around an image's rows, as Gemma's processor does).
      bool after_text = false;
      for (size_t k = 0; k < c.size(); ++k) {
        const json& part = c[k];
        const std::string type = part.is_object() ? part.value("type", std::string()) : std::string();
        if (type == "text") {
          content += (after_text ? "\n" : "") + part.value("text", std::string());
          after_text = true;
        } else if (type == "image_url") {
          const std::string where = "messages[" + std::to_string(index) + "].content[" + std::to_string(k) + "]";
          // {"url": "..."} as OpenAI sends it, or the URL itself; read in place (it may be megabytes).
          const json* url = part.contains("image_url") ? &part["image_url"] : nullptr;
          if (url && url->is_object()) url = url->contains("url") ? &(*url)["url"] : nullptr;
          if (!url || !url->is_string()) throw HttpError(400, "invalid image_url in " + where + ": expected {\"url\": \"data:image/...;base64,...\"}");
          images.push_back(image_from_url(url->get_ref<const std::string&>(), where));
          content += chat::kImagePlaceholder;
          after_text = false;
        } else if (type == "input_audio") {
          // {"input_audio": {"data": base64, "format": "wav" | "mp3" | ...}}: the format is sniffed from the
          // bytes (the field is informational); each 30 s chunk is a block where the part stands.
          const std::string where = "messages[" + std::to_string(index) + "].content[" + std::to_string(k) + "]";
          const json* audio = part.contains("input_audio") && part["input_audio"].is_object() ? &part["input_audio"] : nullptr;
          const json* data = audio && audio->contains("data") ? &(*audio)["data"] : nullptr;
          if (!data || !data->is_string())
            throw HttpError(400, "invalid input_audio in " + where + ": expected {\"data\": \"<base64>\", \"format\": \"wav\"}");
          images.push_back(audio_from_base64(data->get_ref<const std::string&>(), where));
          for (size_t b = 0; b < images.back().blocks(); ++b) content += chat::kAudioPlaceholder;
          after_text = false;
        } else {
          throw HttpError(400, "invalid message content part type: \"" + type + "\"");
        }
      }
    } else if (!c.is_null()) {
      throw HttpError(400, "invalid message content: expected a string or an array of parts");
    }
    const auto tc = m.find("tool_calls");
    if (tc != m.end() && !tc->is_null()) {
      const std::string calls = render_history_calls(*tc, "messages[" + std::to_string(index) + "].tool_calls", &call_names);
      if (!calls.empty()) content += (content.empty() ? "" : "\n") + calls;
    } else if (c.is_null() && role != "assistant") {
      throw HttpError(400, "invalid message content: null is only allowed with tool_calls");
    }
    if (role == "tool") {
      std::string name = m.value("name", std::string());
      const std::string id = m.value("tool_call_id", std::string());
      for (const auto& [call_id, call_name] : call_names)
        if (name.empty() && call_id == id) name = call_name;
      content = chat::tool_result_text(name, content);
    }
    out.push_back({role, content, std::move(images)});
  }
  return out;
}

// OpenAI's response_format -> the constraint's schema (null: none).
std::shared_ptr<const JsonSchema> openai_format(const json& body, const DeclaredOrder& order) {
  const json rf = body.value("response_format", json());
  if (rf.is_null()) return nullptr;
  if (!rf.is_object()) throw HttpError(400, "invalid response_format: expected an object");
  const std::string type = rf.value("type", std::string("text"));
  if (type == "text") return nullptr;
  if (type == "json_object") return JsonSchema::any_object();
  if (type == "json_schema") {
    const json js = rf.value("json_schema", json());
    if (!js.is_object() || !js.contains("schema") || !js["schema"].is_object())
      throw HttpError(400, "invalid response_format: json_schema.schema must be an object");
    return parse_format(js["schema"], order, json::json_pointer("/response_format/json_schema/schema"));
  }
  throw HttpError(400, "invalid response_format type: \"" + type + "\"");
}

// The OpenAI fields as Ollama options, checked by the same table. temperature and top_p default to 1.0
// here, as Ollama's compatibility layer does.
ParamList openai_options(const json& body) {
  json o = json::object();
  o["temperature"] = body.contains("temperature") && !body["temperature"].is_null() ? body["temperature"] : json(1.0);
  o["top_p"] = body.contains("top_p") && !body["top_p"].is_null() ? body["top_p"] : json(1.0);
  for (const char* k : {"seed", "frequency_penalty", "presence_penalty", "stop"})
    if (body.contains(k) && !body[k].is_null()) o[k] = body[k];
  for (const char* k : {"max_tokens", "max_completion_tokens"})
    if (body.contains(k) && !body[k].is_null()) o["num_predict"] = body[k];
  return parse_request_options(o);
}

// An integer field in [lo, hi] (absent or null: nullopt); `range_msg` is the 400's text for a value outside it.
std::optional<int> get_int_in(const json& body, const char* key, int lo, int hi, const std::string& range_msg) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() && !(it->is_number_float() && it->get<double>() == static_cast<double>(static_cast<int64_t>(it->get<double>()))))
    throw HttpError(400, std::string("invalid type for \"") + key + "\": expected an integer");
  const double v = it->get<double>();
  if (v < lo || v > hi) throw HttpError(400, range_msg);
  return static_cast<int>(v);
}

// "logprobs": bool and "top_logprobs": 0..20 (Ollama's /api/generate and /api/chat, OpenAI chat). OpenAI
// requires logprobs for top_logprobs; Ollama's top_logprobs alone turns them on.
LogprobOptions read_logprobs(const json& body, bool top_needs_logprobs) {
  LogprobOptions o;
  o.enabled = get_bool(body, "logprobs").value_or(false);
  o.top = get_int_in(body, "top_logprobs", 0, kMaxTopLogprobs, "top_logprobs must be between 0 and " + std::to_string(kMaxTopLogprobs)).value_or(0);
  if (o.top > 0 && !o.enabled) {
    if (top_needs_logprobs) throw HttpError(400, "logprobs must be set to true if top_logprobs is used");
    o.enabled = true;
  }
  return o;
}

OpenAIRequest parse_openai_common(const json& body, bool chat, const DeclaredOrder& order) {
  OpenAIRequest r;
  r.chat = chat;
  r.model = get_string(body, "model").value_or("");
  if (r.model.empty()) throw HttpError(400, "model is required");
  r.stream = get_bool(body, "stream").value_or(false);
  r.include_usage = body.contains("stream_options") && body["stream_options"].is_object() &&
                    body["stream_options"].value("include_usage", false);
  r.format = openai_format(body, order);
  r.keep_alive = read_keep_alive(body);
  r.n = get_int_in(body, "n", 1, kMaxChoices, "n must be between 1 and " + std::to_string(kMaxChoices)).value_or(1);
  if (chat) {
    r.logprobs = read_logprobs(body, true);
  } else if (auto it = body.find("logprobs"); it != body.end() && !it->is_null()) {
    // The legacy completions API: an integer, the number of alternatives listed per token (0: the tokens' own only).
    if (it->is_boolean()) {
      r.logprobs.enabled = it->get<bool>();
    } else {
      r.logprobs.top = *get_int_in(body, "logprobs", 0, kMaxTopLogprobs, "logprobs must be between 0 and " + std::to_string(kMaxTopLogprobs));
      r.logprobs.enabled = true;
    }
  }
  return r;
}

}  // namespace

json parse_json_body(const std::string& body) {
  if (body.empty()) throw HttpError(400, "missing request body");
  if (json_nesting_exceeds(body))
    throw HttpError(400, "invalid JSON: nested more than " + std::to_string(kMaxJsonNesting) + " arrays or objects deep");
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    throw HttpError(400, std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) throw HttpError(400, "request body must be a JSON object");
  return j;
}

namespace {
// The shared fields after the model, in two parts around each endpoint's own (the order errors are
// reported in stays as it was).
void parse_generation_head(const json& body, OllamaGenerationFields& r) {
  r.stream = get_bool(body, "stream").value_or(true);
  r.truncate = get_bool(body, "truncate").value_or(true);
}
void parse_generation_tail(const json& body, OllamaGenerationFields& r, const DeclaredOrder& order) {
  reject_thinking(body, r.model);
  r.format = parse_format(body.value("format", json()), order, json::json_pointer("/format"));
  r.options = parse_request_options(body.value("options", json()));
  r.keep_alive = read_keep_alive(body);
  r.logprobs = read_logprobs(body, false);
}
}  // namespace

GenerateRequest parse_generate(const json& body, std::string_view raw) {
  const DeclaredOrder order(raw);
  GenerateRequest r;
  r.model = require_model(body);
  r.prompt = get_string(body, "prompt").value_or("");
  r.system = get_string(body, "system");
  const auto suffix = get_string(body, "suffix");
  const auto tmpl = get_string(body, "template");  // accepted and ignored outside raw mode
  r.raw = get_bool(body, "raw").value_or(false);
  parse_generation_head(body, r);
  r.media = read_images_and_audio(body, "");
  if (auto it = body.find("context"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) throw HttpError(400, "invalid type for \"context\": expected an array of token ids");
    for (const auto& t : *it) {
      if (!t.is_number_integer()) throw HttpError(400, "invalid type for \"context\": expected an array of token ids");
      r.context.push_back(t.get<int32_t>());
    }
  }
  if (r.raw && (r.system || tmpl || !r.context.empty())) throw HttpError(400, "raw mode does not support template, system, or context");
  if (suffix && !suffix->empty()) throw HttpError(400, "\"" + r.model + "\" does not support insert");
  parse_generation_tail(body, r, order);
  return r;
}

ChatRequest parse_chat(const json& body, std::string_view raw) {
  const DeclaredOrder order(raw);
  ChatRequest r;
  r.model = require_model(body);
  parse_generation_head(body, r);
  r.messages = ollama_messages(body);
  r.tools = parse_tool_request(body, order);
  parse_generation_tail(body, r, order);
  reject_format_with_tools(r.format, r.tools);
  return r;
}

ShowRequest parse_show(const json& body) {
  ShowRequest r;
  r.model = require_model(body);
  r.verbose = get_bool(body, "verbose").value_or(false);
  r.system = get_string(body, "system");
  return r;
}

PullRequest parse_pull(const json& body) {
  PullRequest r;
  const std::string name = require_model(body);
  r.stream = get_bool(body, "stream").value_or(true);
  r.insecure = get_bool(body, "insecure").value_or(false);
  if (!store::try_parse_model_name(name, &r.name)) throw HttpError(400, "invalid model name");
  return r;
}

DeleteRequest parse_delete(const json& body) {
  DeleteRequest r;
  r.model = require_model(body);
  if (!store::try_parse_model_name(r.model, &r.name)) throw HttpError(400, "name \"" + r.model + "\" is invalid");
  return r;
}

CopyRequest parse_copy(const json& body) {
  CopyRequest r;
  r.source_text = get_string(body, "source").value_or("");
  const std::string dst = get_string(body, "destination").value_or("");
  if (!store::try_parse_model_name(r.source_text, &r.source)) throw HttpError(400, "source \"" + r.source_text + "\" is invalid");
  if (!store::try_parse_model_name(dst, &r.destination)) throw HttpError(400, "destination \"" + dst + "\" is invalid");
  return r;
}

OpenAIRequest parse_openai_chat(const json& body, std::string_view raw) {
  const DeclaredOrder order(raw);
  OpenAIRequest r = parse_openai_common(body, true, order);
  r.messages = openai_messages(body);
  r.tools = parse_tool_request(body, order);
  reject_format_with_tools(r.format, r.tools);
  r.options = openai_options(body);
  return r;
}

OpenAIRequest parse_openai_completion(const json& body, std::string_view raw) {
  OpenAIRequest r = parse_openai_common(body, false, DeclaredOrder(raw));
  const json p = body.value("prompt", json());
  if (p.is_string()) r.prompt = p.get<std::string>();
  else if (p.is_array() && p.size() == 1 && p[0].is_string()) r.prompt = p[0].get<std::string>();
  else throw HttpError(400, "invalid type for \"prompt\": expected a string");
  if (body.contains("suffix") && body["suffix"].is_string() && !body["suffix"].get<std::string>().empty())
    throw HttpError(400, "\"" + r.model + "\" does not support insert");
  if (body.contains("stop") && body["stop"].is_array())
    for (const auto& s : body["stop"])
      if (!s.is_string()) throw HttpError(400, "invalid type for \"stop\": expected strings");
  r.options = openai_options(body);
  return r;
}

EmbedRequest parse_embed(const json& body, EmbedApi api) {
  EmbedRequest r;
  r.api = api;
  if (api == EmbedApi::OpenAI) {
    r.model = get_string(body, "model").value_or("");
    if (r.model.empty()) throw HttpError(400, "model is required");
  } else {
    r.model = require_model(body);
  }
  if (api == EmbedApi::Embeddings) {
    // The older endpoint: one "prompt"; an empty or absent one gives an empty embedding.
    if (auto p = get_string(body, "prompt"); p && !p->empty()) r.inputs.push_back(*p);
  } else {
    const char* what = api == EmbedApi::OpenAI ? "invalid input" : "invalid input type";
    const json in = body.value("input", json());
    if (in.is_string()) {
      // Ollama: an empty string is no input; OpenAI's layer embeds it.
      if (api == EmbedApi::OpenAI || !in.get<std::string>().empty()) r.inputs.push_back(in.get<std::string>());
    } else if (in.is_array()) {
      if (api == EmbedApi::OpenAI && in.empty()) throw HttpError(400, what);
      // Each input becomes a job with its tokens before any is embedded: the count is bounded (OpenAI's limit).
      if (in.size() > kMaxEmbedInputs)
        throw HttpError(400, "input: at most " + std::to_string(kMaxEmbedInputs) + " strings per request");
      for (const auto& v : in) {
        if (!v.is_string()) throw HttpError(400, what);
        r.inputs.push_back(v.get<std::string>());
      }
    } else if (!in.is_null() || api == EmbedApi::OpenAI) {
      throw HttpError(400, what);
    }
  }
  if (api == EmbedApi::Embed) r.truncate = get_bool(body, "truncate").value_or(true);
  if (api != EmbedApi::Embeddings) {
    if (auto it = body.find("dimensions"); it != body.end() && !it->is_null()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > INT32_MAX)
        throw HttpError(400, "invalid type for \"dimensions\": expected a positive integer");
      r.dimensions = static_cast<int>(it->get<int64_t>());
    }
  }
  if (api == EmbedApi::OpenAI) {
    const std::string fmt = get_string(body, "encoding_format").value_or("float");
    if (fmt != "float" && fmt != "base64") throw HttpError(400, "invalid encoding_format \"" + fmt + "\": expected \"float\" or \"base64\"");
    r.base64 = fmt == "base64";
  } else {
    r.options = parse_request_options(body.value("options", json()));
  }
  r.keep_alive = read_keep_alive(body);
  return r;
}

}  // namespace g3n::server
