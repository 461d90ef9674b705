#include "kernels/matmul.h"

#include <algorithm>

#include "kernels/vec_dot.h"
#include "quant/quantize.h"
#include "runtime/thread_pool.h"

namespace g3n {
namespace {

// Weight rows per task: a few KB of weights stay in L1/L2 while every token of the batch reads them.
constexpr int64_t kRowGrain = 16;
// Decode rows per dynamically scheduled chunk: ~64 chunks for a 2048-row matrix, ~8K for the head.
constexpr int64_t kDecodeGrain = 32;
// Prefill cache blocks: activation rows and weight rows of about this size each (two fit in a 512 KiB
// L2 with room to spare).
constexpr uint64_t kBlockBytes = 192 * 1024;

void matmul_exact(const WeightMatrix& w, const float* x, int64_t ldx, int64_t n_tok, float* y, int64_t ldy,
                  ThreadPool& pool, MatmulScratch& scratch) {
  const int64_t n_in = w.n_in;
  if (w.type != GgmlType::F32 && scratch.rows.size() < static_cast<size_t>(pool.size() * n_in))
    scratch.rows.resize(static_cast<size_t>(pool.size() * n_in));
  pool.parallel_for(w.n_out, [&](int64_t begin, int64_t end, int thread) {
    float* buf = scratch.rows.data() + thread * n_in;
    for (int64_t o = begin; o < end; ++o) {
      const float* row;
      if (w.type == GgmlType::F32) {
        row = reinterpret_cast<const float*>(w.row(o));
      } else {
        weight_row_f32(w, o, buf);  // decoded once, reused by every token of the batch
        row = buf;
      }
      for (int64_t t = 0; t < n_tok; ++t) y[t * ldy + o] = dot_f32_simd(row, x + t * ldx, n_in);
    }
  }, kRowGrain);
}

void matmul_fast(const WeightMatrix& w, const float* x, int64_t ldx, int64_t n_tok, float* y, int64_t ldy,
                 ThreadPool& pool, MatmulScratch& scratch) {
  const int64_t n_in = w.n_in;
  const VecDotFn dot = vec_dot_fn(w.type);
  const GgmlType act_type = vec_dot_act_type(w.type);
  const void* act = x;
  uint64_t act_stride = static_cast<uint64_t>(ldx) * sizeof(float);
  if (act_type != GgmlType::F32) {
    // Quantize every activation row once, in parallel over tokens.
    act_stride = act_row_bytes(w.type, n_in);
    if (scratch.act.size() < act_stride * n_tok) scratch.act.resize(act_stride * n_tok);
    const QuantizeActFn quantize = quantize_act_fn(w.type);
    uint8_t* dst = scratch.act.data();
    pool.parallel_for(n_tok, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) quantize(x + t * ldx, dst + t * act_stride, n_in);
    });
    act = dst;
  }
  const uint8_t* act_bytes = static_cast<const uint8_t*>(act);
  const VecDotTileFn tile = vec_dot_tile_fn(w.type);
  if (n_tok > 1 && tile) {
    // Prefill: tile kernels (several rows x several tokens per weight unpack), bit-identical to the
    // vec_dot loop below. Cache blocking: a block of kBlockBytes of activation rows and one of weight
    // rows both stay in L2 while the tile kernel sweeps them, so each weight byte comes from memory
    // once per token block and each activation byte from L3 once per row block.
    // Token blocks are multiples of 24, so every tile width (8, 6, 4, 3) divides them evenly.
    const int64_t tok_block = std::max<int64_t>(24, int64_t(kBlockBytes / act_stride) / 24 * 24);
    const int64_t row_block = std::max<int64_t>(12, int64_t(kBlockBytes / w.row_bytes) / 12 * 12);
    pool.parallel_for_dynamic(w.n_out, [&](int64_t begin, int64_t end, int) {
      for (int64_t t0 = 0; t0 < n_tok; t0 += tok_block) {
        const int64_t nt = std::min(tok_block, n_tok - t0);
        for (int64_t r0 = begin; r0 < end; r0 += row_block)
          tile(w.row(r0), w.row_bytes, std::min(row_block, end - r0), act_bytes + t0 * act_stride, act_stride,
               nt, n_in, y + t0 * ldy + r0, ldy);
      }
    }, std::clamp<int64_t>(w.n_out / (4 * pool.size()), kRowGrain, row_block));
    return;
  }
  // Decode: rows handed out in small chunks as threads free up (every row's result is the same
  // whichever thread computes it).
  pool.parallel_for_dynamic(w.n_out, [&](int64_t begin, int64_t end, int) {
    for (int64_t o = begin; o < end; ++o) {
      const uint8_t* row = w.row(o);
      for (int64_t t = 0; t < n_tok; ++t) y[t * ldy + o] = dot(row, act_bytes + t * act_stride, n_in);
    }
  }, kDecodeGrain);
}

}  // namespace

void weight_row_f32(const WeightMatrix& w, int64_t r, float* dst) {
  dequantize_row(w.type, w.row(r), dst, w.n_in);
}

// Q8_0 weights keep f32 activations even on the fast path: at 8 bits, quantizing the activations too
// doubles the error (measured on the fixtures: top-1 0.92-0.94 against the exact logits instead of
// 1.0), while decoding an int8 row to f32 costs little next to the dot product itself.
static bool fast_path_for(GgmlType t) { return vec_dot_supported(t) && t != GgmlType::Q8_0; }

void matmul(const WeightMatrix& w, const float* x, int64_t ldx, int64_t n_tok, float* y, int64_t ldy,
            ThreadPool& pool, MatmulMode mode, MatmulScratch& scratch) {
  if (mode == MatmulMode::Fast && fast_path_for(w.type)) matmul_fast(w, x, ldx, n_tok, y, ldy, pool, scratch);
  else matmul_exact(w, x, ldx, n_tok, y, ldy, pool, scratch);
}

}  // namespace g3n
