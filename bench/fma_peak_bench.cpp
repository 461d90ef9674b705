// The machine's FP32 multiply-add peak per thread, the yardstick for the audio tower's "fraction of peak"
// figure (docs/audio.md): independent FMA chains long enough to hide the instruction's latency, so the loop
// runs at the core's FMA throughput. Run with --benchmark_filter and compare Threads 1 and 2 (the counter
// GFLOPS is per run, summed over threads).
#include <benchmark/benchmark.h>

#include <cstdint>

#include "kernels/cpu_features.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

constexpr int64_t kIterations = 1 << 20;

// Scalar twin: the same dependency structure, one float per chain (what a build without SIMD reaches).
float fma_chains_scalar(int64_t n) {
  float a[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  const float m = 0.999999f, c = 1e-7f;
  for (int64_t i = 0; i < n; ++i)
    for (float& x : a) x = x * m + c;
  float s = 0;
  for (float x : a) s += x;
  return s;
}

#if defined(__x86_64__)
// Ten independent 8-wide chains: two FMA ports with a latency of 4-5 cycles need at least 8-10 in flight.
__attribute__((target("avx2,fma"))) float fma_chains_avx2(int64_t n) {
  __m256 a0 = _mm256_set1_ps(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < n; ++i) {
    a0 = _mm256_fmadd_ps(a0, m, c);
    a1 = _mm256_fmadd_ps(a1, m, c);
    a2 = _mm256_fmadd_ps(a2, m, c);
    a3 = _mm256_fmadd_ps(a3, m, c);
    a4 = _mm256_fmadd_ps(a4, m, c);
    a5 = _mm256_fmadd_ps(a5, m, c);
    a6 = _mm256_fmadd_ps(a6, m, c);
    a7 = _mm256_fmadd_ps(a7, m, c);
    a8 = _mm256_fmadd_ps(a8, m, c);
    a9 = _mm256_fmadd_ps(a9, m, c);
  }
  const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                                 _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)), _mm256_add_ps(a8, a9)));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

// The same on zmm, twelve chains (the AVX-512F conv GEMM's micro-kernel holds twelve): the yardstick of the
// avx512f conv set.
__attribute__((target("avx512f"))) float fma_chains_avx512(int64_t n) {
  __m512 a[12];
  for (__m512& x : a) x = _mm512_set1_ps(1);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < n; ++i) {
#pragma GCC unroll 12
    for (__m512& x : a) x = _mm512_fmadd_ps(x, m, c);
  }
  __m512 s = a[0];
  for (int j = 1; j < 12; ++j) s = _mm512_add_ps(s, a[j]);
  float out[16];
  _mm512_storeu_ps(out, s);
  return out[0];
}
#endif

void BM_FmaPeakScalar(benchmark::State& state) {
  for (auto _ : state) {
    int64_t n = kIterations;
    benchmark::DoNotOptimize(n);  // an opaque count: the call cannot be hoisted out of the timing loop
    benchmark::DoNotOptimize(fma_chains_scalar(n));
  }
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * 10 * kIterations * static_cast<double>(state.iterations()) / 1e9,
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FmaPeakScalar)->Threads(1)->Threads(2)->UseRealTime();

#if defined(__x86_64__)
void BM_FmaPeakAvx2(benchmark::State& state) {
  if (!g3n::cpu_features().avx2 || !g3n::cpu_features().fma) {
    state.SkipWithError("this CPU has no AVX2+FMA");
    return;
  }
  for (auto _ : state) {
    int64_t n = kIterations;
    benchmark::DoNotOptimize(n);
    benchmark::DoNotOptimize(fma_chains_avx2(n));
  }
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * 8 * 10 * kIterations * static_cast<double>(state.iterations()) / 1e9,
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FmaPeakAvx2)->Threads(1)->Threads(2)->UseRealTime();

void BM_FmaPeakAvx512(benchmark::State& state) {
  if (!g3n::cpu_features().avx512f) {
    state.SkipWithError("this CPU has no AVX-512F");
    return;
  }
  for (auto _ : state) {
    int64_t n = kIterations;
    benchmark::DoNotOptimize(n);
    benchmark::DoNotOptimize(fma_chains_avx512(n));
  }
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * 16 * 12 * kIterations * static_cast<double>(state.iterations()) / 1e9,
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FmaPeakAvx512)->Threads(1)->Threads(2)->UseRealTime();
#endif

}  // namespace

BENCHMARK_MAIN();
