// `g3n debug ...`: stable interfaces for checking the engine against reference engines.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "model/model.h"
#include "runtime/context.h"

namespace g3n::cli {
namespace {

std::vector<int32_t> parse_token_list(const std::string& s) {
  std::vector<int32_t> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    size_t used = 0;
    long v = 0;
    try {
      v = std::stol(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument("--tokens: '" + item + "' is not a token id");
    out.push_back(static_cast<int32_t>(v));
  }
  if (out.empty()) throw std::invalid_argument("--tokens: no token ids given");
  return out;
}

struct LogitsOptions {
  std::string model, tokens, out, kv = "f32";
  int ctx = 0, threads = 0;
  bool incremental = false;
  bool fast = false;
};

void run_debug_logits(const LogitsOptions& o) {
  const auto tokens = parse_token_list(o.tokens);
  auto model = Model::load(o.model);
  ContextParams p;
  p.n_ctx = o.ctx > 0 ? o.ctx : std::max<int>(256, static_cast<int>(tokens.size()));
  p.n_threads = o.threads;
  p.exact = !o.fast;
  if (o.kv == "f32") p.kv_type = KvType::F32;
  else if (o.kv == "f16") p.kv_type = KvType::F16;
  else throw std::invalid_argument("--kv must be f32 or f16");
  Context ctx(*model, p);
  const int V = ctx.n_vocab();
  std::vector<float> all(tokens.size() * static_cast<size_t>(V));
  if (o.incremental) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      ctx.eval(std::span<const int32_t>(&tokens[i], 1), LogitsFor::Last);
      std::copy(ctx.last_logits().begin(), ctx.last_logits().end(), all.begin() + i * V);
    }
  } else {
    ctx.eval(tokens, LogitsFor::All);
    for (size_t i = 0; i < tokens.size(); ++i)
      std::copy(ctx.logits(static_cast<int>(i)).begin(), ctx.logits(static_cast<int>(i)).end(), all.begin() + i * V);
  }
  // Write via a temporary so a failed run never leaves a truncated file under the requested name.
  const std::string tmp = o.out + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write " + tmp);
    f.write(reinterpret_cast<const char*>(all.data()), static_cast<std::streamsize>(all.size() * sizeof(float)));
    if (!f) throw std::runtime_error("write failed: " + tmp);
  }
  if (std::rename(tmp.c_str(), o.out.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp + " to " + o.out);
  std::fprintf(stderr, "wrote %zu x %d logits to %s\n", tokens.size(), V, o.out.c_str());
}

}  // namespace

void add_debug_commands(CLI::App& app) {
  auto* debug = app.add_subcommand("debug", "Debugging interfaces (stable; see README)");
  debug->require_subcommand(1);
  auto opts = std::make_shared<LogitsOptions>();
  auto* logits = debug->add_subcommand("logits", "Write float32 logits [n_tokens, n_vocab] for every position");
  logits->add_option("model", opts->model, "GGUF model file")->required();
  logits->add_option("--tokens", opts->tokens, "comma-separated token ids")->required();
  logits->add_option("--out", opts->out, "output file (float32 little-endian)")->required();
  logits->add_option("--ctx", opts->ctx, "context length (default max(256, n_tokens))");
  logits->add_option("--kv", opts->kv, "KV cache type: f32 (default) or f16");
  logits->add_flag("--incremental", opts->incremental, "evaluate one token at a time");
  logits->add_option("--threads", opts->threads, "threads (default: physical cores)");
  logits->add_flag("--fast", opts->fast, "use the fast path (int8 activations) instead of the exact one");
  logits->callback([opts] { run_debug_logits(*opts); });
  add_tokenize_command(*debug);
}

}  // namespace g3n::cli
