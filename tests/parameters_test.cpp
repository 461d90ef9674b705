// The one table of Ollama parameters (runtime/parameters.h), the strict number parsing under it
// (base/parse.h), and the Modelfile's PARAMETER lines, which must follow the same rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "base/parse.h"
#include "runtime/parameters.h"
#include "store/model_store.h"
#include "store/modelfile.h"

using namespace g3n;
using json = nlohmann::json;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ParseNumbers, WholeStringInRange) {
  EXPECT_EQ(parse_int("42"), 42);
  EXPECT_EQ(parse_int("-1"), -1);
  EXPECT_FALSE(parse_int(""));
  EXPECT_FALSE(parse_int(" 42"));
  EXPECT_FALSE(parse_int("42 "));
  EXPECT_FALSE(parse_int("+42"));
  EXPECT_FALSE(parse_int("4.2"));
  EXPECT_FALSE(parse_int("0x10"));
  EXPECT_FALSE(parse_int("99999999999999999999"));  // overflows int64
  EXPECT_FALSE(parse_int("5", 0, 4));
  EXPECT_EQ(parse_int("4", 0, 4), 4);
  EXPECT_EQ(parse_double("0.7"), 0.7);
  EXPECT_EQ(parse_double("1e-3"), 1e-3);
  EXPECT_EQ(parse_double("3"), 3.0);
  EXPECT_FALSE(parse_double("inf"));
  EXPECT_FALSE(parse_double("nan"));
  EXPECT_FALSE(parse_double("0.7x"));
  EXPECT_FALSE(parse_double("2", 0, 1));
  EXPECT_EQ(parse_bool("TRUE"), true);
  EXPECT_EQ(parse_bool("0"), false);
  EXPECT_FALSE(parse_bool("yes"));
}

TEST(ParametersTable, DefaultsAreOllamas) {
  // api/types.go DefaultOptions (num_batch is g3n's: see the table).
  const Parameters p = default_parameters();
  EXPECT_FLOAT_EQ(p.sampling.temperature, 0.8f);
  EXPECT_EQ(p.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(p.sampling.top_p, 0.9f);
  EXPECT_FLOAT_EQ(p.sampling.min_p, 0.0f);
  EXPECT_FLOAT_EQ(p.sampling.typical_p, 1.0f);
  EXPECT_FLOAT_EQ(p.sampling.repeat_penalty, 1.1f);
  EXPECT_EQ(p.sampling.repeat_last_n, 64);
  EXPECT_FLOAT_EQ(p.sampling.presence_penalty, 0.0f);
  EXPECT_FLOAT_EQ(p.sampling.frequency_penalty, 0.0f);
  EXPECT_EQ(p.sampling.num_predict, -1);
  EXPECT_FALSE(p.sampling.seed.has_value());
  EXPECT_TRUE(p.sampling.stop.empty());
  EXPECT_EQ(p.engine.num_ctx, kDefaultContext);
  EXPECT_EQ(p.engine.num_ctx, 4096);
  EXPECT_EQ(p.engine.num_thread, 0);
  EXPECT_EQ(p.engine.num_batch, kDefaultBatchRows);
  EXPECT_EQ(p.engine.num_batch, 256);
}

TEST(ParametersTable, RowsAreConsistent) {
  std::set<std::string> names;
  for (const ParamSpec& s : parameter_table()) {
    EXPECT_TRUE(names.insert(std::string(s.name)).second) << "duplicate row " << s.name;
    EXPECT_EQ(find_parameter(s.name), &s);
    EXPECT_EQ(s.apply == nullptr, s.target == ParamTarget::Ignored) << s.name;
    EXPECT_EQ(s.get == nullptr, s.target == ParamTarget::Ignored) << s.name;
    // The default reads back as itself and passes its own validation, as text and as JSON.
    if (s.get) {
      EXPECT_EQ(parameter_text(s.get(default_parameters())), parameter_text(s.def)) << s.name;
    }
    if (s.type != ParamType::StringList) {
      EXPECT_EQ(parameter_text(parse_parameter(s, std::string_view(parameter_text(s.def)))), parameter_text(s.def)) << s.name;
      EXPECT_EQ(parameter_text(parse_parameter(s, parameter_json(s.def))), parameter_text(s.def)) << s.name;
    }
  }
  EXPECT_EQ(find_parameter("bogus"), nullptr);
  const std::string help = parameters_help();
  for (const ParamSpec& s : parameter_table()) EXPECT_NE(help.find(std::string(s.name)), std::string::npos) << s.name;
}

TEST(ParametersTable, OneContextLimit) {
  const ParamSpec& ctx = *find_parameter("num_ctx");
  EXPECT_EQ(ctx.min, kMinContext);
  EXPECT_EQ(ctx.max, kMaxContext);
  EXPECT_EQ(std::get<int64_t>(parse_parameter(ctx, std::string_view("32768"))), 32768);
  EXPECT_EQ(error_of([&] { parse_parameter(ctx, std::string_view("32769")); }), "\"num_ctx\" must be between 4 and 32768");
  EXPECT_EQ(error_of([&] { parse_parameter(ctx, json(131072)); }), "\"num_ctx\" must be between 4 and 32768");
  EXPECT_EQ(error_of([&] { parse_parameter(ctx, json(3)); }), "\"num_ctx\" must be between 4 and 32768");
}

TEST(ParametersTable, BadValuesGetClearErrors) {
  const ParamSpec& top_k = *find_parameter("top_k");
  const ParamSpec& temp = *find_parameter("temperature");
  const ParamSpec& stop = *find_parameter("stop");
  const ParamSpec& mmap = *find_parameter("use_mmap");
  EXPECT_EQ(error_of([&] { parse_parameter(top_k, json("many")); }), "\"top_k\" must be of type integer");
  EXPECT_EQ(error_of([&] { parse_parameter(top_k, std::string_view("many")); }), "\"top_k\" must be of type integer, got 'many'");
  EXPECT_EQ(error_of([&] { parse_parameter(top_k, std::string_view("4.5")); }), "\"top_k\" must be of type integer, got '4.5'");
  EXPECT_EQ(error_of([&] { parse_parameter(temp, json("hot")); }), "\"temperature\" must be of type float");
  EXPECT_EQ(error_of([&] { parse_parameter(temp, std::string_view("-1")); }), "\"temperature\" must be between 0 and 100");
  EXPECT_EQ(error_of([&] { parse_parameter(*find_parameter("top_p"), json(1.5)); }), "\"top_p\" must be between 0 and 1");
  EXPECT_EQ(error_of([&] { parse_parameter(stop, json::array({"a", 1})); }), "\"stop\" must be of type array of strings");
  EXPECT_EQ(error_of([&] { parse_parameter(mmap, std::string_view("maybe")); }), "\"use_mmap\" must be of type boolean, got 'maybe'");
  // JSON floats for integers are truncated, as Ollama does; a seed may be negative (random).
  EXPECT_EQ(std::get<int64_t>(parse_parameter(top_k, json(5.9))), 5);
  Parameters p = default_parameters();
  apply_parameter(p, *find_parameter("seed"), parse_parameter(*find_parameter("seed"), std::string_view("7")));
  EXPECT_EQ(p.sampling.seed, 7u);
  apply_parameter(p, *find_parameter("seed"), parse_parameter(*find_parameter("seed"), std::string_view("-1")));
  EXPECT_FALSE(p.sampling.seed.has_value());
}

TEST(ParametersTable, ObjectsSkipUnknownNamesAndLayer) {
  std::vector<std::string> unknown, errors;
  const ParamList list = parse_parameters(json{{"temperature", 0.1}, {"stop", {"<end_of_turn>"}}, {"wat", 1}, {"top_k", "x"}, {"seed", nullptr}},
                                          [&](const std::string& n) { unknown.push_back(n); },
                                          [&](const std::string& n, const std::string& msg) { errors.push_back(n + ": " + msg); });
  EXPECT_EQ(unknown, std::vector<std::string>{"wat"});
  EXPECT_EQ(errors, std::vector<std::string>{"top_k: \"top_k\" must be of type integer"});
  ASSERT_EQ(list.size(), 2u);
  // Defaults <- model layer <- request: the request's stop list replaces the model's.
  Parameters p = default_parameters();
  apply_parameters(p, list);
  EXPECT_FLOAT_EQ(p.sampling.temperature, 0.1f);
  apply_parameters(p, parse_parameters(json{{"stop", "END"}}));
  EXPECT_EQ(p.sampling.stop, std::vector<std::string>{"END"});
  EXPECT_FLOAT_EQ(p.sampling.temperature, 0.1f);
  // Text adds one stop string at a time (Modelfile lines, /set parameter stop).
  apply_parameter(p, *find_parameter("stop"), parse_parameter(*find_parameter("stop"), std::string_view("<eot>")), true);
  EXPECT_EQ(p.sampling.stop, (std::vector<std::string>{"END", "<eot>"}));
  EXPECT_THROW(parse_parameters(json{{"top_k", "x"}}), ParameterError);
  EXPECT_THROW(parse_parameters(json::array()), ParameterError);
  const auto lines = show_parameters(p);
  EXPECT_NE(std::find(lines.begin(), lines.end(), "temperature 0.1"), lines.end());
  EXPECT_NE(std::find(lines.begin(), lines.end(), "stop \"<eot>\""), lines.end());
  EXPECT_NE(std::find(lines.begin(), lines.end(), "num_ctx 4096"), lines.end());
}

TEST(ParametersTable, ModelfileUsesTheSameRules) {
  using store::parse_modelfile;
  EXPECT_EQ(store::parameter_value("top_k", "5"), json(5));
  EXPECT_EQ(store::parameter_value("temperature", "0.5"), json(0.5));
  EXPECT_EQ(store::parameter_value("use_mmap", "false"), json(false));
  EXPECT_EQ(store::parameter_value("stop", "<end_of_turn>"), json("<end_of_turn>"));
  // The same message the table gives, with the line it is on.
  EXPECT_EQ(error_of([] { parse_modelfile("FROM x\nPARAMETER num_ctx 40000\n"); }),
            "Modelfile line 2: PARAMETER \"num_ctx\" must be between 4 and 32768");
  EXPECT_EQ(error_of([] { parse_modelfile("FROM x\nPARAMETER top_k 4.5\n"); }),
            "Modelfile line 2: PARAMETER \"top_k\" must be of type integer, got '4.5'");
  EXPECT_THROW(parse_modelfile("FROM x\nPARAMETER top_p 2\n"), store::StoreError);
  EXPECT_THROW(parse_modelfile("FROM x\nPARAMETER bogus 1\n"), store::StoreError);
  // Every row of the table is a valid PARAMETER with its default.
  for (const ParamSpec& s : parameter_table()) {
    const std::string text = s.type == ParamType::StringList ? "x" : parameter_text(s.def);
    EXPECT_NO_THROW(parse_modelfile("FROM x\nPARAMETER " + std::string(s.name) + " " + text + "\n")) << s.name;
  }
}

}  // namespace
