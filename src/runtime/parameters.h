// Ollama's model parameters ("options"), as ONE table: each row gives the name, type, allowed range,
// default and where the value goes (a sampling field, an engine option, the stop list, or nowhere: an
// Ollama option g3n accepts and does not use). Every interface reads it: the server's request options
// (and the OpenAI fields mapped onto them), `g3n run`'s /set parameter, /show parameters and -p, the
// Modelfile's PARAMETER lines, model params layers, and the help text.
//
// Values are layered as Ollama does: the table's defaults (Ollama's api/types.go DefaultOptions), then
// the model's params layer, then the request (or the user's /set).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/batch_size.h"
#include "runtime/spec_options.h"
#include "sampling/sampler.h"

namespace g3n {

// The longest context any interface accepts (num_ctx, --num-ctx, G3N_CONTEXT_LENGTH). The server's
// engine reserves this many positions per sequence; Gemma 3n is trained for 32768.
constexpr int kMaxContext = 32768;
// The shortest (Ollama's minimum).
constexpr int kMinContext = 4;
// The default num_ctx (Ollama's OLLAMA_CONTEXT_LENGTH default).
constexpr int kDefaultContext = 4096;

// Options that shape the engine rather than the sampler.
struct EngineOptions {
  int num_ctx = kDefaultContext;  // KV cache positions of the sequence
  int num_thread = 0;             // 0: physical cores
  int num_batch = kDefaultBatchRows;  // rows per forward pass (runtime/batch_size.h)
  std::string matformer;          // MatFormer slice the model is loaded with ("": the whole file)
  std::string draft;              // draft model for spec draft (a path or store name; "": none)
};

// Everything the parameters set.
struct Parameters {
  SamplingParams sampling;
  EngineOptions engine;
  SpecOptions spec;  // speculative decoding (per request, like sampling)
};

enum class ParamType { Int, Float, Bool, StringList, Text };
enum class ParamTarget {
  Sampling,  // a SamplingParams field
  Stop,      // the stop strings
  Engine,    // an EngineOptions field: changes the engine (a new session in g3n run; see the server docs)
  Ignored,   // an Ollama option with no meaning here (GPU layers, mmap, ...): type-checked, then unused
};

using ParamValue = std::variant<int64_t, double, bool, std::vector<std::string>, std::string>;

struct ParamSpec {
  std::string_view name;
  ParamType type;
  double min, max;       // inclusive range for Int and Float
  ParamValue def;        // the default
  ParamTarget target;
  std::string_view help;
  void (*apply)(Parameters&, const ParamValue&);  // null for Ignored rows
  ParamValue (*get)(const Parameters&);           // null for Ignored rows
};

// A value that does not fit its row (wrong type, out of range, unknown name). The message names the
// parameter, e.g. `"num_ctx" must be between 4 and 32768`; interfaces add their own prefix.
class ParameterError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The table, in display order.
std::span<const ParamSpec> parameter_table();
// The row for `name`; null when there is none.
const ParamSpec* find_parameter(std::string_view name);

// The table's defaults.
Parameters default_parameters();

// Typed values for some rows, validated, to apply later (a request's options before its model is known).
using ParamList = std::vector<std::pair<const ParamSpec*, ParamValue>>;

// A JSON value for one row (request options, params layers): integers may be JSON floats (truncated, as
// Ollama does); "stop" takes a string or an array of strings. Throws ParameterError.
ParamValue parse_parameter(const ParamSpec& spec, const nlohmann::json& v);
// Text for one row (/set parameter, -p NAME=VALUE, Modelfile PARAMETER): strict numbers (base/parse.h),
// "true"/"false"/"1"/"0" for booleans; for "stop" the text is one stop string. Throws ParameterError.
ParamValue parse_parameter(const ParamSpec& spec, std::string_view text);

// A JSON object of options. Unknown names are skipped (Ollama ignores them) and reported through
// `unknown` when given; null values mean "unset". The first bad value (or a non-object) throws
// ParameterError, unless `on_error` is given: then it is told (name, message) and the rest still parse.
ParamList parse_parameters(const nlohmann::json& options, const std::function<void(const std::string&)>& unknown = {},
                           const std::function<void(const std::string&, const std::string&)>& on_error = {});

// Sets one row's value. "stop" from JSON replaces the list; `append_stop` adds to it (Modelfile lines,
// /set parameter stop).
void apply_parameter(Parameters& p, const ParamSpec& spec, const ParamValue& v, bool append_stop = false);
void apply_parameters(Parameters& p, const ParamList& list);

// The value as JSON (params layers, Modelfile parsing): int, float, bool, or an array of strings.
nlohmann::json parameter_json(const ParamValue& v);
// The value as a user types it: "0.8", "40", "true"; stop strings quoted and space-separated.
std::string parameter_text(const ParamValue& v);

// "name value" lines for every row that is used (not Ignored), in table order; stop strings one per line.
std::vector<std::string> show_parameters(const Parameters& p);
// The help text listing every parameter: name, type, range, default and what it does.
std::string parameters_help();

}  // namespace g3n
