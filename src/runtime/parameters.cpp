#include "runtime/parameters.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "base/parse.h"
#include "runtime/spec_options.h"

namespace g3n {
namespace {

constexpr double kAny = std::numeric_limits<double>::max();
constexpr double kTop = double(1 << 30);

using V = ParamValue;
int64_t as_i(const V& v) { return std::get<int64_t>(v); }
float as_f(const V& v) { return static_cast<float>(std::get<double>(v)); }

// The rows. Defaults are Ollama's (api/types.go DefaultOptions) except num_batch: g3n's engine is as
// fast at 256 rows as at Ollama's 512 and keeps its buffers smaller (runtime/batch_size.h).
const ParamSpec kTable[] = {
    {"temperature", ParamType::Float, 0, 100, V(0.8), ParamTarget::Sampling, "randomness; 0: always the most likely token",
     [](Parameters& p, const V& v) { p.sampling.temperature = as_f(v); },
     [](const Parameters& p) { return V(double(p.sampling.temperature)); }},
    {"top_k", ParamType::Int, -1, kTop, V(int64_t{40}), ParamTarget::Sampling, "sample from the k most likely tokens; <= 0: off",
     [](Parameters& p, const V& v) { p.sampling.top_k = static_cast<int32_t>(as_i(v)); },
     [](const Parameters& p) { return V(int64_t{p.sampling.top_k}); }},
    {"top_p", ParamType::Float, 0, 1, V(0.9), ParamTarget::Sampling, "sample from the smallest set holding this probability; 1: off",
     [](Parameters& p, const V& v) { p.sampling.top_p = as_f(v); },
     [](const Parameters& p) { return V(double(p.sampling.top_p)); }},
    {"min_p", ParamType::Float, 0, 1, V(0.0), ParamTarget::Sampling, "drop tokens below this fraction of the best one's probability",
     [](Parameters& p, const V& v) { p.sampling.min_p = as_f(v); },
     [](const Parameters& p) { return V(double(p.sampling.min_p)); }},
    {"typical_p", ParamType::Float, 0, 1, V(1.0), ParamTarget::Sampling, "locally typical sampling; 1: off",
     [](Parameters& p, const V& v) { p.sampling.typical_p = as_f(v); },
     [](const Parameters& p) { return V(double(p.sampling.typical_p)); }},
    {"repeat_penalty", ParamType::Float, 0, 100, V(1.1), ParamTarget::Sampling, "penalty for tokens seen in the last repeat_last_n; 1: off",
     [](Parameters& p, const V& v) { p.sampling.repeat_penalty = as_f(v); },
     [](const Parameters& p) { return V(double(p.sampling.repeat_penalty)); }},
    {"repeat_last_n", ParamType::Int, -1, kTop, V(int64_t{64}), ParamTarget::Sampling, "penalty window in tokens; 0: off, -1: everything",
     [](Parameters& p, const V& v) { p.sampling.repeat_last_n = static_cast<int32_t>(as_i(v)); },
     [](const Parameters& p) { return V(int64_t{p.sampling.repeat_last_n}); }},
    {"presence_penalty", ParamType::Float, -100, 100, V(0.0), ParamTarget::Sampling, "subtracted once from every token seen",
     [](Parameters& p, const V& v) { p.sampling.presence_penalty = as_f(v); },
     [](const Parameters& p) { return V(double(p.sampling.presence_penalty)); }},
    {"frequency_penalty", ParamType::Float, -100, 100, V(0.0), ParamTarget::Sampling, "subtracted per occurrence of a token seen",
     [](Parameters& p, const V& v) { p.sampling.frequency_penalty = as_f(v); },
     [](const Parameters& p) { return V(double(p.sampling.frequency_penalty)); }},
    {"seed", ParamType::Int, -kAny, kAny, V(int64_t{-1}), ParamTarget::Sampling, "random seed; negative: a new one each time",
     [](Parameters& p, const V& v) {
       if (as_i(v) < 0) p.sampling.seed.reset();
       else p.sampling.seed = static_cast<uint64_t>(as_i(v));
     },
     [](const Parameters& p) { return V(p.sampling.seed ? static_cast<int64_t>(*p.sampling.seed) : int64_t{-1}); }},
    {"num_predict", ParamType::Int, -2, std::numeric_limits<int32_t>::max(), V(int64_t{-1}), ParamTarget::Sampling,
     "most tokens to generate; negative: until a stop or the context is full",
     [](Parameters& p, const V& v) { p.sampling.num_predict = as_i(v) < 0 ? -1 : static_cast<int32_t>(as_i(v)); },
     [](const Parameters& p) { return V(int64_t{p.sampling.num_predict}); }},
    {"stop", ParamType::StringList, 0, 0, V(std::vector<std::string>{}), ParamTarget::Stop, "a text that ends the answer (repeatable)",
     [](Parameters& p, const V& v) { p.sampling.stop = std::get<std::vector<std::string>>(v); },
     [](const Parameters& p) { return V(p.sampling.stop); }},
    {"num_ctx", ParamType::Int, kMinContext, kMaxContext, V(int64_t{kDefaultContext}), ParamTarget::Engine, "context length in tokens",
     [](Parameters& p, const V& v) { p.engine.num_ctx = static_cast<int>(as_i(v)); },
     [](const Parameters& p) { return V(int64_t{p.engine.num_ctx}); }},
    {"num_batch", ParamType::Int, 1, 2048, V(int64_t{kDefaultBatchRows}), ParamTarget::Engine, "prompt tokens per forward pass",
     [](Parameters& p, const V& v) { p.engine.num_batch = static_cast<int>(as_i(v)); },
     [](const Parameters& p) { return V(int64_t{p.engine.num_batch}); }},
    {"num_thread", ParamType::Int, 0, 1024, V(int64_t{0}), ParamTarget::Engine, "threads; 0: one per physical core",
     [](Parameters& p, const V& v) { p.engine.num_thread = static_cast<int>(as_i(v)); },
     [](const Parameters& p) { return V(int64_t{p.engine.num_thread}); }},
    // Chooses which model is loaded, not how it runs: the model's parameters (Modelfile) set it; a request
    // may only repeat it (docs/matformer.md).
    {"matformer", ParamType::Text, 0, 0, V(std::string()), ParamTarget::Engine,
     "MatFormer slice to load: a preset (e2b, e2.54b, ...), FILE.json or FILE.csv:ROW; empty: the whole model",
     [](Parameters& p, const V& v) { p.engine.matformer = std::get<std::string>(v); },
     [](const Parameters& p) { return V(p.engine.matformer); }},
    // Speculative decoding (docs/speculative.md): output is unchanged, only its speed.
    {"spec", ParamType::Text, 0, 0, V(std::string()), ParamTarget::Sampling,
     "speculative decoding: none, auto, ngram (prompt lookup), draft (the draft model), self (a MatFormer slice); empty: none",
     [](Parameters& p, const V& v) {
       const auto& t = std::get<std::string>(v);
       p.spec.mode = t.empty() ? SpecMode::None : parse_spec_mode(t);
     },
     [](const Parameters& p) { return V(p.spec.mode == SpecMode::None ? std::string() : std::string(spec_mode_name(p.spec.mode))); }},
    {"draft_max", ParamType::Int, 1, 32, V(int64_t{8}), ParamTarget::Sampling, "longest speculative draft in tokens (the adaptive length stays below)",
     [](Parameters& p, const V& v) { p.spec.draft_max = static_cast<int>(as_i(v)); },
     [](const Parameters& p) { return V(int64_t{p.spec.draft_max}); }},
    {"draft", ParamType::Text, 0, 0, V(std::string()), ParamTarget::Engine, "draft model for spec draft: a GGUF path or model name with the same vocabulary",
     [](Parameters& p, const V& v) { p.engine.draft = std::get<std::string>(v); },
     [](const Parameters& p) { return V(p.engine.draft); }},
    // Ollama options with nothing to do here: checked for type, then unused.
    {"num_keep", ParamType::Int, -kAny, kAny, V(int64_t{4}), ParamTarget::Ignored, "tokens kept when the context shifts (g3n never shifts)",
     nullptr, nullptr},
    {"num_gpu", ParamType::Int, -kAny, kAny, V(int64_t{-1}), ParamTarget::Ignored, "layers on the GPU (g3n runs on the CPU)", nullptr, nullptr},
    {"main_gpu", ParamType::Int, -kAny, kAny, V(int64_t{0}), ParamTarget::Ignored, "GPU to use (g3n runs on the CPU)", nullptr, nullptr},
    {"use_mmap", ParamType::Bool, 0, 0, V(true), ParamTarget::Ignored, "map the model file (g3n always does)", nullptr, nullptr},
    {"numa", ParamType::Bool, 0, 0, V(false), ParamTarget::Ignored, "older Ollama option", nullptr, nullptr},
    {"low_vram", ParamType::Bool, 0, 0, V(false), ParamTarget::Ignored, "older Ollama option", nullptr, nullptr},
    {"penalize_newline", ParamType::Bool, 0, 0, V(true), ParamTarget::Ignored, "older Ollama option", nullptr, nullptr},
    {"mirostat", ParamType::Int, -kAny, kAny, V(int64_t{0}), ParamTarget::Ignored, "older Ollama option", nullptr, nullptr},
    {"mirostat_tau", ParamType::Float, -kAny, kAny, V(5.0), ParamTarget::Ignored, "older Ollama option", nullptr, nullptr},
    {"mirostat_eta", ParamType::Float, -kAny, kAny, V(0.1), ParamTarget::Ignored, "older Ollama option", nullptr, nullptr},
    {"tfs_z", ParamType::Float, -kAny, kAny, V(1.0), ParamTarget::Ignored, "older Ollama option", nullptr, nullptr},
};

std::string quoted(std::string_view name) {
  std::string q(1, '"');
  q.append(name);
  q += '"';
  return q;
}

const char* type_name(ParamType t) {
  switch (t) {
    case ParamType::Int: return "integer";
    case ParamType::Float: return "float";
    case ParamType::Bool: return "boolean";
    case ParamType::StringList: return "array of strings";
    case ParamType::Text: return "string";
  }
  return "?";
}

// Range bounds: exact for every int32.
std::string number_text(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", d);
  return buf;
}

// Float values: the sampler keeps them as float, so 7 digits show 0.1f as "0.1".
std::string float_text(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.7g", d);
  return buf;
}

std::string range_text(const ParamSpec& s) {
  if (s.type != ParamType::Int && s.type != ParamType::Float) return "";
  if (s.max == kAny) return "any";
  return number_text(s.min) + ".." + number_text(s.max);
}

[[noreturn]] void bad_type(const ParamSpec& s) { throw ParameterError(quoted(s.name) + " must be of type " + type_name(s.type)); }

void check_range(const ParamSpec& s, double v) {
  if (v < s.min || v > s.max)
    throw ParameterError(quoted(s.name) + " must be between " + number_text(s.min) + " and " + number_text(s.max));
}

// Text rows whose values are words from a list ("spec"): a bad word is an error when it is parsed.
void check_text(const ParamSpec& s, std::string_view text) {
  if (s.name != "spec" || text.empty()) return;
  try {
    parse_spec_mode(std::string(text));
  } catch (const std::invalid_argument&) {
    throw ParameterError(quoted(s.name) + " must be none, auto, ngram, draft or self");
  }
}

}  // namespace

std::span<const ParamSpec> parameter_table() { return kTable; }

const ParamSpec* find_parameter(std::string_view name) {
  for (const auto& s : kTable)
    if (s.name == name) return &s;
  return nullptr;
}

Parameters default_parameters() {
  Parameters p;
  for (const auto& s : kTable)
    if (s.apply) s.apply(p, s.def);
  return p;
}

ParamValue parse_parameter(const ParamSpec& s, const nlohmann::json& v) {
  switch (s.type) {
    case ParamType::Int: {
      int64_t i = 0;
      if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
        throw ParameterError(quoted(s.name) + " is out of range");
      if (v.is_number_integer()) {
        i = v.get<int64_t>();
      } else if (v.is_number_float()) {  // Ollama truncates JSON floats given for integers
        const double d = v.get<double>();
        if (!std::isfinite(d)) bad_type(s);
        if (std::fabs(d) >= 9.2e18) throw ParameterError(quoted(s.name) + " is out of range");
        i = static_cast<int64_t>(d);
      } else {
        bad_type(s);
      }
      check_range(s, double(i));
      return i;
    }
    case ParamType::Float: {
      if (!v.is_number()) bad_type(s);
      const double d = v.get<double>();
      if (!std::isfinite(d)) bad_type(s);
      check_range(s, d);
      return d;
    }
    case ParamType::Bool:
      if (!v.is_boolean()) bad_type(s);
      return v.get<bool>();
    case ParamType::StringList: {
      std::vector<std::string> out;
      if (v.is_string()) {
        if (!v.get<std::string>().empty()) out.push_back(v.get<std::string>());
        return out;
      }
      if (!v.is_array()) bad_type(s);
      for (const auto& e : v) {
        if (!e.is_string()) bad_type(s);
        if (!e.get<std::string>().empty()) out.push_back(e.get<std::string>());
      }
      return out;
    }
    case ParamType::Text:
      if (!v.is_string()) bad_type(s);
      check_text(s, v.get<std::string>());
      return v.get<std::string>();
  }
  bad_type(s);
}

ParamValue parse_parameter(const ParamSpec& s, std::string_view text) {
  auto fail = [&]() -> ParameterError {
    return ParameterError(quoted(s.name) + " must be of type " + type_name(s.type) + ", got '" + std::string(text) + "'");
  };
  switch (s.type) {
    case ParamType::Int: {
      const auto i = parse_int(text);
      if (!i) throw fail();
      check_range(s, double(*i));
      return *i;
    }
    case ParamType::Float: {
      const auto d = parse_double(text);
      if (!d) throw fail();
      check_range(s, *d);
      return *d;
    }
    case ParamType::Bool: {
      const auto b = parse_bool(text);
      if (!b) throw fail();
      return *b;
    }
    case ParamType::StringList:
      if (text.empty()) throw ParameterError(quoted(s.name) + " needs a text");
      return std::vector<std::string>{std::string(text)};
    case ParamType::Text:
      check_text(s, text);
      return std::string(text);
  }
  throw fail();
}

ParamList parse_parameters(const nlohmann::json& options, const std::function<void(const std::string&)>& unknown,
                           const std::function<void(const std::string&, const std::string&)>& on_error) {
  ParamList out;
  if (options.is_null()) return out;
  if (!options.is_object()) {
    if (!on_error) throw ParameterError("options must be an object");
    on_error("", "options must be an object");
    return out;
  }
  for (auto it = options.begin(); it != options.end(); ++it) {
    if (it->is_null()) continue;  // clients send null for "unset"
    const ParamSpec* s = find_parameter(it.key());
    if (!s) {
      if (unknown) unknown(it.key());
      continue;
    }
    try {
      out.emplace_back(s, parse_parameter(*s, *it));
    } catch (const ParameterError& e) {
      if (!on_error) throw;
      on_error(it.key(), e.what());
    }
  }
  return out;
}

void apply_parameter(Parameters& p, const ParamSpec& s, const ParamValue& v, bool append_stop) {
  if (!s.apply) return;
  if (s.target == ParamTarget::Stop && append_stop) {
    for (const auto& t : std::get<std::vector<std::string>>(v)) p.sampling.stop.push_back(t);
    return;
  }
  s.apply(p, v);
}

void apply_parameters(Parameters& p, const ParamList& list) {
  for (const auto& [s, v] : list) apply_parameter(p, *s, v);
}

nlohmann::json parameter_json(const ParamValue& v) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, v);
}

std::string parameter_text(const ParamValue& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v)) return float_text(*d);
  if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (const auto* t = std::get_if<std::string>(&v)) return *t;
  std::string out;
  for (const auto& s : std::get<std::vector<std::string>>(v)) {
    if (!out.empty()) out += ' ';
    out += nlohmann::json(s).dump();
  }
  return out;
}

std::vector<std::string> show_parameters(const Parameters& p) {
  std::vector<std::string> lines;
  for (const auto& s : kTable) {
    if (!s.get) continue;
    const ParamValue v = s.get(p);
    if (s.type == ParamType::Text && std::get<std::string>(v).empty()) continue;  // unset
    if (s.type == ParamType::StringList) {
      for (const auto& t : std::get<std::vector<std::string>>(v)) lines.push_back(std::string(s.name) + " " + nlohmann::json(t).dump());
    } else {
      lines.push_back(std::string(s.name) + " " + parameter_text(v));
    }
  }
  return lines;
}

std::string parameters_help() {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "  %-18s %-8s %-16s %-8s %s\n", "name", "type", "range", "default", "what");
  out += line;
  for (const auto& s : kTable) {
    if (s.target == ParamTarget::Ignored) continue;
    const std::string def = s.type == ParamType::StringList || s.type == ParamType::Text ? "none" : parameter_text(s.def);
    std::snprintf(line, sizeof line, "  %-18s %-8s %-16s %-8s %s\n", std::string(s.name).c_str(),
                  s.type == ParamType::StringList ? "text" : type_name(s.type), range_text(s).c_str(), def.c_str(),
                  std::string(s.help).c_str());
    out += line;
  }
  out += "  accepted and unused (Ollama options with no meaning on a CPU engine):";
  for (const auto& s : kTable)
    if (s.target == ParamTarget::Ignored) {
      out += ' ';
      out += s.name;
    }
  out += "\n";
  return out;
}

}  // namespace g3n
