// The measurement behind `g3n bench`: prompt processing and generation speed of a loaded model.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/context.h"

namespace g3n {

class Model;

struct BenchParams {
  int n_prompt = 512;    // prompt tokens evaluated as one prefill
  int n_gen = 64;        // tokens generated one at a time after the prompt
  int repeats = 3;
  int n_threads = 0;
  KvType kv_type = KvType::F16;
  uint64_t seed = 42;    // picks the prompt's token ids
  bool exact = false;
  bool prefill_shortcut = true;
  int n_parallel = 1;    // sequences decoding together (continuous batching); gen tok/s is their sum
  int n_ctx = 0;         // KV cache length per sequence; 0: just what the run needs (prompt + gen + 1)
};

struct BenchRun {
  double prompt_s = 0;   // prefill of n_prompt tokens
  double ttft_s = 0;     // prefill + choosing the first token
  double gen_s = 0;      // n_gen single-token steps
  double gen_tokens_per_s(int n_gen) const;
};

struct BenchResult {
  BenchParams params;
  std::vector<BenchRun> runs;
  double median_prompt_tokens_per_s = 0, median_gen_tokens_per_s = 0, median_ttft_s = 0;
};

// Runs `repeats` fresh contexts. Token ids are drawn from the ordinary text range with a fixed seed, so
// runs are comparable; the first generated token is the argmax (no sampling cost is measured).
BenchResult run_benchmark(const Model& model, const BenchParams& params);

// Bytes of weights one fast-path decode step reads: every matrix of every layer (the unused K/V of
// KV-sharing layers excepted; on activation-sparse layers the expected ~5% of ffn_up rows and of
// ffn_down columns, plus the column copy's scales), the per-layer projection, the AltUp projections and
// the output head, plus one row of each embedding table. Times generation tok/s, it is the memory
// traffic decode needs. `packed`, when given, receives the part of it read from packed matrices (the weight
// layout the load chose: Q4_K, and Q6_K in a model loaded for speculation; docs/model.md §2).
uint64_t decode_weight_bytes(const Model& model, uint64_t* packed = nullptr);
// The machine's streaming-read bandwidth with n threads, in bytes/s: the best of a few passes over a
// 256 MiB buffer. Call it before loading a model, then reset_peak_rss(): the buffer is returned to the
// system afterwards, so it adds to neither the model's RSS nor (after the reset) its peak.
double measure_read_bandwidth(int n_threads);
// Resets the process's peak RSS (VmHWM) to its current RSS; false where the kernel does not allow it.
bool reset_peak_rss();

double median(std::vector<double> v);
// The process's peak resident set size so far, in bytes (VmHWM of /proc/self/status; getrusage where
// that is missing).
uint64_t peak_rss_bytes();

}  // namespace g3n
