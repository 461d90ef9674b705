#include "server/create_quantize.h"

#include <unistd.h>

#include <atomic>
#include <cctype>

#include "gguf/gguf.h"
#include "server/options.h"
#include "store/blob_upload.h"
#include "store/file_util.h"
#include "store/modelfile.h"
#include "tools/quant_plan.h"

namespace g3n::server {
namespace {

namespace fs = std::filesystem;

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

QuantTarget quant_target_or_400(const std::string& requested) {
  const auto target = parse_quant_target(requested);
  if (!target)
    throw HttpError(400, "unsupported quantization type \"" + requested + "\" (g3n quantizes to q4_K_M, q5_K_M, q6_K, q8_0, q4_0, f16, bf16, f32)");
  return *target;
}

std::string quant_type_name(QuantTarget t) { return upper(quant_target_name(t)); }

QuantizePlan plan_quantize(const fs::path& model, const std::string& requested) {
  const QuantTarget target = quant_target_or_400(requested);
  std::optional<GgufFile> f;
  try {
    f.emplace(GgufFile::open(model.string()));
  } catch (const std::exception& e) {
    throw HttpError(400, std::string("cannot read the model to quantize: ") + e.what());
  }
  const std::string arch = f->get_string("general.architecture").value_or("");
  if (arch != "gemma3n") throw HttpError(400, "quantize: g3n quantizes gemma3n models; this one's architecture is \"" + arch + "\"");
  const auto sum = store::summarize_gguf(model);
  for (const auto& t : f->tensors())
    if (!is_float_type(t.type))
      throw HttpError(400, "quantization is only supported for F16 and F32 models (and BF16); this one is " +
                               (sum && !sum->quantization.empty() ? sum->quantization : std::string("quantized")));
  QuantizePlan p;
  p.target = target;
  p.from_type = sum && !sum->quantization.empty() && sum->quantization != "unknown" ? sum->quantization : "F16";
  p.to_type = quant_type_name(target);
  return p;
}

QuantizeResult run_quantize(store::ModelStore& store, const fs::path& model, const QuantizePlan& plan) {
  std::error_code ec;
  fs::create_directories(store.blobs_dir(), ec);
  if (ec) throw store::StoreError("cannot create " + store.blobs_dir().string() + ": " + ec.message());
  // Written beside the blobs (same filesystem: the blob is then a rename), named for nothing a blob or a
  // prune would take.
  static std::atomic<uint64_t> counter{0};
  const fs::path out = store.blobs_dir() / (".quantize-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + ".gguf");
  try {
    const GgufFile in = GgufFile::open(model.string());
    quantize_gemma3n_gguf(in, out.string(), plan.target, detect_gguf_layout(in));
    const store::AdoptedFile a = store::adopt_file_as_blob(store, out);
    return QuantizeResult{a.digest, a.created};
  } catch (...) {
    fs::remove(out, ec);
    throw;
  }
}

}  // namespace g3n::server
