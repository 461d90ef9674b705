// MatFormer (Mix-n-Match) slices of a Gemma 3n file: a sub-model made of some of the file's layers, each
// with a narrower FFN, run from the same weights without retraining (docs/matformer.md; the slicing rules
// are README §9.1 of the tiny fixture and the MatFormer Lab notebook).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/gemma3n_config.h"

namespace g3n {

// What a slice keeps: original (file) layer indices in increasing order, and the FFN width of each.
// Everything else (KV sharing, layer types, sparsity) is derived from these by slice_config.
struct MatformerSlice {
  std::string name;               // preset name or the file it came from, for messages and `g3n show`
  std::vector<int> kept_layers;   // blk.N indices, increasing
  std::vector<int> ffn_width;     // one per kept layer
};

// A named configuration of Google's slicing CSV, relative to E4B's 35 layers: which layers are dropped and
// which keep the full FFN width (the others get half of it).
struct MatformerPreset {
  std::string name;       // g3n's name, e.g. "e2b", "e2.49b-block"
  std::string csv_name;   // the published row name, e.g. "Config for official E2B Model"
  std::vector<int> skipped;
  std::vector<int> wide;
};

constexpr int kMatformerE4bLayers = 35;

// The published configurations, smallest effective size first within each family.
const std::vector<MatformerPreset>& matformer_presets();

// Whether resolve_matformer reads `spec` from a file (FILE.json, FILE.csv:ROW NAME) rather than naming a preset.
bool is_matformer_file(const std::string& spec);
// How much of a file spec is the file's path (all of FILE.json, FILE.csv of FILE.csv:ROW); npos for a preset.
size_t matformer_file_path_length(const std::string& spec);

// The preset a name means (g3n's name, "full", or the published CSV row name; any case, outer spaces
// ignored); nullptr when it names none.
const MatformerPreset* find_matformer_preset(const std::string& name);

// The slice a preset gives on this (unsliced) file: widths scaled to the file (E4B's 16384 → the file's
// full width, 8192 → half of it). Throws std::invalid_argument when the file is not of E4B's depth or its
// layers differ in width.
MatformerSlice preset_slice(const MatformerPreset& p, const Gemma3nConfig& file);

// Resolves a user's --matformer value against the unsliced file configuration:
//   a preset name ("e2b", "full", ...) or a published CSV row name ("Config for E2.54B (layer-level)");
//   FILE.json: {"kept_layers": [...], "ffn_width": [...]} in the file's own indices and widths;
//   FILE.csv:ROW NAME: a row of a slicing CSV in mistral.rs's (= Google's) format, widths in E4B units.
// Throws std::invalid_argument with the reason; the slice is validated (validate_matformer_slice).
MatformerSlice resolve_matformer(const std::string& spec, const Gemma3nConfig& file);

// Parses the custom JSON form and a slicing CSV (exposed for tests).
MatformerSlice parse_matformer_json(const std::string& text, const std::string& origin);
// Widths are returned as written (E4B units), skipped layers as the kept complement of kMatformerE4bLayers.
MatformerSlice parse_matformer_csv_row(const std::string& text, const std::string& row_name, const std::string& origin);

// Throws std::invalid_argument unless the slice can run on the file: layers known, in order and distinct;
// one width per layer, within the layer's width, a multiple of 256 (or the full width); the last two
// KV-producing layers kept when the file shares KV; every KV-sharing layer left with a producer of its type.
void validate_matformer_slice(const MatformerSlice& s, const Gemma3nConfig& file);

// The configuration of the sliced model (README §9.1 rules 5-7): kept layers renumbered in order, widths
// as given, layer types and sparsity those of the ORIGINAL layers, KV owners = kept layers that owned a
// cache, each sharing layer reading the last kept owner of its type. Validates first.
Gemma3nConfig slice_config(const Gemma3nConfig& file, const MatformerSlice& s);

// Parameters that run per token, as the MatFormer Lab counts them: every weight matrix and norm except
// token_embd and the per-layer token table (K/V projections counted on every layer, as HF has them).
int64_t effective_parameters(const Gemma3nConfig& c);

}  // namespace g3n
