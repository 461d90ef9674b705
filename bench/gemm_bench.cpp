// The towers' blocked GEMM (kernels/conv.h) at the audio conformer's shapes (750 frames of a 30 s clip,
// width 1536, FFN 6144, F16 weights), one thread, every kernel set the CPU runs; plus the micro-kernel
// alone on an L1-resident strip. GFLOPS next to bench/fma_peak_bench's figure is the fraction of peak
// the tower's GEMMs reach, and the gap between the two lines is what blocking and packing cost.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/conv.h"
#include "quant/fp16.h"

namespace {

using g3n::ConvKernelSet;

struct Problem {
  int64_t m, k, n;
  std::vector<float> a, c;
  std::vector<uint16_t> w;  // F16 [n][k]
  g3n::WeightMatrix view() const {
    return g3n::WeightMatrix{g3n::GgmlType::F16, k, n, static_cast<uint64_t>(k) * 2, reinterpret_cast<const uint8_t*>(w.data())};
  }
};

Problem make(int64_t m, int64_t k, int64_t n) {
  Problem p{m, k, n, std::vector<float>(static_cast<size_t>(m * k)), std::vector<float>(static_cast<size_t>(m * n)),
            std::vector<uint16_t>(static_cast<size_t>(n * k))};
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (float& x : p.a) x = d(rng);
  for (uint16_t& x : p.w) x = g3n::fp32_to_fp16(d(rng) * 0.02f);
  return p;
}

const ConvKernelSet& set(int64_t index) { return *g3n::conv_kernel_sets()[static_cast<size_t>(index)]; }

// One Linear of the tower as FastAudioTower runs it on one thread (A packed, all columns).
void BM_TowerGemm(benchmark::State& state) {
  const ConvKernelSet& ks = set(state.range(0));
  Problem p = make(state.range(1), state.range(2), state.range(3));
  const g3n::WeightMatrix w = p.view();
  g3n::GemmScratch scratch;
  for (auto _ : state) {
    g3n::gemm_weights(ks, p.a.data(), p.k, p.m, w, p.c.data(), p.n, scratch);
    benchmark::DoNotOptimize(p.c.data());
  }
  state.SetLabel(ks.name);
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * static_cast<double>(p.m * p.k * p.n), benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// The micro-kernel alone: 96 packed rows against one 256-input strip, all in L1/L2.
void BM_MicroKernel(benchmark::State& state) {
  const ConvKernelSet& ks = set(state.range(0));
  constexpr int64_t m = 96, kc = g3n::kGemmKC;
  std::vector<float> a(static_cast<size_t>(m * kc), 0.5f), c(static_cast<size_t>(m * g3n::kGemmNR));
  // The strip at a chosen offset from a 64-byte boundary: 0 (aligned) or 4 floats (every other 32-byte
  // load of B crosses a cache line).
  alignas(64) static float bbuf[kc * g3n::kGemmNR + 16];
  float* b = bbuf + state.range(1);
  std::fill(b, b + kc * g3n::kGemmNR, 0.25f);
  std::vector<float> ap(static_cast<size_t>(g3n::packed_activations_size(m, kc)));
  ks.pack_activations(a.data(), kc, m, kc, ap.data());
  for (auto _ : state) {
    ks.gemm_panel(ap.data(), kc * g3n::kGemmMR, m, b, kc, c.data(), g3n::kGemmNR, g3n::kGemmNR, false);
    benchmark::DoNotOptimize(c.data());
  }
  state.SetLabel(ks.name);
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * m * kc * g3n::kGemmNR, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void sets(benchmark::internal::Benchmark* b, bool shapes) {
  for (int64_t s = 0; s < static_cast<int64_t>(g3n::conv_kernel_sets().size()); ++s) {
    if (!shapes) {
      b->Args({s, 0});
      b->Args({s, 4});
      continue;
    }
    b->Args({s, 750, 1536, 6144});  // FFN up
    b->Args({s, 750, 6144, 1536});  // FFN down
    b->Args({s, 750, 1536, 1536});  // attention q/k/v/out
    b->Args({s, 750, 1536, 3072});  // conv pw1
  }
}

BENCHMARK(BM_TowerGemm)->Apply([](benchmark::internal::Benchmark* b) { sets(b, true); })->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MicroKernel)->Apply([](benchmark::internal::Benchmark* b) { sets(b, false); })->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
