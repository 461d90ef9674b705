// POST /api/create's `quantize`: the text model re-quantized (from F16, BF16 or F32 weights) into a new
// blob of the store, as Ollama's create does.
#pragma once
#include <filesystem>
#include <string>

#include "store/model_store.h"
#include "tools/quant_plan.h"

namespace g3n::server {

struct QuantizePlan {
  QuantTarget target;
  std::string from_type;  // "F16", "BF16", "F32"
  std::string to_type;    // "Q4_K_M", ...: the canonical spelling
};

// `quantize` as a target (any case, as Ollama reads it: tools/quant_plan.h's targets); HttpError(400) naming
// the types g3n writes for anything else.
QuantTarget quant_target_or_400(const std::string& requested);
// The canonical spelling of a target, as Ollama's messages give it: "Q4_K_M", "F16".
std::string quant_type_name(QuantTarget t);

// Checks a request before any work: the type is one g3n quantizes to (any case, as Ollama reads it:
// tools/quant_plan.h's targets), the model is a gemma3n GGUF and not quantized already ("quantization
// is only supported for F16 and F32 models"). Throws HttpError(400).
QuantizePlan plan_quantize(const std::filesystem::path& model, const std::string& requested);

struct QuantizeResult {
  std::string digest;    // the quantized model's blob
  bool created = false;  // false: the store had that blob already
};
// Writes the quantized copy (tools/quant_plan.h's table, the source's layout kept) to a temporary file in
// the store's blob folder and makes it a blob. Throws on failure, the temporary file removed.
QuantizeResult run_quantize(store::ModelStore& store, const std::filesystem::path& model, const QuantizePlan& plan);

}  // namespace g3n::server
