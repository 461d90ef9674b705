// `g3n create-random`: writes a random-weight Gemma 3n GGUF and/or its projector (vision and audio towers),
// for tests and benchmarks.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "base/clock.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "gguf/gguf.h"
#include "tools/hf_test_checkpoint.h"
#include "tools/random_mmproj.h"
#include "tools/random_model.h"

namespace g3n::cli {
namespace {
struct Options {
  std::string out, preset = "tiny", layout = "llamacpp", quant = "q4_k_m", vocab, hf, hf_dtype = "BF16";
  uint64_t seed = 1;
  int threads = 0, layers = 0, vocab_rows = 0, ple_rows = 0;
  // Vision projector.
  std::string mmproj, mmproj_arch, mmproj_type = "f16", mmproj_audio;
  bool mmproj_only = false, mmproj_flat_gamma = false, mmproj_no_vision = false;
  float mmproj_layer_scale = 0.1f;
};

// Presets at the fixture's width (small vocabulary, tiny projector).
bool tiny_width(const std::string& preset) { return preset == "tiny" || preset == "e4b-mini"; }

// The projector for the text preset: the fixtures' tiny towers for "tiny", Gemma 3n's real
// mobilenetv5_300m_enc and USM conformer for e2b/e4b; its text width is the preset's n_embd.
void write_mmproj(const Options& o, const RandomModelSpec& text, const std::string& path) {
  const std::string arch = !o.mmproj_arch.empty() ? o.mmproj_arch : tiny_width(o.preset) ? "tiny" : "mobilenetv5_300m_enc";
  auto spec = random_mmproj_preset(arch);
  if (!spec) throw std::invalid_argument("unknown --mmproj-arch '" + arch + "' (tiny, mobilenetv5_300m_enc)");
  spec->text_width = text.n_embd;
  spec->type = o.mmproj_type;
  spec->flat_layer_scale = o.mmproj_flat_gamma;
  spec->layer_scale = o.mmproj_layer_scale;
  spec->seed = o.seed;
  spec->vision = !o.mmproj_no_vision;
  const std::string audio = !o.mmproj_audio.empty() ? o.mmproj_audio : tiny_width(o.preset) ? "tiny" : "usm";
  if (audio != "none") {
    spec->audio = random_audio_preset(audio);
    if (!spec->audio) throw std::invalid_argument("unknown --mmproj-audio '" + audio + "' (tiny, usm, none)");
  }
  const MmprojParamCount n = count_mmproj_params(plan_random_mmproj(*spec));
  const auto t0 = std::chrono::steady_clock::now();
  write_random_mmproj(*spec, path, o.threads);
  std::string parts;
  if (spec->vision)
    parts += spec->name + " vision tower " + std::to_string(n.tower) + " + embedder " + std::to_string(n.embedder) + " parameters";
  if (spec->audio)
    parts += std::string(parts.empty() ? "" : "; ") + spec->audio->name + " audio tower " + std::to_string(n.audio_tower) + " + embedder " +
             std::to_string(n.audio_embedder) + " parameters";
  std::fprintf(stderr, "wrote %s (%s, %.2f GB) in %.1f s\n", path.c_str(), parts.c_str(), std::filesystem::file_size(path) / 1e9,
               seconds_since(t0));
}

void run(const Options& o) {
  auto spec = random_model_preset(o.preset);
  if (!spec) throw std::invalid_argument("unknown preset '" + o.preset + "' (tiny, e4b-mini, e2b, e4b)");
  if (o.layout == "ollama") {
    spec->layout = GgufLayout::Ollama;
    // The registry blob keeps all 262400 token rows (text + image + audio ids).
    if (!tiny_width(o.preset)) spec->n_vocab = 262400;
    else spec->n_vocab = 512;
  } else if (o.layout != "llamacpp") {
    throw std::invalid_argument("--layout must be llamacpp or ollama");
  }
  spec->quant = o.quant;
  spec->seed = o.seed;
  spec->vocab_path = o.vocab;
  if (o.layers > 0) {
    spec->n_layer = o.layers;
    spec->shared_kv_layers = o.layers > 20 ? o.layers - 20 : 0;
  }
  if (o.vocab_rows > 0) spec->n_vocab = o.vocab_rows;
  if (o.ple_rows > 0) spec->n_vocab_per_layer = o.ple_rows;
  if (o.mmproj_only) {
    if (!o.mmproj.empty()) throw std::invalid_argument("--mmproj-only writes the projector to OUT; do not also pass --mmproj");
    write_mmproj(o, *spec, o.out);
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  write_random_gemma3n(*spec, o.out, o.threads);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "wrote %s (%.2f GB) in %.1f s\n", o.out.c_str(), std::filesystem::file_size(o.out) / 1e9, s);
  if (!o.mmproj.empty()) write_mmproj(o, *spec, o.mmproj);
  if (!o.hf.empty()) {
    // The same weights as a Hugging Face checkpoint, the input of `g3n create --from-hf` (its benchmark).
    const auto t1 = std::chrono::steady_clock::now();
    HfTestCheckpointOptions h;
    h.dtype = o.hf_dtype;
    h.n_shards = tiny_width(o.preset) ? 2 : 3;
    h.n_threads = o.threads > 0 ? o.threads : default_thread_count();
    // With --mmproj the towers join the checkpoint (model.vision_tower.*, model.audio_tower.*,
    // model.embed_*), as in Google's: real-shape conversions then include them.
    if (!o.mmproj.empty()) h.mmproj_from = {o.mmproj};
    write_hf_test_checkpoint(GgufFile::open(o.out), o.hf, h);
    std::fprintf(stderr, "wrote the checkpoint %s in %.1f s\n", o.hf.c_str(), seconds_since(t1));
  }
}
}  // namespace

void add_create_random_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto* c = app.add_subcommand("create-random", "Write a random-weight Gemma 3n GGUF and/or projector (tests, benchmarks)");
  c->add_option("out", o->out, "output .gguf path (the projector's with --mmproj-only)")->required();
  c->add_option("--preset", o->preset, "shape: tiny (fixture shape), e4b-mini (E4B's layers at the tiny width), e2b, e4b");
  c->add_option("--layout", o->layout, "llamacpp (default) or ollama (registry blob: F16 per-layer table, 262400 rows)");
  c->add_option("--quant", o->quant, "f32, f16, bf16, q8_0, q4_0, q4_k_m (default), q5_k_m, q6_k");
  c->add_option("--vocab", o->vocab, "vocab-only GGUF whose tokenizer to copy (token count must equal the rows)");
  c->add_option("--seed", o->seed, "random seed");
  c->add_option("--threads", o->threads, "threads (default: physical cores)");
  c->add_option("--layers", o->layers, "override the layer count");
  c->add_option("--vocab-rows", o->vocab_rows, "override token_embd rows");
  c->add_option("--ple-rows", o->ple_rows, "override per_layer_token_embd rows");
  c->add_option("--hf", o->hf, "also write the model as a Hugging Face checkpoint directory (config.json, safetensors "
                 "shards, tokenizer.json; with --mmproj the vision and audio towers too) for `g3n create --from-hf`");
  c->add_option("--hf-dtype", o->hf_dtype, "the checkpoint's tensors: BF16 (default, as Google's), F16 or F32");
  c->add_option("--mmproj", o->mmproj, "also write a random projector (mmproj GGUF: vision and audio towers) for the model here");
  c->add_flag("--mmproj-only", o->mmproj_only, "write only the projector, to OUT");
  c->add_option("--mmproj-arch", o->mmproj_arch,
                "projector tower: tiny (the vision fixture's shape; default for --preset tiny) or mobilenetv5_300m_enc "
                "(Gemma 3n's, 768x768, 84 blocks; default for e2b/e4b)");
  c->add_option("--mmproj-audio", o->mmproj_audio,
                "projector audio tower: tiny (the audio fixture's shape; default for --preset tiny), usm (Gemma 3n's conformer, "
                "default for e2b/e4b) or none");
  c->add_flag("--mmproj-no-vision", o->mmproj_no_vision, "a projector with the audio tower only");
  c->add_option("--mmproj-type", o->mmproj_type, "projector tensors: f16 (default; norms, layer scales, stem in F32) or f32");
  c->add_flag("--mmproj-flat-gamma", o->mmproj_flat_gamma,
              "layer scales as ne [C] (the converter's output, which llama.cpp's runtime rejects) instead of [1, 1, C, 1]");
  c->add_option("--mmproj-layer-scale", o->mmproj_layer_scale, "mean of the random layer scales (default 0.1)");
  c->callback([o] { run(*o); });
}

}  // namespace g3n::cli
