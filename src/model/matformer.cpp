#include "model/matformer.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "base/json_nesting.h"

namespace g3n {
namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument("matformer: " + msg); }

constexpr int kE4bFullWidth = 16384;  // the CSV's "2_048 * 8"
constexpr int kWidthGranule = 256;    // one K-quant super-block: a column prefix of ffn_down stays whole blocks

std::vector<int> range(int first, int last) {
  std::vector<int> v;
  for (int i = first; i <= last; ++i) v.push_back(i);
  return v;
}

std::vector<int> join(std::initializer_list<std::vector<int>> parts) {
  std::vector<int> v;
  for (const auto& p : parts) v.insert(v.end(), p.begin(), p.end());
  return v;
}

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open " + path);
  std::ostringstream o;
  o << f.rdbuf();
  return o.str();
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && lower(s.substr(s.size() - tail.size())) == tail;
}

// Splits one CSV line into fields, honouring double quotes (the width and skip lists are quoted).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (char ch : line) {
    if (ch == '"') quoted = !quoted;
    else if (ch == ',' && !quoted) out.emplace_back();
    else out.back() += ch;
  }
  return out;
}

// "2_048 * 4" -> 8192: the CSV writes widths as Python products with digit separators.
int eval_product(const std::string& expr, const std::string& origin) {
  int64_t v = 1;
  std::stringstream in(expr);
  std::string factor;
  bool any = false;
  while (std::getline(in, factor, '*')) {
    std::string digits;
    for (char ch : trim(factor))
      if (ch != '_') digits += ch;
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); }) || digits.size() > 9)
      fail(origin + ": '" + expr + "' is not a width (a product of integers)");
    v *= std::stoll(digits);
    if (v > (1 << 24)) fail(origin + ": width '" + expr + "' is too large");
    any = true;
  }
  if (!any) fail(origin + ": empty width");
  return static_cast<int>(v);
}

// "[a, b, c]" (or empty) -> its elements as expressions.
std::vector<std::string> bracket_list(const std::string& field, const std::string& origin) {
  const std::string t = trim(field);
  if (t.empty()) return {};
  if (t.front() != '[' || t.back() != ']') fail(origin + ": '" + t + "' is not a [..] list");
  std::vector<std::string> out;
  std::stringstream in(t.substr(1, t.size() - 2));
  std::string item;
  while (std::getline(in, item, ','))
    if (!trim(item).empty()) out.push_back(trim(item));
  return out;
}

}  // namespace

const std::vector<MatformerPreset>& matformer_presets() {
  // google/gemma3n-slicing-configs configs.csv (docs/matformer.md): only layers 20-24 are ever skipped.
  static const std::vector<MatformerPreset> presets = {
      {"e4b", "Main model", {}, range(0, 34)},
      {"e2b", "Config for official E2B Model", range(20, 24), {}},
      {"e1.96b", "Config for E1.96B (layer-level)", range(20, 24), {4}},
      {"e2.54b", "Config for E2.54B (layer-level)", {}, join({{4}, range(20, 24)})},
      {"e2.69b", "Config for E2.69B (layer-level)", {}, join({{4, 9, 14}, range(19, 24)})},
      {"e2.98b", "Config for E2.98B (layer-level)", {}, join({range(15, 24), range(30, 34)})},
      {"e3.18b", "Config for E3.18B (layer-level)", {}, join({{4}, range(9, 24), {29, 34}})},
      {"e3.39b", "Config for E3.39B (layer-level)", {}, join({{4}, range(9, 29), {34}})},
      {"e3.59b", "Config for E3.59B (layer-level)", {}, join({range(4, 29), {34}})},
      {"e3.79b", "Config for E3.79B (layer-level)", {}, range(4, 34)},
      {"e2.49b-block", "Config for E2.49B (block-level)", {}, range(20, 24)},
      {"e2.73b-block", "Config for E2.73B (block-level)", {}, range(15, 24)},
      {"e2.98b-block", "Config for E2.98B (block-level)", {}, range(10, 24)},
      {"e3.24b-block", "Config for E3.24B (block-level)", {}, range(10, 29)},
      {"e3.49b-block", "Config for E3.49B (block-level)", {}, range(5, 29)},
      // The CSV names this row E3.79B, but its parameter column (3.74) and our count (3.73) say otherwise.
      {"e3.73b-block", "Config for E3.79B (block-level)", {}, range(5, 34)},
  };
  return presets;
}

// The file's single FFN width, which the presets' 16384 stands for.
static int uniform_width(const Gemma3nConfig& file) {
  if (file.n_layer != kMatformerE4bLayers)
    fail("the presets are slices of E4B's " + std::to_string(kMatformerE4bLayers) + " layers; this model has " +
         std::to_string(file.n_layer) + " (use a custom {\"kept_layers\", \"ffn_width\"} JSON file)");
  if (std::any_of(file.n_ff.begin(), file.n_ff.end(), [&](int f) { return f != file.n_ff[0]; }))
    fail("the presets need a file whose layers share one FFN width; this one is already sliced");
  if (file.n_ff[0] % 2) fail("the file's FFN width " + std::to_string(file.n_ff[0]) + " has no half width");
  return file.n_ff[0];
}

MatformerSlice preset_slice(const MatformerPreset& p, const Gemma3nConfig& file) {
  const int full = uniform_width(file);
  MatformerSlice s;
  s.name = p.name;
  for (int l = 0; l < kMatformerE4bLayers; ++l) {
    if (std::find(p.skipped.begin(), p.skipped.end(), l) != p.skipped.end()) continue;
    const bool wide = std::find(p.wide.begin(), p.wide.end(), l) != p.wide.end();
    s.kept_layers.push_back(l);
    s.ffn_width.push_back(wide ? full : full / 2);
  }
  return s;
}

MatformerSlice parse_matformer_json(const std::string& text, const std::string& origin) {
  if (json_nesting_exceeds(text)) fail(origin + ": nested more than " + std::to_string(kMaxJsonNesting) + " deep");
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail(origin + ": " + e.what());
  }
  auto int_list = [&](const char* key) {
    if (!doc.is_object() || !doc.contains(key) || !doc[key].is_array()) fail(origin + ": expected an object with a \"" + std::string(key) + "\" array");
    std::vector<int> v;
    for (const auto& e : doc[key]) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > (1 << 24))
        // Numbers are shown; other values by their type (dump() recurses: a deeply nested one would overflow the stack).
        fail(origin + ": \"" + std::string(key) + "\" holds " + (e.is_number() ? e.dump() : std::string("a JSON ") + e.type_name()) +
             ", not a non-negative integer");
      v.push_back(e.get<int>());
    }
    return v;
  };
  MatformerSlice s;
  s.name = origin;
  s.kept_layers = int_list("kept_layers");
  s.ffn_width = int_list("ffn_width");
  for (const auto& [key, value] : doc.items())
    if (key != "kept_layers" && key != "ffn_width") fail(origin + ": unknown key \"" + key + "\"");
  return s;
}

MatformerSlice parse_matformer_csv_row(const std::string& text, const std::string& row_name, const std::string& origin) {
  std::stringstream in(text);
  std::string line;
  std::vector<std::string> names;
  bool header = true;
  while (std::getline(in, line)) {
    if (trim(line).empty()) continue;
    const auto f = csv_fields(line);
    if (header) {  // name, # Layers, # Effective Params (B), MMLU PT accuracy, FFN Hidden Dims, Layers Skipped
      header = false;
      if (f.size() < 5 || lower(trim(f[0])) != "name") fail(origin + ": not a slicing CSV (the header should start with 'name')");
      continue;
    }
    names.push_back(trim(f[0]));
    if (trim(f[0]) != row_name) continue;
    if (f.size() < 5) fail(origin + ": row '" + row_name + "' has no FFN width column");
    std::vector<int> widths;
    for (const auto& w : bracket_list(f[4], origin)) widths.push_back(eval_product(w, origin));
    std::set<int> skipped;
    if (f.size() > 5)
      for (const auto& l : bracket_list(f[5], origin)) {
        const int layer = eval_product(l, origin);
        if (layer >= kMatformerE4bLayers || !skipped.insert(layer).second)
          fail(origin + ": row '" + row_name + "' skips layer " + std::to_string(layer) + (layer >= kMatformerE4bLayers ? ", which E4B does not have" : " twice"));
      }
    MatformerSlice s;
    s.name = row_name;
    for (int l = 0; l < kMatformerE4bLayers; ++l)
      if (!skipped.count(l)) s.kept_layers.push_back(l);
    if (widths.size() != s.kept_layers.size())
      fail(origin + ": row '" + row_name + "' lists " + std::to_string(widths.size()) + " widths for " + std::to_string(s.kept_layers.size()) + " kept layers");
    s.ffn_width = widths;
    return s;
  }
  std::string known;
  for (const auto& n : names) known += (known.empty() ? "" : ", ") + ("'" + n + "'");
  fail(origin + ": no row named '" + row_name + "' (rows: " + known + ")");
}

const MatformerPreset* find_matformer_preset(const std::string& name) {
  const std::string key = lower(trim(name));
  const auto& presets = matformer_presets();
  auto preset = std::find_if(presets.begin(), presets.end(), [&](const MatformerPreset& p) {
    return p.name == key || lower(p.csv_name) == key || (key == "full" && p.name == "e4b");
  });
  return preset != presets.end() ? &*preset : nullptr;
}

namespace {
// Where FILE.csv:ROW NAME puts its colon (after the file name's ".csv"); npos when spec is no CSV row.
size_t csv_row_colon(const std::string& spec) {
  const size_t at = spec.rfind(".csv:");
  return at == std::string::npos ? at : at + 4;
}
}  // namespace

size_t matformer_file_path_length(const std::string& spec) {
  if (ends_with(spec, ".json")) return spec.size();
  return csv_row_colon(spec);
}

bool is_matformer_file(const std::string& spec) { return matformer_file_path_length(spec) != std::string::npos; }

MatformerSlice resolve_matformer(const std::string& spec, const Gemma3nConfig& file) {
  MatformerSlice s;
  const auto& presets = matformer_presets();
  if (const MatformerPreset* preset = find_matformer_preset(spec)) {
    s = preset_slice(*preset, file);
  } else if (ends_with(spec, ".json")) {
    s = parse_matformer_json(read_text(spec), spec);
  } else if (const size_t colon = csv_row_colon(spec); colon != std::string::npos) {
    const std::string path = spec.substr(0, colon);
    s = parse_matformer_csv_row(read_text(path), spec.substr(colon + 1), path);
    // CSV widths are E4B's: scale them to this file as the presets are.
    const int full = uniform_width(file);
    for (int& w : s.ffn_width) {
      if (static_cast<int64_t>(w) * full % kE4bFullWidth) fail(path + ": width " + std::to_string(w) + " does not scale to this file's " + std::to_string(full));
      w = static_cast<int>(static_cast<int64_t>(w) * full / kE4bFullWidth);
    }
  } else {
    std::string names;
    for (const auto& p : presets) names += p.name + ", ";
    fail("unknown slice '" + spec + "': give a preset (" + names + "full), a published CSV row name, FILE.json or FILE.csv:ROW NAME");
  }
  validate_matformer_slice(s, file);
  return s;
}

void validate_matformer_slice(const MatformerSlice& s, const Gemma3nConfig& file) {
  const std::string where = "slice '" + s.name + "': ";
  if (file.n_layer != file.n_layer_file) fail(where + "this model is already a slice; slice the original file");
  if (s.kept_layers.empty()) fail(where + "keeps no layer");
  if (s.ffn_width.size() != s.kept_layers.size())
    fail(where + std::to_string(s.ffn_width.size()) + " FFN widths for " + std::to_string(s.kept_layers.size()) + " kept layers");
  for (size_t i = 0; i < s.kept_layers.size(); ++i) {
    const int l = s.kept_layers[i], w = s.ffn_width[i];
    if (l < 0 || l >= file.n_layer) fail(where + "layer " + std::to_string(l) + " does not exist (the model has " + std::to_string(file.n_layer) + ")");
    if (i > 0 && l <= s.kept_layers[i - 1]) fail(where + "kept layers must be distinct and in increasing order (" + std::to_string(l) + " after " + std::to_string(s.kept_layers[i - 1]) + ")");
    const int full = file.n_ff[l];
    if (w <= 0 || w > full) fail(where + "layer " + std::to_string(l) + " width " + std::to_string(w) + " outside 1.." + std::to_string(full));
    if (w != full && w % kWidthGranule)
      fail(where + "layer " + std::to_string(l) + " width " + std::to_string(w) + " is not a multiple of " + std::to_string(kWidthGranule));
  }
  auto kept = [&](int l) { return std::find(s.kept_layers.begin(), s.kept_layers.end(), l) != s.kept_layers.end(); };
  if (file.n_layer_kv < file.n_layer) {  // the notebook reserves the last two producers when KV is shared
    for (int l : {file.n_layer_kv - 2, file.n_layer_kv - 1})
      if (l >= 0 && !kept(l)) fail(where + "layer " + std::to_string(l) + " produces the KV that later layers share; it cannot be skipped");
  }
  for (int l : s.kept_layers) {
    if (file.owns_kv(l)) continue;
    bool producer = false;
    for (int p : s.kept_layers)
      if (file.owns_kv(p) && file.is_sliding[p] == file.is_sliding[l]) producer = true;
    if (!producer) fail(where + "layer " + std::to_string(l) + " shares KV but no kept layer of its type produces it");
  }
}

Gemma3nConfig slice_config(const Gemma3nConfig& file, const MatformerSlice& s) {
  validate_matformer_slice(s, file);
  Gemma3nConfig c = file;
  c.n_layer = static_cast<int>(s.kept_layers.size());
  c.n_ff = s.ffn_width;
  c.file_layer = s.kept_layers;
  c.is_sliding.clear();
  c.sparsity_std_multiplier.clear();
  c.n_layer_kv = 0;
  for (int l : s.kept_layers) {
    c.is_sliding.push_back(file.is_sliding[l]);
    c.sparsity_std_multiplier.push_back(file.sparsity_std_multiplier[l]);
    if (file.owns_kv(l)) ++c.n_layer_kv;
  }
  assign_kv_sources(c);
  return c;
}

int64_t effective_parameters(const Gemma3nConfig& c) {
  const int64_t D = c.n_embd, N = c.n_altup, P = c.n_embd_per_layer, R = c.laurel_rank, Dh = c.head_dim;
  const int64_t qw = c.n_head * Dh, kvw = c.n_head_kv * Dh;
  int64_t n = 2 * (N - 1) * D * D                 // altup_proj, altup_unembd_proj
              + D * c.n_layer * P + P + D;        // per_layer_model_proj (kept blocks), its norm, output_norm
  for (int l = 0; l < c.n_layer; ++l) {
    const int64_t F = c.n_ff[l];
    n += D * N + D + N * N * N + N * N + D;       // AltUp router, its norm, predict, correct, correct scale
    n += D * qw + 2 * D * kvw + qw * D + 2 * Dh;  // attention and its q/k norms
    n += 2 * D * R + D;                           // LAuReL
    n += 3 * D * F;                               // FFN
    n += 2 * D * P + D;                           // per-layer input gate, projection, post norm
    n += 4 * D;                                   // attn, post-attention, ffn and post-ffw norms
  }
  return n;
}

}  // namespace g3n
