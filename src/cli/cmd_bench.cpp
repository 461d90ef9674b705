// `g3n bench MODEL`: load time, time to first token, prompt and generation speed, peak RSS.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "base/thread_pool.h"
#include "cli/commands.h"
#include "model/model.h"
#include "runtime/benchmark.h"

namespace g3n::cli {
namespace {
struct Options {
  std::string model, kv = "f16";
  int prompt = 512, gen = 64, threads = 0, repeats = 3, parallel = 1, ctx = 0;
  bool json = false, exact = false, no_shortcut = false;
};

void run(const Options& o) {
  BenchParams p;
  p.n_prompt = o.prompt;
  p.n_gen = o.gen;
  p.repeats = o.repeats;
  p.n_threads = o.threads > 0 ? o.threads : default_thread_count();
  p.exact = o.exact;
  p.n_parallel = o.parallel;
  p.n_ctx = o.ctx;
  p.prefill_shortcut = !o.no_shortcut;
  if (o.kv == "f32") p.kv_type = KvType::F32;
  else if (o.kv != "f16") throw std::invalid_argument("--kv must be f16 or f32");
  // Before the model exists, so its buffer never counts toward the peak RSS reported below.
  const double bandwidth = measure_read_bandwidth(p.n_threads);
  std::vector<double> loads;
  std::unique_ptr<Model> model;
  for (int i = 0; i < o.repeats; ++i) {
    model.reset();
    const auto t0 = std::chrono::steady_clock::now();
    model = Model::load(o.model);
    loads.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const BenchResult r = run_benchmark(*model, p);
  const double load_s = median(loads);
  const uint64_t rss = peak_rss_bytes();
  // A decode step reads the weights once for all its sequences.
  const uint64_t step_bytes = decode_weight_bytes(*model);
  const double traffic = static_cast<double>(step_bytes) * r.median_gen_tokens_per_s / std::max(1, o.parallel);
  const double fraction = bandwidth > 0 ? traffic / bandwidth : 0;
  if (o.json) {
    nlohmann::json j;
    j["model"] = o.model;
    j["threads"] = p.n_threads;
    j["n_prompt"] = p.n_prompt;
    j["n_gen"] = p.n_gen;
    j["repeats"] = p.repeats;
    j["kv_type"] = o.kv;
    j["parallel"] = o.parallel;
    j["n_ctx"] = std::max(o.ctx, o.prompt + o.gen + 1);
    j["exact"] = o.exact;
    j["prefill_shortcut"] = !o.no_shortcut;
    j["prompt_tokens_per_s"] = r.median_prompt_tokens_per_s;
    j["gen_tokens_per_s"] = r.median_gen_tokens_per_s;
    j["ttft_s"] = r.median_ttft_s;
    j["load_s"] = load_s;
    j["peak_rss_bytes"] = rss;
    j["decode_weight_bytes"] = step_bytes;
    j["mem_read_bytes_per_s"] = bandwidth;
    j["gen_bandwidth_fraction"] = fraction;
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& run : r.runs)
      runs.push_back({{"prompt_s", run.prompt_s}, {"ttft_s", run.ttft_s}, {"gen_s", run.gen_s}});
    j["runs"] = runs;
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("model      %s\nthreads    %d, kv %s, %d repeats (medians)\n", o.model.c_str(), p.n_threads, o.kv.c_str(), p.repeats);
  std::printf("load       %.3f s\n", load_s);
  std::printf("prompt     %d tokens: %.2f tokens/s\n", p.n_prompt, r.median_prompt_tokens_per_s);
  std::printf("ttft       %.3f s\n", r.median_ttft_s);
  std::printf("generation %d tokens x %d sequences: %.2f tokens/s\n", p.n_gen, p.n_parallel, r.median_gen_tokens_per_s);
  std::printf("peak RSS   %.1f MB\n", rss / 1e6);
  std::printf("bandwidth  decode reads %.2f GB of weights per step: %.1f GB/s, %.0f%% of the measured %.1f GB/s\n",
              step_bytes / 1e9, traffic / 1e9, 100 * fraction, bandwidth / 1e9);
}
}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto* c = app.add_subcommand("bench", "Measure load time, prompt and generation speed, peak memory");
  c->add_option("model", o->model, "GGUF model file")->required();
  c->add_option("--prompt", o->prompt, "prompt tokens (default 512)");
  c->add_option("--gen", o->gen, "generated tokens (default 64)");
  c->add_option("--threads", o->threads, "threads (default: physical cores)");
  c->add_option("--repeats", o->repeats, "repeats; medians are reported (default 3)");
  c->add_option("--kv", o->kv, "KV cache type: f16 (default) or f32");
  c->add_flag("--json", o->json, "print one JSON object");
  c->add_option("--ctx", o->ctx, "KV cache length per sequence (default: prompt + gen + 1); sizes the memory figure");
  c->add_option("--parallel", o->parallel, "sequences decoding together; generation tok/s is their sum (default 1)");
  c->add_flag("--exact", o->exact, "exact arithmetic (f32 activations) instead of the fast path");
  c->add_flag("--no-prefill-shortcut", o->no_shortcut, "run KV-sharing layers for every prompt token (to measure the shortcut)");
  c->callback([o] { run(*o); });
}

}  // namespace g3n::cli
