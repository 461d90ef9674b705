#include "runtime/spec_benchmark.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <stdexcept>

#include "model/model.h"
#include "runtime/context.h"
#include "runtime/drafter_ngram.h"
#include "runtime/drafter_synthetic.h"
#include "runtime/generator.h"

namespace g3n {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<int32_t> bench_prompt(const Model& model, int n, uint64_t seed) {
  const int32_t V = model.config().n_vocab;
  const int32_t lo = std::min<int32_t>(1000, V / 4), hi = std::min<int32_t>(V, 200000);
  std::vector<int32_t> prompt(static_cast<size_t>(n));
  uint64_t s = seed;
  for (auto& t : prompt) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    t = lo + static_cast<int32_t>((s >> 33) % static_cast<uint64_t>(hi - lo));
  }
  prompt[0] = 2;  // BOS
  return prompt;
}

ContextParams context_params(const BenchParams& b, int n_ctx) {
  ContextParams cp;
  cp.n_ctx = n_ctx;
  cp.n_threads = b.n_threads;
  cp.kv_type = b.kv_type;
  cp.exact = b.exact;
  return cp;
}

SamplingParams greedy(int n_gen) {
  SamplingParams s;
  s.temperature = 0;
  s.num_predict = n_gen + 1;  // as run_benchmark: n_gen evaluated steps
  return s;
}

GeneratorOptions no_eos() {
  GeneratorOptions o;
  o.stop_at_eos = false;
  return o;
}

struct Decoded {
  std::vector<int32_t> tokens;
  double gen_s = 0;
};

Decoded plain_run(Context& ctx, const std::vector<int32_t>& prompt, int n_gen) {
  ctx.reset();
  ctx.eval(prompt, 0, LogitsFor::Last);
  Generator gen(nullptr, greedy(n_gen), nullptr, no_eos());
  const auto t0 = Clock::now();
  while (auto id = gen.next(ctx.last_logits(), ctx.n_past(), ctx.params().n_ctx, nullptr))
    ctx.eval(std::span<const int32_t>(&*id, 1), LogitsFor::Last);
  return {gen.stats().generated, since(t0)};
}

Decoded spec_run(Context& ctx, const std::vector<int32_t>& prompt, int n_gen, Drafter& d, const SpecOptions& so, SpecStats& total) {
  ctx.reset();
  ctx.eval(prompt, 0, LogitsFor::Last);
  Generator gen(nullptr, greedy(n_gen), nullptr, no_eos());
  SpeculativeDecoder spec(d, so);
  spec.begin(InputRows(prompt));
  const auto t0 = Clock::now();
  auto id = gen.next(ctx.last_logits(), ctx.n_past(), ctx.params().n_ctx, nullptr);
  while (id) {
    const int64_t pos0 = ctx.n_past();
    ctx.eval(spec.plan(*id, gen, pos0, ctx.params().n_ctx, ctx.params().n_batch), pos0, LogitsFor::All);
    id = spec.absorb(gen, ctx.sequence(), pos0, ctx.params().n_ctx, nullptr);
  }
  const double s = since(t0);
  const SpecStats& st = spec.stats();
  total.rounds += st.rounds;
  total.spec_rounds += st.spec_rounds;
  total.drafted += st.drafted;
  total.accepted += st.accepted;
  total.rejected_rounds += st.rejected_rounds;
  total.draft_s += st.draft_s;
  total.verify_s += st.verify_s;
  return {gen.stats().generated, s};
}

double expected_tokens(double a, int gamma) { return a >= 1 ? gamma + 1.0 : (1 - std::pow(a, gamma + 1)) / (1 - a); }
}  // namespace

SpecBenchResult run_spec_benchmark(const Model& model, const SpecBenchParams& p) {
  const BenchParams& b = p.base;
  if (b.n_prompt < 1 || b.n_gen < 1 || b.repeats < 1 || p.draft_max < 1 || p.verify_max_rows < 1)
    throw std::invalid_argument("bench --spec: need prompt >= 1, gen >= 1, repeats >= 1, draft-max >= 1");
  if ((p.mode == SpecMode::Draft || p.mode == SpecMode::Self) && !p.model_drafter)
    throw std::invalid_argument(std::string("bench --spec ") + spec_mode_name(p.mode) + " needs a draft model");
  if (p.mode == SpecMode::None) throw std::invalid_argument("bench --spec none: nothing to measure");
  SpecBenchResult r;
  const auto prompt = bench_prompt(model, b.n_prompt, b.seed);
  Context ctx(model, context_params(b, b.n_prompt + b.n_gen + p.draft_max + 2));

  NgramDrafter ngram;
  Drafter* inner = p.mode == SpecMode::Draft || p.mode == SpecMode::Self ? p.model_drafter : &ngram;
  // Plain greedy first: the true continuation the synthetic drafter needs.
  const Decoded truth = plain_run(ctx, prompt, b.n_gen);
  std::unique_ptr<SyntheticDrafter> synth;
  if (p.synthetic_acceptance >= 0)
    synth = std::make_unique<SyntheticDrafter>(inner, prompt.size(), truth.tokens, p.synthetic_acceptance, model.config().n_vocab, b.seed);
  Drafter& drafter = synth ? static_cast<Drafter&>(*synth) : *inner;
  SpecOptions so;
  so.mode = p.mode;
  so.draft_max = p.draft_max;
  so.adaptive = false;

  std::vector<double> plain_tps, spec_tps;
  SpecStats total;
  for (int rep = 0; rep < b.repeats; ++rep) {  // alternate, so a change in the machine's load hits both
    const Decoded a = plain_run(ctx, prompt, b.n_gen);
    plain_tps.push_back(b.n_gen / a.gen_s);
    const Decoded s = spec_run(ctx, prompt, b.n_gen, drafter, so, total);
    spec_tps.push_back(b.n_gen / s.gen_s);
    r.outputs_equal = r.outputs_equal && s.tokens == truth.tokens && a.tokens == truth.tokens;
  }
  r.plain_tokens_per_s = median(plain_tps);
  r.spec_tokens_per_s = median(spec_tps);
  r.speedup = r.plain_tokens_per_s > 0 ? r.spec_tokens_per_s / r.plain_tokens_per_s : 0;
  r.acceptance = total.acceptance();
  r.position_acceptance = total.position_acceptance();
  r.drafted_per_round = total.spec_rounds ? static_cast<double>(total.drafted) / total.spec_rounds : 0;
  r.draft_s_per_token = total.drafted ? total.draft_s / total.drafted : 0;

  // Verify cost: T rows at verify_depth, each forward timed alone and rolled back. Each T-row timing is paired
  // with a one-row timing just before it and the ratio is the median of 5 pairs: a host whose bandwidth shifts
  // during the run (the development VM's jumps between two levels, ~15% apart) then moves both halves of a pair.
  const int depth = p.verify_depth;
  Context vctx(model, context_params(b, depth + std::max(64, p.verify_max_rows) + 1));
  const auto deep = bench_prompt(model, depth, b.seed + 1);
  vctx.eval(deep, 0, LogitsFor::Last);
  std::vector<int32_t> rows(static_cast<size_t>(std::max(64, p.verify_max_rows)));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = deep[(i * 7 + 3) % deep.size()];
  auto time_rows = [&](int T, int reps) {
    std::vector<double> t;
    for (int k = 0; k < reps; ++k) {
      const auto t0 = Clock::now();
      vctx.eval(std::span<const int32_t>(rows.data(), static_cast<size_t>(T)), depth, LogitsFor::All);
      t.push_back(since(t0));
      vctx.truncate(depth);
    }
    return median(t);
  };
  time_rows(1, 1);  // warm
  r.step_s = time_rows(1, 7);
  double num = 0, den = 0;
  r.verify_cost_ratio.push_back(1.0);
  for (int T = 2; T <= p.verify_max_rows; ++T) {
    std::vector<double> pairs;
    for (int k = 0; k < 5; ++k) {
      const double one = time_rows(1, 1);
      pairs.push_back(time_rows(T, 1) / one);
    }
    const double ratio = median(pairs);
    r.verify_cost_ratio.push_back(ratio);
    num += (T - 1) * (ratio - 1);
    den += static_cast<double>(T - 1) * (T - 1);
  }
  r.beta = den > 0 ? num / den : 0;
  r.prefill_row_s = time_rows(64, 3) / 64;
  r.draft_cost = r.step_s > 0 ? r.draft_s_per_token / r.step_s : 0;
  const double a = p.synthetic_acceptance >= 0 ? p.synthetic_acceptance : r.position_acceptance;
  r.predicted_speedup = expected_tokens(a, p.draft_max) / (1 + p.draft_max * (r.draft_cost + r.beta));
  return r;
}

}  // namespace g3n
