// vec_dot micro-benchmarks: one activation row against a decode-shaped weight matrix (2048 rows of
// 8192, the Gemma 3n E2B FFN down projection), single thread, scalar twin vs the dispatched kernel.
// Reports weight bytes/s (bytes_per_second) and GOP/s (2 ops per weight element: multiply + add),
// beside a plain streaming-read figure for the machine's memory bandwidth (mem_read).
// gemm_* runs the prefill tile kernels (vec_dot_tile) against the per-pair vec_dot loop; sparse_* the
// sparse down projection (5% non-zero activations) through its column-major copy.
//   build-x/vec_dot_bench --benchmark_filter='Q4_K|mem'
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/sparse_columns.h"
#include "kernels/vec_dot.h"
#include "quant/fp16.h"
#include "quant/quantize.h"

namespace {

using g3n::GgmlType;

constexpr int64_t kRows = 2048, kCols = 8192;

// Random quant bytes with small finite fp16 scales: speed does not depend on the values, and this
// avoids minutes of K-quant searching in quantize_row.
std::vector<uint8_t> make_weights(GgmlType t, int64_t rows, int64_t cols) {
  const auto tr = g3n::ggml_type_traits(t);
  const uint64_t row_bytes = *g3n::ggml_row_bytes(t, uint64_t(cols));
  std::vector<uint8_t> w(row_bytes * uint64_t(rows));
  std::mt19937 rng(1);
  if (t == GgmlType::F32) {
    auto* f = reinterpret_cast<float*>(w.data());
    for (size_t i = 0; i < w.size() / 4; ++i) f[i] = float(int(rng() % 2001) - 1000) * 1e-3f;
    return w;
  }
  if (t == GgmlType::F16 || t == GgmlType::BF16) {
    auto* h = reinterpret_cast<uint16_t*>(w.data());
    for (size_t i = 0; i < w.size() / 2; ++i) {
      const float v = float(int(rng() % 2001) - 1000) * 1e-3f;
      h[i] = t == GgmlType::F16 ? g3n::fp32_to_fp16(v) : g3n::fp32_to_bf16(v);
    }
    return w;
  }
  for (auto& b : w) b = uint8_t(rng());
  const uint16_t h = g3n::fp32_to_fp16(0.01f);
  const std::vector<size_t> scales = g3n::fp16_scale_offsets(t);
  for (size_t base = 0; base < w.size(); base += tr.block_bytes)
    for (size_t off : scales) std::memcpy(&w[base + off], &h, 2);
  return w;
}

void bench_matvec(benchmark::State& state, GgmlType t, bool simd) {
  const std::vector<uint8_t> w = make_weights(t, kRows, kCols);
  const uint64_t row_bytes = w.size() / kRows;
  std::vector<float> x(kCols);
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& v : x) v = nd(rng);
  std::vector<uint8_t> qa(g3n::act_row_bytes(t, kCols));
  std::vector<float> y(kRows);
  for (auto _ : state) {
    // The activation row is quantized once per matvec, as matmul does; it is in the timing.
    if (simd) g3n::quantize_act_row(t, x.data(), qa.data(), kCols);
    else g3n::quantize_act_row_ref(t, x.data(), qa.data(), kCols);
    for (int64_t r = 0; r < kRows; ++r) {
      const uint8_t* row = w.data() + uint64_t(r) * row_bytes;
      y[size_t(r)] = simd ? g3n::vec_dot(t, row, qa.data(), kCols) : g3n::vec_dot_ref(t, row, qa.data(), kCols);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(w.size()));
  state.counters["GOP/s"] = benchmark::Counter(2.0 * kRows * kCols, benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::OneK::kIs1000);
}

// Prefill shape: 64 activation rows against 512 rows of 2048 (weights and activations L2-resident,
// as matmul's cache blocks are), one thread. mode 0: the vec_dot loop per (row, token) (the decode
// kernel, what prefill used before the tiles); 1: the dispatched tile kernel; 2: the scalar tile twin.
void bench_gemm(benchmark::State& state, GgmlType t, int mode) {
  constexpr int64_t kGRows = 512, kGCols = 2048, kToks = 64;
  const std::vector<uint8_t> w = make_weights(t, kGRows, kGCols);
  const uint64_t row_bytes = w.size() / kGRows;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(size_t(kGCols * kToks));
  for (auto& v : x) v = nd(rng);
  const uint64_t arb = g3n::act_row_bytes(t, kGCols);
  std::vector<uint8_t> qa(arb * kToks);
  for (int64_t i = 0; i < kToks; ++i) g3n::quantize_act_row(t, x.data() + i * kGCols, qa.data() + i * arb, kGCols);
  std::vector<float> y(size_t(kGRows * kToks));
  for (auto _ : state) {
    if (mode == 0) {
      for (int64_t r = 0; r < kGRows; ++r)
        for (int64_t i = 0; i < kToks; ++i)
          y[size_t(i * kGRows + r)] = g3n::vec_dot(t, w.data() + r * row_bytes, qa.data() + i * arb, kGCols);
    } else {
      (mode == 1 ? g3n::vec_dot_tile : g3n::vec_dot_tile_ref)(t, w.data(), row_bytes, kGRows, qa.data(), arb, kToks,
                                                             kGCols, y.data(), kGRows);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GOP/s"] = benchmark::Counter(2.0 * kGRows * kGCols * kToks, benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::OneK::kIs1000);
}

void bench_quantize_act(benchmark::State& state, GgmlType t, bool simd) {
  std::vector<float> x(kCols);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& v : x) v = nd(rng);
  std::vector<uint8_t> qa(g3n::act_row_bytes(t, kCols));
  for (auto _ : state) {
    if (simd) g3n::quantize_act_row(t, x.data(), qa.data(), kCols);
    else g3n::quantize_act_row_ref(t, x.data(), qa.data(), kCols);
    benchmark::DoNotOptimize(qa.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * kCols * 4);
}

// KV-cache attention shape: 4096 cached positions of head dim 256, one query (dot) or one
// weighted sum (axpy per position).
void bench_kv(benchmark::State& state, bool axpy, bool simd) {
  constexpr int64_t kPos = 4096, kDim = 256;
  std::vector<uint16_t> kv(size_t(kPos * kDim));
  std::mt19937 rng(4);
  for (auto& h : kv) h = g3n::fp32_to_fp16(float(int(rng() % 2001) - 1000) * 1e-3f);
  std::vector<float> q(kDim, 0.5f), out(kDim, 0.0f), scores(kPos);
  for (auto _ : state) {
    for (int64_t p = 0; p < kPos; ++p) {
      const uint16_t* row = kv.data() + p * kDim;
      if (axpy) {
        if (simd) g3n::axpy_f16(1e-4f, row, out.data(), kDim);
        else g3n::axpy_f16_ref(1e-4f, row, out.data(), kDim);
      } else {
        scores[size_t(p)] = simd ? g3n::dot_f16_f32(row, q.data(), kDim) : g3n::dot_f16_f32_ref(row, q.data(), kDim);
      }
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(scores.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kv.size() * 2));
  state.counters["GOP/s"] = benchmark::Counter(2.0 * kPos * kDim, benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::OneK::kIs1000);
}

// The sparse down projection: the same 2048 x 8192 matrix (Q4_K or Q6_K) against an activation row
// with 5% non-zeros (what Gemma 3n's sparse FFN layers produce), through the column-major copy
// (sparse_columns_rows) or the scalar twin. bytes_per_second counts the DENSE matrix, so the figure
// compares directly with matvec_2048x8192 (the dense path's cost for the same product).
// The _cold variant is decode's case: E4B's 2560 x 16384 down projection, eight copies of it (~0.3 GB) taken
// in turn, so every call reads its columns from DRAM as a decode step does.
void bench_sparse(benchmark::State& state, GgmlType t, bool simd, int64_t rows, int64_t cols_n, int copies) {
  const std::vector<uint8_t> w = make_weights(t, rows, cols_n);
  const uint64_t row_bytes = w.size() / uint64_t(rows);
  std::vector<g3n::SparseColumns> cols;
  for (int i = 0; i < copies; ++i)
    cols.push_back(g3n::make_sparse_columns(g3n::WeightMatrix{t, cols_n, rows, row_bytes, w.data()}));
  std::vector<float> x(size_t(cols_n), 0.0f);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::bernoulli_distribution keep(0.05);
  for (auto& v : x)
    if (keep(rng)) v = nd(rng);
  std::vector<uint8_t> qa(g3n::act_row_bytes(t, cols_n));
  g3n::SparseQ8K sa;
  std::vector<float> y(static_cast<size_t>(rows));
  int next = 0;
  for (auto _ : state) {
    const g3n::SparseColumns& c = cols[size_t(next)];
    next = (next + 1) % copies;
    g3n::quantize_act_row(t, x.data(), qa.data(), cols_n);
    g3n::sparse_q8k_from(qa.data(), cols_n, sa);
    if (simd) g3n::sparse_columns_rows(c, sa, 0, rows, y.data());
    else g3n::sparse_columns_rows_ref(c, sa, 0, rows, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(w.size()));
}

// Streaming read of 2 x 64 MiB (far beyond cache) with the dispatched f32 dot: the bandwidth the
// matvec figures above compare with.
void bench_mem_read(benchmark::State& state) {
  const size_t n = size_t(16) << 20;
  std::vector<float> a(n, 1.0f), b(n, 0.5f);
  for (auto _ : state) benchmark::DoNotOptimize(g3n::dot_f32_simd(a.data(), b.data(), int64_t(n)));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(2 * n * sizeof(float)));
}

}  // namespace

int main(int argc, char** argv) {
  const GgmlType types[] = {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0, GgmlType::F16,  GgmlType::Q5_K,
                            GgmlType::Q4_0, GgmlType::BF16, GgmlType::F32,  GgmlType::Q4_1, GgmlType::Q5_0,
                            GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K};
  // Every SIMD kernel set this CPU runs gets its own figures (named .../SET): each benchmark switches to
  // its set before it starts. The scalar twins are the .../scalar rows.
  std::vector<std::string> sets = g3n::vec_dot_sets();
  sets.erase(sets.begin());  // "scalar": measured through the _ref twins below
  const auto in_set = [](const std::string& set, auto fn) {
    return [set, fn](benchmark::State& s) {
      g3n::vec_dot_use_set(set);
      fn(s);
    };
  };
  for (GgmlType t : types) {
    const std::string name(g3n::ggml_type_traits(t).name);
    benchmark::RegisterBenchmark(("matvec_2048x8192/" + name + "/scalar").c_str(),
                                 [t](benchmark::State& s) { bench_matvec(s, t, false); })
        ->Unit(benchmark::kMillisecond);
    for (const std::string& isa : sets)
      benchmark::RegisterBenchmark(("matvec_2048x8192/" + name + "/" + isa).c_str(),
                                   in_set(isa, [t](benchmark::State& s) { bench_matvec(s, t, true); }))
          ->Unit(benchmark::kMillisecond);
  }
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q5_K, GgmlType::Q4_0, GgmlType::F16, GgmlType::BF16,
                     GgmlType::F32, GgmlType::Q8_0}) {
    const std::string name(g3n::ggml_type_traits(t).name);
    benchmark::RegisterBenchmark(("gemm_512x2048x64/" + name + "/tile_scalar").c_str(),
                                 [t](benchmark::State& s) { bench_gemm(s, t, 2); })
        ->Unit(benchmark::kMillisecond);
    const char* modes[] = {"vec_dot_loop", "tile"};
    for (const std::string& isa : sets)
      for (int mode = 0; mode < 2; ++mode)
        benchmark::RegisterBenchmark(("gemm_512x2048x64/" + name + "/" + modes[mode] + "/" + isa).c_str(),
                                     in_set(isa, [t, mode](benchmark::State& s) { bench_gemm(s, t, mode); }))
            ->Unit(benchmark::kMillisecond);
  }
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::Q4_1}) {
    const std::string name(g3n::ggml_type_traits(g3n::vec_dot_act_type(t)).name);
    benchmark::RegisterBenchmark(("quantize_act_8192/" + name + "/scalar").c_str(),
                                 [t](benchmark::State& s) { bench_quantize_act(s, t, false); });
    for (const std::string& isa : sets)
      benchmark::RegisterBenchmark(("quantize_act_8192/" + name + "/" + isa).c_str(),
                                   in_set(isa, [t](benchmark::State& s) { bench_quantize_act(s, t, true); }));
  }
  for (bool axpy : {false, true}) {
    const std::string op = axpy ? "axpy_f16" : "dot_f16_f32";
    benchmark::RegisterBenchmark(("kv_4096x256/" + op + "/scalar").c_str(),
                                 [axpy](benchmark::State& s) { bench_kv(s, axpy, false); })
        ->Unit(benchmark::kMicrosecond);
    for (const std::string& isa : sets)
      benchmark::RegisterBenchmark(("kv_4096x256/" + op + "/" + isa).c_str(),
                                   in_set(isa, [axpy](benchmark::State& s) { bench_kv(s, axpy, true); }))
          ->Unit(benchmark::kMicrosecond);
  }
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
    const std::string name(g3n::ggml_type_traits(t).name);
    benchmark::RegisterBenchmark(("sparse_2048x8192_5pct/" + name + "/scalar").c_str(),
                                 [t](benchmark::State& s) { bench_sparse(s, t, false, kRows, kCols, 1); })
        ->Unit(benchmark::kMillisecond);
    for (const std::string& isa : sets)
      benchmark::RegisterBenchmark(("sparse_2048x8192_5pct/" + name + "/" + isa).c_str(),
                                   in_set(isa, [t](benchmark::State& s) { bench_sparse(s, t, true, kRows, kCols, 1); }))
          ->Unit(benchmark::kMillisecond);
    for (const std::string& isa : sets)
      benchmark::RegisterBenchmark(("sparse_2560x16384_5pct_cold/" + name + "/" + isa).c_str(),
                                   in_set(isa, [t](benchmark::State& s) { bench_sparse(s, t, true, 2560, 16384, 8); }))
          ->Unit(benchmark::kMillisecond);
  }
  benchmark::RegisterBenchmark("mem_read_128MiB", bench_mem_read)->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  std::string names;
  for (const std::string& isa : sets) names += " " + isa;
  std::printf("cpu: %s; kernel sets measured: scalar%s\n", g3n::cpu_features_string().c_str(), names.c_str());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
