#include "server/tool_requests.h"

#include <algorithm>
#include <cctype>

#include "base/json_nesting.h"
#include "server/options.h"

namespace g3n::server {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxTools = 128;  // OpenAI's limit

// OpenAI's name rule plus '.', which Ollama's tools use: the name is written into the prompt and the
// grammar, so nothing that could break either gets in.
bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '-' || c == '.'; });
}

// "object", or a type list whose first non-null entry is "object" (the one the schema compiler uses).
bool object_type(const json& type) {
  if (type.is_string()) return type == "object";
  if (!type.is_array()) return false;
  for (const auto& t : type)
    if (t != "null") return t == "object";
  return false;
}

// `declared`: the same tool as sent (keys in the order given).
chat::ToolSpec parse_tool(const json& t, const nlohmann::ordered_json& declared, const std::string& where) {
  if (!t.is_object()) throw HttpError(400, "invalid " + where + ": expected an object {\"type\": \"function\", \"function\": {...}}");
  if (auto ty = t.find("type"); ty != t.end() && !ty->is_null() && *ty != "function")
    throw HttpError(400, "invalid " + where + ".type: only \"function\" tools are supported");
  const auto f = t.find("function");
  if (f == t.end() || !f->is_object()) throw HttpError(400, "invalid " + where + ".function: expected an object with a name");
  chat::ToolSpec spec;
  const json name = f->value("name", json());
  if (!name.is_string() || !valid_name(name.get<std::string>()))
    throw HttpError(400, "invalid " + where + ".function.name: expected 1 to 64 letters, digits, '_', '-' or '.'");
  spec.name = name.get<std::string>();
  if (auto d = f->find("description"); d != f->end() && !d->is_null() && !d->is_string())
    throw HttpError(400, "invalid " + where + ".function.description: expected a string");
  const json params = f->value("parameters", json());
  // The same schema as sent (the sorted one when the body is not at hand).
  const nlohmann::ordered_json dfun = declared.is_object() ? declared.value("function", nlohmann::ordered_json()) : nlohmann::ordered_json();
  const nlohmann::ordered_json declared_params = dfun.is_object() && dfun.contains("parameters") ? dfun["parameters"] : nlohmann::ordered_json(params);
  if (params.is_null()) {
    spec.arguments = JsonSchema::any_object();
  } else {
    if (!params.is_object()) throw HttpError(400, "invalid " + where + ".function.parameters: expected a JSON schema object");
    if (auto ty = params.find("type"); ty != params.end() && !object_type(*ty))
      throw HttpError(400, "invalid " + where + ".function.parameters: the arguments must be an object (\"type\": \"object\")");
    // A schema without "type" that is not an object schema (anyOf, $ref, ...) still takes an object.
    const bool object_schema = params.contains("type") || params.contains("properties");
    try {
      spec.arguments = object_schema ? JsonSchema::compile(declared_params) : JsonSchema::any_object();
    } catch (const std::exception& e) {
      throw HttpError(400, "invalid JSON schema in " + where + ".function.parameters: " + e.what());
    }
  }
  spec.function = nlohmann::ordered_json{{"name", spec.name}};
  if (f->contains("description") && (*f)["description"].is_string()) spec.function["description"] = (*f)["description"].get<std::string>();
  if (!params.is_null()) spec.function["parameters"] = declared_params;
  return spec;
}

}  // namespace

std::shared_ptr<const ToolCallGrammar> ToolRequest::grammar() const {
  if (choice == ToolChoice::Named) {
    const auto it = std::find_if(tools.begin(), tools.end(), [&](const chat::ToolSpec& t) { return t.name == named; });
    return std::make_shared<ToolCallGrammar>(chat::tool_call_grammar(std::span(&*it, 1), false, parallel));
  }
  return std::make_shared<ToolCallGrammar>(chat::tool_call_grammar(tools, choice == ToolChoice::Auto, parallel));
}

ToolRequest parse_tool_request(const json& body, const DeclaredOrder& order) {
  ToolRequest r;
  const json tools = body.value("tools", json());
  if (!tools.is_null()) {
    if (!tools.is_array()) throw HttpError(400, "invalid type for \"tools\": expected an array");
    if (tools.size() > kMaxTools) throw HttpError(400, "too many tools: " + std::to_string(tools.size()) + " (at most 128)");
    for (size_t i = 0; i < tools.size(); ++i) {
      const std::string where = "tools[" + std::to_string(i) + "]";
      chat::ToolSpec spec = parse_tool(tools[i], order.at(json::json_pointer("/tools/" + std::to_string(i)), tools[i]), where);
      for (const auto& t : r.tools)
        if (t.name == spec.name) throw HttpError(400, "invalid " + where + ": tool \"" + spec.name + "\" is defined twice");
      r.tools.push_back(std::move(spec));
    }
  }
  const json choice = body.value("tool_choice", json());
  if (choice.is_string()) {
    const std::string c = choice.get<std::string>();
    if (c == "none") r.choice = ToolChoice::None;
    else if (c == "auto") r.choice = ToolChoice::Auto;
    else if (c == "required") r.choice = ToolChoice::Required;
    else throw HttpError(400, "invalid tool_choice \"" + c + "\": expected \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
  } else if (choice.is_object()) {
    const json f = choice.value("function", json());
    if (choice.value("type", std::string("function")) != "function" || !f.is_object() || !f.value("name", json()).is_string())
      throw HttpError(400, "invalid tool_choice: expected {\"type\": \"function\", \"function\": {\"name\": ...}}");
    r.choice = ToolChoice::Named;
    r.named = f["name"].get<std::string>();
    if (std::none_of(r.tools.begin(), r.tools.end(), [&](const chat::ToolSpec& t) { return t.name == r.named; }))
      throw HttpError(400, "invalid tool_choice: no tool named \"" + r.named + "\" in tools");
  } else if (!choice.is_null()) {
    throw HttpError(400, "invalid type for \"tool_choice\": expected a string or an object");
  }
  if (r.choice == ToolChoice::Required && r.tools.empty()) throw HttpError(400, "tool_choice \"required\" needs tools");
  const json parallel = body.value("parallel_tool_calls", json());
  if (!parallel.is_null() && !parallel.is_boolean()) throw HttpError(400, "invalid type for \"parallel_tool_calls\": expected a boolean");
  r.parallel = parallel.is_boolean() ? parallel.get<bool>() : true;
  return r;
}

std::string render_history_calls(const json& tool_calls, const std::string& where, std::vector<std::pair<std::string, std::string>>* names) {
  if (!tool_calls.is_array()) throw HttpError(400, "invalid type for \"" + where + "\": expected an array");
  std::vector<chat::ToolCall> calls;
  for (size_t i = 0; i < tool_calls.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    const json& c = tool_calls[i];
    const json f = c.is_object() ? c.value("function", json()) : json();
    if (!f.is_object() || !f.value("name", json()).is_string())
      throw HttpError(400, "invalid " + at + ": expected {\"function\": {\"name\": ..., \"arguments\": ...}}");
    // Ordered: OpenAI's arguments string as the model wrote it renders back the same text (its KV cache stays usable).
    nlohmann::ordered_json args = nlohmann::ordered_json(f.value("arguments", json::object()));
    if (args.is_string()) {
      if (json_nesting_exceeds(args.get<std::string>()))
        throw HttpError(400, "invalid " + at + ".function.arguments: nested more than " + std::to_string(kMaxJsonNesting) + " deep");
      args = nlohmann::ordered_json::parse(args.get<std::string>(), nullptr, false);
      if (args.is_discarded()) throw HttpError(400, "invalid " + at + ".function.arguments: not valid JSON");
    }
    if (args.is_null()) args = nlohmann::ordered_json::object();
    if (!args.is_object()) throw HttpError(400, "invalid " + at + ".function.arguments: expected an object");
    calls.push_back({f["name"].get<std::string>(), std::move(args)});
    if (names && c.contains("id") && c["id"].is_string()) names->emplace_back(c["id"].get<std::string>(), calls.back().name);
  }
  return chat::render_tool_calls(calls);
}

}  // namespace g3n::server
