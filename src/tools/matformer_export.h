// Writes a MatFormer slice of a Gemma 3n GGUF as a standalone file (`g3n create NAME --from e4b.gguf
// --matformer e2b`): the kept layers renumbered, their FFN prefixes, the kept per-layer blocks, and the
// metadata of the smaller model. Quantized blocks are copied, never re-encoded, so the file's logits are
// bit-identical to loading the original with the same slice.
#pragma once
#include <string>

namespace g3n {

// `matformer` is anything Model::load accepts (a preset, FILE.json, FILE.csv:ROW). Atomic (temp + rename).
void export_matformer_slice(const std::string& in_path, const std::string& out_path, const std::string& matformer);

}  // namespace g3n
