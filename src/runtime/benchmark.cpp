#include "runtime/benchmark.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <span>
#include <stdexcept>

#include "model/model.h"

namespace g3n {
namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
int32_t argmax(std::span<const float> x) {
  return static_cast<int32_t>(std::max_element(x.begin(), x.end()) - x.begin());
}
}  // namespace

double BenchRun::gen_tokens_per_s(int n_gen) const { return gen_s > 0 ? n_gen / gen_s : 0; }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

uint64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

BenchResult run_benchmark(const Model& model, const BenchParams& p) {
  if (p.n_prompt < 1 || p.n_gen < 0 || p.repeats < 1) throw std::invalid_argument("bench: need n_prompt >= 1, n_gen >= 0, repeats >= 1");
  BenchResult r;
  r.params = p;
  // Ids from the middle of the vocabulary: ordinary text pieces in real files, any row in tiny ones.
  const int32_t V = model.config().n_vocab;
  const int32_t lo = std::min<int32_t>(1000, V / 4), hi = std::min<int32_t>(V, 200000);
  std::vector<int32_t> prompt(p.n_prompt);
  uint64_t s = p.seed;
  for (auto& t : prompt) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    t = lo + static_cast<int32_t>((s >> 33) % static_cast<uint64_t>(hi - lo));
  }
  prompt[0] = 2;  // BOS
  ContextParams cp;
  cp.n_ctx = p.n_prompt + p.n_gen + 1;
  cp.n_batch = std::min(p.n_prompt, 512);
  cp.n_threads = p.n_threads;
  cp.kv_type = p.kv_type;
  cp.exact = p.exact;
  cp.prefill_shortcut = p.prefill_shortcut;
  Context ctx(model, cp);
  std::vector<double> pp, tg, ttft;
  for (int rep = 0; rep < p.repeats; ++rep) {
    ctx.reset();
    BenchRun run;
    const auto t0 = std::chrono::steady_clock::now();
    ctx.eval(prompt, 0, LogitsFor::Last);
    run.prompt_s = since(t0);
    int32_t next = argmax(ctx.last_logits());
    run.ttft_s = since(t0);
    const auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < p.n_gen; ++i) {
      ctx.eval(std::span<const int32_t>(&next, 1), LogitsFor::Last);
      next = argmax(ctx.last_logits());
    }
    run.gen_s = since(t1);
    r.runs.push_back(run);
    pp.push_back(p.n_prompt / run.prompt_s);
    tg.push_back(run.gen_tokens_per_s(p.n_gen));
    ttft.push_back(run.ttft_s);
  }
  r.median_prompt_tokens_per_s = median(pp);
  r.median_gen_tokens_per_s = median(tg);
  r.median_ttft_s = median(ttft);
  return r;
}

}  // namespace g3n
