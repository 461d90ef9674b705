// `g3n debug ...`: stable interfaces for checking the engine against reference engines.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "cli/commands.h"
#include "model/model.h"
#include "runtime/context.h"
#include "runtime/input_rows.h"

namespace g3n::cli {
namespace {

std::vector<int32_t> parse_token_list(const std::string& s, const char* flag = "--tokens") {
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
    if (used != item.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(std::string(flag) + ": '" + item + "' is not a token id");
    out.push_back(static_cast<int32_t>(v));
  }
  if (out.empty()) throw std::invalid_argument(std::string(flag) + ": no token ids given");
  return out;
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  f.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(f.tellg());
  if (size % sizeof(float) != 0) throw std::runtime_error(path + ": " + std::to_string(size) + " bytes is not a whole number of float32 values");
  f.seekg(0);
  std::vector<float> v(size / sizeof(float));
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(size));
  if (!f) throw std::runtime_error("cannot read " + path);
  return v;
}

// A rows case (golden/multimodal format): {"rows": [{"token": id} | {"embedding": k}, ...],
// "embeddings_file": "..."}; vector k is row k of the embeddings file, n_embd floats each.
InputRows read_rows_case(const std::string& case_path, std::string embeddings_path, int64_t n_embd) {
  std::ifstream f(case_path);
  if (!f) throw std::runtime_error("cannot open " + case_path);
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw std::runtime_error(case_path + ": " + e.what());
  }
  if (!doc.is_object() || !doc.contains("rows") || !doc["rows"].is_array() || doc["rows"].empty())
    throw std::runtime_error(case_path + ": expected an object with a non-empty \"rows\" array");
  if (embeddings_path.empty() && doc.contains("embeddings_file") && doc["embeddings_file"].is_string())
    embeddings_path = (std::filesystem::path(case_path).parent_path() / doc["embeddings_file"].get<std::string>()).string();
  std::vector<float> emb;
  InputRows rows;
  for (const auto& r : doc["rows"]) {
    if (r.is_object() && r.size() == 1 && r.contains("token") && r["token"].is_number_integer()) {
      const int64_t id = r["token"].get<int64_t>();
      if (id < 0 || id > INT32_MAX) throw std::runtime_error(case_path + ": token id " + std::to_string(id) + " out of range");
      rows.push_token(static_cast<int32_t>(id));
    } else if (r.is_object() && r.size() == 1 && r.contains("embedding") && r["embedding"].is_number_integer()) {
      if (embeddings_path.empty()) throw std::runtime_error(case_path + ": embedding rows but no --embeddings file");
      if (emb.empty()) {
        emb = read_floats(embeddings_path);
        if (emb.empty() || emb.size() % static_cast<uint64_t>(n_embd) != 0)
          throw std::runtime_error(embeddings_path + ": " + std::to_string(emb.size()) + " floats are not whole vectors of n_embd = " +
                                   std::to_string(n_embd) + " floats");
      }
      const int64_t k = r["embedding"].get<int64_t>();
      const int64_t count = static_cast<int64_t>(emb.size()) / n_embd;
      if (k < 0 || k >= count)
        throw std::runtime_error(case_path + ": embedding " + std::to_string(k) + " outside " + embeddings_path + " (" + std::to_string(count) + " vectors)");
      rows.push_vectors(std::span<const float>(emb).subspan(static_cast<size_t>(k * n_embd), static_cast<size_t>(n_embd)), n_embd);
    } else {
      throw std::runtime_error(case_path + ": each row must be {\"token\": id} or {\"embedding\": k}, got " + r.dump());
    }
  }
  return rows;
}

struct LogitsOptions {
  std::string model, tokens, rows, embeddings, append_tokens, out, kv = "f32";
  int ctx = 0, threads = 0;
  bool incremental = false;
  bool fast = false;
};

void run_debug_logits(const LogitsOptions& o) {
  if (o.tokens.empty() == o.rows.empty()) throw std::invalid_argument("give exactly one of --tokens and --rows");
  if (o.rows.empty() && (!o.embeddings.empty() || !o.append_tokens.empty()))
    throw std::invalid_argument("--embeddings and --append-tokens go with --rows");
  auto model = Model::load(o.model);
  InputRows rows;
  if (!o.tokens.empty()) {
    rows.push_tokens(parse_token_list(o.tokens));
  } else {
    rows = read_rows_case(o.rows, o.embeddings, model->config().n_embd);
    if (!o.append_tokens.empty()) rows.push_tokens(parse_token_list(o.append_tokens, "--append-tokens"));
  }
  ContextParams p;
  p.n_ctx = o.ctx > 0 ? o.ctx : std::max<int>(256, static_cast<int>(rows.size()));
  p.n_threads = o.threads;
  p.exact = !o.fast;
  if (o.kv == "f32") p.kv_type = KvType::F32;
  else if (o.kv == "f16") p.kv_type = KvType::F16;
  else throw std::invalid_argument("--kv must be f32 or f16");
  Context ctx(*model, p);
  const int V = ctx.n_vocab();
  const size_t n = rows.size();
  std::vector<float> all(n * static_cast<size_t>(V));
  if (o.incremental) {
    for (size_t i = 0; i < n; ++i) {
      ctx.eval(rows.view().subspan(i, 1), LogitsFor::Last);
      std::copy(ctx.last_logits().begin(), ctx.last_logits().end(), all.begin() + i * V);
    }
  } else {
    ctx.eval(rows.view(), LogitsFor::All);
    for (size_t i = 0; i < n; ++i)
      std::copy(ctx.logits(static_cast<int>(i)).begin(), ctx.logits(static_cast<int>(i)).end(), all.begin() + i * V);
  }
  // A failed run never leaves a truncated file under the requested name.
  write_file_atomic(o.out, std::string_view(reinterpret_cast<const char*>(all.data()), all.size() * sizeof(float)));
  std::fprintf(stderr, "wrote %zu x %d logits to %s\n", n, V, o.out.c_str());
}

}  // namespace

void add_debug_commands(CLI::App& app) {
  auto* debug = app.add_subcommand("debug", "Debugging interfaces (stable; see README)");
  debug->require_subcommand(1);
  auto opts = std::make_shared<LogitsOptions>();
  auto* logits = debug->add_subcommand("logits", "Write float32 logits [n_rows, n_vocab] for every position");
  logits->add_option("model", opts->model, "GGUF model file")->required();
  logits->add_option("--tokens", opts->tokens, "comma-separated token ids");
  logits->add_option("--rows", opts->rows, "JSON case whose rows are {\"token\": id} or {\"embedding\": k} (golden/multimodal format)");
  logits->add_option("--embeddings", opts->embeddings, "float32 vectors [k, n_embd] for --rows (default: the case's embeddings_file, relative to it)");
  logits->add_option("--append-tokens", opts->append_tokens, "comma-separated token ids added after the --rows case");
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
