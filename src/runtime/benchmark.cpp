#include "runtime/benchmark.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <span>
#include <stdexcept>

#include "model/model.h"
#include "runtime/batch_engine.h"

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
  EngineParams ep;
  ep.n_ctx = p.n_prompt + p.n_gen + 1;
  ep.n_batch = std::min(p.n_prompt, 512);
  ep.n_threads = p.n_threads;
  ep.kv_type = p.kv_type;
  ep.exact = p.exact;
  ep.prefill_shortcut = p.prefill_shortcut;
  BatchEngine engine(model, ep);
  const int n_seq = std::max(1, p.n_parallel);
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (int i = 0; i < n_seq; ++i) seqs.push_back(engine.new_sequence());
  std::vector<double> pp, tg, ttft;
  std::vector<int32_t> next(n_seq);
  std::vector<SequenceWork> work;
  for (int rep = 0; rep < p.repeats; ++rep) {
    BenchRun run;
    // Prefill: the first sequence is timed alone (prompt speed, TTFT); the others join afterwards.
    for (auto& s : seqs) s->reset();
    const auto t0 = std::chrono::steady_clock::now();
    SequenceWork first{seqs[0].get(), prompt, 0, LogitsFor::Last};
    engine.eval(std::span<const SequenceWork>(&first, 1));
    run.prompt_s = since(t0);
    next[0] = argmax(seqs[0]->last_logits());
    run.ttft_s = since(t0);
    for (int i = 1; i < n_seq; ++i) {
      SequenceWork w{seqs[i].get(), prompt, 0, LogitsFor::Last};
      engine.eval(std::span<const SequenceWork>(&w, 1));
      next[i] = argmax(seqs[i]->last_logits());
    }
    // Generation: one forward pass decodes a token for every sequence.
    const auto t1 = std::chrono::steady_clock::now();
    for (int step = 0; step < p.n_gen; ++step) {
      work.clear();
      for (int i = 0; i < n_seq; ++i) work.push_back({seqs[i].get(), std::span<const int32_t>(&next[i], 1), seqs[i]->n_past(), LogitsFor::Last});
      engine.eval(work);
      for (int i = 0; i < n_seq; ++i) next[i] = argmax(seqs[i]->last_logits());
    }
    run.gen_s = since(t1);
    r.runs.push_back(run);
    pp.push_back(p.n_prompt / run.prompt_s);
    tg.push_back(run.gen_tokens_per_s(p.n_gen) * n_seq);
    ttft.push_back(run.ttft_s);
  }
  r.median_prompt_tokens_per_s = median(pp);
  r.median_gen_tokens_per_s = median(tg);
  r.median_ttft_s = median(ttft);
  return r;
}

}  // namespace g3n
