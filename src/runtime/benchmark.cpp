#include "runtime/benchmark.h"

#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <span>
#include <stdexcept>

#include "base/file.h"
#include "base/thread_pool.h"
#include "kernels/packed_panels.h"
#include "model/model.h"
#include "runtime/batch_engine.h"
#include "runtime/generator.h"

namespace g3n {
namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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
  // VmHWM belongs to this process image: unlike getrusage's ru_maxrss it is not inherited across
  // fork + exec, so a bench that re-executes itself gets the child's own peak.
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    unsigned long long kib = 0;
    bool found = false;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "VmHWM: %llu kB", &kib) == 1) {
        found = true;
        break;
      }
    std::fclose(f);
    if (found) return static_cast<uint64_t>(kib) * 1024;
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

uint64_t decode_weight_bytes(const Model& model, uint64_t* packed) {
  const auto& c = model.config();
  const auto& w = model.weights();
  if (packed) *packed = 0;
  // Bytes a product reads: n_in elements of each row (less than the stride on a MatFormer column view), or
  // the packed matrix (its scales unpacked; never a sparse layer's partly read up projection).
  auto bytes = [packed](const WeightMatrix& m) -> uint64_t {
    if (m.empty()) return 0;
    if (m.packed) {
      const uint64_t b = packed_matrix_bytes(m.type, m.n_in, m.n_out);
      if (packed) *packed += b;
      return b;
    }
    return static_cast<uint64_t>(m.n_out) * ggml_row_bytes(m.type, static_cast<uint64_t>(m.n_in)).value_or(m.row_bytes);
  };
  uint64_t total = bytes(w.output) + w.token_embd.row_bytes;
  for (const auto& run : w.per_layer) total += bytes(run.model_proj) + ggml_row_bytes(run.token_embd.type, static_cast<uint64_t>(run.token_embd.n_in)).value_or(0);
  for (const auto& m : w.altup_proj) total += bytes(m);
  for (const auto& m : w.altup_unembd_proj) total += bytes(m);
  for (int l = 0; l < c.n_layer; ++l) {
    const auto& lw = w.layers[l];
    for (const WeightMatrix* m : {&lw.altup_router, &lw.altup_predict_coef, &lw.altup_correct_coef, &lw.attn_q,
                                  &lw.attn_output, &lw.laurel_l, &lw.laurel_r, &lw.ffn_gate, &lw.inp_gate, &lw.proj})
      total += bytes(*m);
    const double kappa = c.sparsity_std_multiplier[l];
    if (kappa <= 0) {
      total += bytes(lw.ffn_up) + bytes(lw.ffn_down);
      continue;
    }
    // Sparse layer: the expected share of surviving activations is the Gaussian tail above kappa (the
    // assumption the top-k rule is built on: 5% at 1.6449). Only their ffn_up rows are read, and of a
    // column copy of ffn_down only their columns plus every row's scales.
    const double keep = 0.5 * std::erfc(kappa / std::sqrt(2.0));
    total += static_cast<uint64_t>(keep * static_cast<double>(bytes(lw.ffn_up)));
    const SparseColumns& cols = lw.ffn_down_cols;
    if (cols.empty()) {
      total += bytes(lw.ffn_down);
    } else {
      const uint64_t blocks = static_cast<uint64_t>(cols.n_in / 256);
      const uint64_t quant_per_col = static_cast<uint64_t>(cols.n_out) * (cols.type == GgmlType::Q4_K ? 128 : 192) / 256;
      const uint64_t scales = cols.block_bytes() * blocks - quant_per_col * 256 * blocks;
      total += scales + static_cast<uint64_t>(keep * static_cast<double>(quant_per_col * 256 * blocks));
    }
    if (c.owns_kv(l)) total += bytes(lw.attn_k) + bytes(lw.attn_v);
  }
  return total;
}

double measure_read_bandwidth(int n_threads) {
  constexpr size_t kBytes = size_t(256) << 20;
  void* mem = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 0;
  const Mapping region(mem, kBytes);
  auto* words = static_cast<uint64_t*>(mem);
  const int64_t n = static_cast<int64_t>(kBytes / sizeof(uint64_t));
  for (int64_t i = 0; i < n; ++i) words[i] = static_cast<uint64_t>(i);  // fault every page in first
  ThreadPool pool(std::max(1, n_threads));
  std::vector<uint64_t> sums(static_cast<size_t>(pool.size()) * 8);  // one cache line per thread
  double best = 0;
  for (int pass = 0; pass < 4; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(n, [&](int64_t b, int64_t e, int thread) {
      uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;  // independent sums keep several loads in flight
      int64_t i = b;
      for (; i + 4 <= e; i += 4) a0 += words[i], a1 += words[i + 1], a2 += words[i + 2], a3 += words[i + 3];
      for (; i < e; ++i) a0 += words[i];
      sums[static_cast<size_t>(thread) * 8] += a0 + a1 + a2 + a3;
    }, 1 << 16);
    best = std::max(best, static_cast<double>(kBytes) / since(t0));
  }
  volatile uint64_t sink = 0;
  for (uint64_t v : sums) sink = sink + v;  // the sums are used, so the reads cannot be dropped
  return best;
}

bool reset_peak_rss() {
  FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;  // 5: reset the peak RSS to the current RSS (Linux 4.0+)
  return std::fclose(f) == 0 && ok;
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
  ep.n_ctx = std::max(p.n_ctx, p.n_prompt + p.n_gen + 1);
  ep.n_batch = std::min(p.n_prompt, EngineParams{}.n_batch);
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
  // Greedy decoding through the generation loop the CLI and server use; end-of-text ids do not stop it,
  // so every run decodes exactly n_gen tokens (and samples one more after the last).
  SamplingParams greedy;
  greedy.temperature = 0;
  greedy.num_predict = p.n_gen + 1;
  GeneratorOptions opts;
  opts.stop_at_eos = false;
  std::vector<std::optional<Generator>> gens(n_seq);
  const auto sample = [&](int i) {
    const Sequence& seq = *seqs[i];
    const std::optional<int32_t> id = gens[i]->next(seq.last_logits(), seq.n_past(), seq.n_ctx(), nullptr);
    next[i] = id.value_or(-1);
  };
  for (int rep = 0; rep < p.repeats; ++rep) {
    BenchRun run;
    // Prefill: the first sequence is timed alone (prompt speed, TTFT); the others join afterwards.
    for (auto& s : seqs) s->reset();
    for (auto& g : gens) g.emplace(nullptr, greedy, nullptr, opts);
    const auto t0 = std::chrono::steady_clock::now();
    SequenceWork first{seqs[0].get(), prompt, 0, LogitsFor::Last};
    engine.eval(std::span<const SequenceWork>(&first, 1));
    run.prompt_s = since(t0);
    sample(0);
    run.ttft_s = since(t0);
    for (int i = 1; i < n_seq; ++i) {
      SequenceWork w{seqs[i].get(), prompt, 0, LogitsFor::Last};
      engine.eval(std::span<const SequenceWork>(&w, 1));
      sample(i);
    }
    // Generation: one forward pass decodes a token for every sequence.
    const auto t1 = std::chrono::steady_clock::now();
    for (int step = 0; step < p.n_gen; ++step) {
      work.clear();
      for (int i = 0; i < n_seq; ++i) work.push_back({seqs[i].get(), std::span<const int32_t>(&next[i], 1), seqs[i]->n_past(), LogitsFor::Last});
      engine.eval(work);
      for (int i = 0; i < n_seq; ++i) sample(i);
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
