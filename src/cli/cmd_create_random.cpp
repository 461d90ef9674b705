// `g3n create-random`: writes a random-weight Gemma 3n GGUF (for tests and benchmarks).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "cli/commands.h"
#include "tools/random_model.h"

namespace g3n::cli {
namespace {
struct Options {
  std::string out, preset = "tiny", layout = "llamacpp", quant = "q4_k_m", vocab;
  uint64_t seed = 1;
  int threads = 0, layers = 0, vocab_rows = 0, ple_rows = 0;
};

void run(const Options& o) {
  auto spec = random_model_preset(o.preset);
  if (!spec) throw std::invalid_argument("unknown preset '" + o.preset + "' (tiny, e2b, e4b)");
  if (o.layout == "ollama") {
    spec->layout = GgufLayout::Ollama;
    // The registry blob keeps all 262400 token rows (text + image + audio ids).
    if (o.preset != "tiny") spec->n_vocab = 262400;
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
  const auto t0 = std::chrono::steady_clock::now();
  write_random_gemma3n(*spec, o.out, o.threads);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "wrote %s (%.2f GB) in %.1f s\n", o.out.c_str(), std::filesystem::file_size(o.out) / 1e9, s);
}
}  // namespace

void add_create_random_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto* c = app.add_subcommand("create-random", "Write a random-weight Gemma 3n GGUF (tests, benchmarks)");
  c->add_option("out", o->out, "output .gguf path")->required();
  c->add_option("--preset", o->preset, "shape: tiny (fixture shape), e2b, e4b");
  c->add_option("--layout", o->layout, "llamacpp (default) or ollama (registry blob: F16 per-layer table, 262400 rows)");
  c->add_option("--quant", o->quant, "f32, f16, bf16, q8_0, q4_0, q4_k_m (default), q5_k_m, q6_k");
  c->add_option("--vocab", o->vocab, "vocab-only GGUF whose tokenizer to copy (token count must equal the rows)");
  c->add_option("--seed", o->seed, "random seed");
  c->add_option("--threads", o->threads, "threads (default: physical cores)");
  c->add_option("--layers", o->layers, "override the layer count");
  c->add_option("--vocab-rows", o->vocab_rows, "override token_embd rows");
  c->add_option("--ple-rows", o->ple_rows, "override per_layer_token_embd rows");
  c->callback([o] { run(*o); });
}

}  // namespace g3n::cli
