// Gemma 3n forward pass. Each step is a named function that follows the spec
// (docs/model.md §4-§5); activations are row-major [tokens, width] in f32.
#include "model/gemma3n_forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/sparse_columns.h"
#include "gguf/gguf.h"
#include "kernels/vec_dot.h"
#include "model/model.h"
#include "quant/ggml_type.h"
#include "quant/quantize.h"
#include "model/kv_cache.h"
#include "base/thread_pool.h"

namespace g3n {
namespace {

// Everything one step needs: the model, the batch geometry and the shared pool.
struct Step {
  const Gemma3nConfig& c;
  const Gemma3nWeights& w;
  ForwardBuffers& b;
  ThreadPool& pool;
  MatmulMode mode;
  int T;  // rows currently in the batch
  int64_t D() const { return c.n_embd; }
  float* stream(int k) { return b.streams.data() + static_cast<size_t>(k) * b.n_batch * c.n_embd; }
  float* pred(int k) { return b.pred.data() + static_cast<size_t>(k) * b.n_batch * c.n_embd; }
  void lin(const WeightMatrix& m, const float* x, float* y) { matmul(m, x, m.n_in, T, y, m.n_out, pool, mode, b.matmul); }
  // fn(t, thread) for every batch row, rows spread over the pool. The per-token work between the
  // matmuls is a quarter of a prefill pass; done on one thread, it would leave the others idle.
  template <class Fn>
  void each_row(Fn&& fn) {
    pool.parallel_for(T, [&](int64_t begin, int64_t end, int thread) {
      for (int64_t t = begin; t < end; ++t) fn(static_cast<int>(t), thread);
    });
  }
  // fn(begin, end) over chunks of [0, n) for long elementwise loops (also splits a single row).
  template <class Fn>
  void each_chunk(int64_t n, Fn&& fn) {
    pool.parallel_for(n, [&](int64_t begin, int64_t end, int) { fn(begin, end); }, 2048);
  }
};

// Ratio that rescales v to the RMS magnitude `target_rms` (HF clamps the mean square at 1e-5).
float magnitude_ratio(float target_rms, const float* v, int64_t n) {
  const float ms = sum_squares(v, n) / static_cast<float>(n);
  return target_rms / std::sqrt(std::max(ms, 1e-5f));
}

// A row's vector input, or null for a token row.
const float* row_vector(std::span<const float* const> embeddings, int t) {
  return embeddings.empty() ? nullptr : embeddings[t];
}

// docs/model.md §4.1: e = token_embd[t] * sqrt(D) for token rows; a vector row is taken as given (HF scatters the
// embedders' output into the already-scaled token embeddings, so it is never scaled).
void embed_rows(Step& s, std::span<const int32_t> tokens, std::span<const float* const> embeddings) {
  const float scale = static_cast<float>(std::sqrt(static_cast<double>(s.D())));
  s.each_row([&](int t, int) {
    float* e = s.b.x0.data() + static_cast<size_t>(t) * s.D();
    if (const float* v = row_vector(embeddings, t)) {
      std::memcpy(e, v, sizeof(float) * s.D());
      return;
    }
    weight_row_f32(s.w.token_embd, tokens[t], e);
    for (int64_t i = 0; i < s.D(); ++i) e[i] *= scale;
  });
}

// Row r of a table that is only ever looked up, copied out of the file (GgufFile::read_bytes) and decoded:
// through the mapping, each lookup would leave the pages around it resident, ~0.5 MB per distinct token
// of E2B's per-layer table (measured with /proc/PID/pagemap), so the resident set would grow with the
// context towards the whole 1.1-1.3 GB table.
void table_row_f32(const GgufFile& file, const WeightMatrix& table, int64_t r, float* dst) {
  thread_local std::vector<uint8_t> raw;
  const uint64_t n = *ggml_row_bytes(table.type, static_cast<uint64_t>(table.n_in));  // bound: a valid row
  if (raw.size() < n) raw.resize(n);
  file.read_bytes(table.row(r), n, raw.data());
  WeightMatrix one = table;
  one.data = raw.data();
  one.n_out = 1;
  one.row_bytes = n;
  weight_row_f32(one, 0, dst);
}

// docs/model.md §4.2: pli_l = (RMSNorm(per_layer_model_proj · e / sqrt(D)) + per_layer_token_embd[t'] · sqrt(P)) / sqrt(2),
// with t' = t for text ids and 0 for ids past the per-layer table and for vector rows (HF semantics: the
// placeholder ids of soft tokens are past the table; never out of bounds).
void compute_per_layer_inputs(Step& s, std::span<const int32_t> tokens, std::span<const float* const> embeddings) {
  const auto& c = s.c;
  const int64_t P = c.n_embd_per_layer, LP = static_cast<int64_t>(c.n_layer) * P;
  float* u = s.b.per_layer.data();
  // One run of per-layer blocks per range of consecutive file layers (model/gemma3n_weights.h).
  for (const PerLayerRun& run : s.w.per_layer)
    matmul(run.model_proj, s.b.x0.data(), s.D(), s.T, u + run.first_layer * P, LP, s.pool, s.mode, s.b.matmul);
  const float proj_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.D())));
  const float emb_scale = static_cast<float>(std::sqrt(static_cast<double>(P)));
  const float inv_sqrt2 = static_cast<float>(1.0 / std::sqrt(2.0));
  s.each_row([&](int t, int thread) {
    float* row = s.b.ple_row.data() + static_cast<size_t>(thread) * LP;
    const int32_t id = !row_vector(embeddings, t) && tokens[t] < c.n_vocab_per_layer ? tokens[t] : 0;
    for (const PerLayerRun& run : s.w.per_layer) table_row_f32(*s.w.file, run.token_embd, id, row + run.first_layer * P);
    float* ut = u + t * LP;
    for (int64_t i = 0; i < LP; ++i) ut[i] *= proj_scale;
    for (int l = 0; l < c.n_layer; ++l) {
      float* blk = ut + l * P;
      rms_norm(blk, s.w.per_layer_proj_norm.data(), blk, P, c.rms_eps);
      for (int64_t j = 0; j < P; ++j) blk[j] = (blk[j] + row[l * P + j] * emb_scale) * inv_sqrt2;
    }
  });
}

// docs/model.md §4.3: stream 0 is e; stream k is altup_proj[k-1] · e rescaled to e's magnitude.
void altup_init_streams(Step& s) {
  const int64_t D = s.D();
  std::memcpy(s.stream(0), s.b.x0.data(), sizeof(float) * s.T * D);
  for (int k = 1; k < s.c.n_altup; ++k) {
    float* sk = s.stream(k);
    s.lin(s.w.altup_proj[k - 1], s.b.x0.data(), sk);
    s.each_row([&](int t, int) {
      const float* e = s.b.x0.data() + t * D;
      float* v = sk + t * D;
      const float r = magnitude_ratio(std::sqrt(sum_squares(e, D) / static_cast<float>(D)), v, D);
      for (int64_t i = 0; i < D; ++i) v[i] *= r;
    });
  }
}

// r = tanh(altup_router · (RMSNorm_{router_norm}(x) / D)), one N-vector per token into b.router.
void altup_router_modalities(Step& s, const Gemma3nLayerWeights& lw, const float* x) {
  const int64_t D = s.D();
  const float inv_d = 1.0f / static_cast<float>(D);
  s.each_row([&](int t, int) {
    float* y = s.b.tmp_d.data() + t * D;
    rms_norm(x + t * D, lw.altup_router_norm.data(), y, D, s.c.rms_eps);
    for (int64_t i = 0; i < D; ++i) y[i] *= inv_d;
  });
  s.lin(lw.altup_router, s.b.tmp_d.data(), s.b.router.data());
  for (int i = 0; i < s.T * s.c.n_altup; ++i) s.b.router[i] = std::tanh(s.b.router[i]);  // T*4 values
}

// docs/model.md §4.4a: pred_i = s_i + sum_j C[i][j] s_j with C = altup_predict_coef · r (row-major N x N).
void altup_predict(Step& s, const Gemma3nLayerWeights& lw) {
  const int N = s.c.n_altup;
  const int64_t D = s.D();
  altup_router_modalities(s, lw, s.stream(s.c.altup_active));
  s.lin(lw.altup_predict_coef, s.b.router.data(), s.b.coefs.data());
  s.each_row([&](int t, int) {
    const float* C = s.b.coefs.data() + t * N * N;
    for (int i = 0; i < N; ++i) {
      float* p = s.pred(i) + t * D;
      std::memcpy(p, s.stream(i) + t * D, sizeof(float) * D);
      for (int j = 0; j < N; ++j) {
        const float cij = C[i * N + j];
        const float* sj = s.stream(j) + t * D;
        for (int64_t d = 0; d < D; ++d) p[d] += cij * sj[d];
      }
    }
  });
}

// docs/model.md §4.4b: lau = h + RMSNorm_{laurel_post_norm}(laurel_r · laurel_l · h).
void laurel(Step& s, const Gemma3nLayerWeights& lw, const float* h, float* out) {
  const int64_t D = s.D();
  s.lin(lw.laurel_l, h, s.b.rank.data());
  s.lin(lw.laurel_r, s.b.rank.data(), out);
  s.each_row([&](int t, int) {
    float* o = out + t * D;
    rms_norm(o, lw.laurel_post_norm.data(), o, D, s.c.rms_eps);
    for (int64_t i = 0; i < D; ++i) o[i] += h[t * D + i];
  });
}

// Per-head RMSNorm (optional weight) and optional NeoX RoPE of a [T, heads*Dh] projection; `angles`
// holds each row's cos/sin (rope_angles), or is null for no RoPE.
void norm_rope_heads(Step& s, float* x, int heads, const float* norm_w, const float* angles) {
  const int Dh = s.c.head_dim;
  s.each_row([&](int t, int) {
    for (int hh = 0; hh < heads; ++hh) {
      float* v = x + (static_cast<int64_t>(t) * heads + hh) * Dh;
      rms_norm(v, norm_w, v, Dh, s.c.rms_eps);
      if (angles) rope_neox_with(v, Dh, angles + static_cast<int64_t>(t) * Dh);
    }
  });
}

// docs/model.md §3.1 + §5: q/k/v projections with their norms and RoPE, cache write (KV-owning layers only), then
// softmax(q·k) v over the visible keys of the layer's cache source (unit scale, GQA). Output [T, H*Dh].
void self_attention(Step& s, int layer, const Gemma3nLayerWeights& lw) {
  const auto& c = s.c;
  const int H = c.n_head, Hkv = c.n_head_kv, Dh = c.head_dim, group = H / Hkv;
  const int64_t* pos = s.b.positions.data();
  KvCache* const* caches = s.b.caches.data();  // each row's own sequence
  const float* angles = c.is_sliding[layer] ? s.b.rope_local.data() : s.b.rope_global.data();
  s.lin(lw.attn_q, s.b.h.data(), s.b.q.data());
  norm_rope_heads(s, s.b.q.data(), H, lw.attn_q_norm.data(), angles);
  if (c.owns_kv(layer)) {
    s.lin(lw.attn_k, s.b.h.data(), s.b.k.data());
    s.lin(lw.attn_v, s.b.h.data(), s.b.v.data());
    norm_rope_heads(s, s.b.k.data(), Hkv, lw.attn_k_norm.data(), angles);
    norm_rope_heads(s, s.b.v.data(), Hkv, nullptr, nullptr);
    const int64_t kvw = static_cast<int64_t>(Hkv) * Dh;
    // Rows in parallel (a pass's rows have distinct slots: rings hold window + n_batch - 1), then each
    // sequence's high-water mark on this thread.
    s.each_row([&](int t, int) { caches[t]->write(layer, pos[t], s.b.k.data() + t * kvw, s.b.v.data() + t * kvw); });
    for (int t = 0; t < s.T; ++t) caches[t]->stored(pos[t]);
  }
  const int src = c.kv_source[layer];
  const bool sliding = c.is_sliding[layer];
  const int64_t window = c.sliding_window;
  const int64_t n_scores = s.b.n_scores;
  // One job per (row, KV head): the `group` query heads sharing that KV head read each cached row once. Jobs
  // go KV head by KV head, so a thread's rows (a verify pass's few, a prompt's many) find their head's keys and
  // values in its L2 after the first row (one head at depth 512: 0.5 MB in F16). A head's rows are Dh apart.
  s.pool.parallel_for(static_cast<int64_t>(s.T) * Hkv, [&](int64_t begin, int64_t end, int thread) {
    float* scores = s.b.scores.data() + static_cast<int64_t>(thread) * n_scores * group;  // [group, n]
    for (int64_t job = begin; job < end; ++job) {
      const int t = static_cast<int>(job % s.T), g = static_cast<int>(job / s.T);
      const KvCache& cache = *caches[t];
      const float* q = s.b.q.data() + (static_cast<int64_t>(t) * H + static_cast<int64_t>(g) * group) * Dh;
      const int64_t pq = pos[t];
      const int64_t lo = sliding ? std::max<int64_t>(0, pq - window + 1) : 0;  // keys p with pq - p < window
      const int64_t n = pq - lo + 1;
      // Positions lo..pq sit in consecutive slots of the ring, wrapping at most once.
      const int64_t first = cache.slot_of(src, lo);
      const int64_t n1 = std::min<int64_t>(n, cache.slots(src) - first), n2 = n - n1;
      if (cache.type() == KvType::F16) {
        const uint16_t* keys = cache.k16(src, g);
        attn_scores_f16(keys + first * Dh, Dh, n1, q, group, Dh, scores, n);
        if (n2 > 0) attn_scores_f16(keys, Dh, n2, q, group, Dh, scores + n1, n);
      } else {
        const float* keys = cache.k32(src, g);
        attn_scores_f32(keys + first * Dh, Dh, n1, q, group, Dh, scores, n);
        if (n2 > 0) attn_scores_f32(keys, Dh, n2, q, group, Dh, scores + n1, n);
      }
      for (int h = 0; h < group; ++h) softmax(scores + static_cast<int64_t>(h) * n, n);
      float* o = s.b.attn.data() + (static_cast<int64_t>(t) * H + static_cast<int64_t>(g) * group) * Dh;
      std::fill(o, o + static_cast<int64_t>(group) * Dh, 0.0f);
      if (cache.type() == KvType::F16) {
        const uint16_t* values = cache.v16(src, g);
        attn_values_f16(values + first * Dh, Dh, n1, scores, n, group, Dh, o);
        if (n2 > 0) attn_values_f16(values, Dh, n2, scores + n1, n, group, Dh, o);
      } else {
        const float* values = cache.v32(src, g);
        attn_values_f32(values + first * Dh, Dh, n1, scores, n, group, Dh, o);
        if (n2 > 0) attn_values_f32(values, Dh, n2, scores + n1, n, group, Dh, o);
      }
    }
  }, 1);
}

// sum_i f(x[i]) in double, four running sums (lanes i % 4) added pairwise at the end: one sum waited on each
// add's latency (the sparse layers' cutoff took ~1.3 ns per value, two passes over 8-16K values per row).
template <class F>
double sum4(const float* x, int64_t n, F f) {
  double a[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; ++k) a[k] += f(x[i + k]);
  for (; i < n; ++i) a[i % 4] += f(x[i]);
  return (a[0] + a[1]) + (a[2] + a[3]);
}

// out = down · a for activation rows a that are ~95% zeros (docs/model.md §4.4d's sparse layers): each row is
// quantized as the dense product would, listed as its non-zero (column, value) pairs, and multiplied
// against the column-major copy of down, reading ~5% of its quants. Same bits as the dense matmul.
// Batches of more than one 8-token group take the dense product from the same copy where the kernel set
// has one (the AVX-512 sets' 16-row panels: a token's whole down projection in about half the time of its
// sparse columns, E2B prompt +6%); the original row-major matrix is never read either way, so its pages
// stay out of memory. Same bits on every path.
constexpr int kSparseRowsMaxTokens = 8;

void sparse_down_projection(Step& s, const SparseColumns& down, const float* a, float* out) {
  const int64_t F = down.n_in, D = down.n_out;
  const uint64_t stride = act_row_bytes(down.type, F);
  if (s.b.sparse_q8.size() < stride * s.T) s.b.sparse_q8.resize(stride * s.T);
  const bool dense = s.T > kSparseRowsMaxTokens && sparse_columns_tile_available();
  s.each_row([&](int t, int) {
    uint8_t* q = s.b.sparse_q8.data() + stride * t;
    quantize_act_row(down.type, a + t * F, q, F);
    if (!dense) sparse_q8k_from(q, F, s.b.sparse_act[t]);
  });
  if (dense) {
    const int64_t groups = D / 16;  // sparse_columns_supported: D is a multiple of 16
    s.pool.parallel_for_dynamic(groups, [&](int64_t begin, int64_t end, int) {
      sparse_columns_tile(down, s.b.sparse_q8.data(), stride, s.T, 16 * begin, 16 * end, out, D);
    }, std::max<int64_t>(1, groups / (4 * s.pool.size())));
    return;
  }
  // One slice of the output rows per thread: each entry's column is then one long contiguous read per thread
  // (the x86 kernels keep up to 2048 rows' sums in L1), and all the rows' tokens go through the slice at once,
  // block by block, sharing each block's scales. 128-row slices (a line of nibbles per column and slice) made
  // E4B's 5-row verify pass ~4 ms slower.
  // Tokens go kSparseRowsMaxTokens at a time (a prompt on a set without the dense tile), so their float sums
  // (4 KB per token and 1024-row slice, E4B at 2 threads) stay near the block's scales in L1/L2.
  const int64_t slice_rows = std::max<int64_t>(16, (D / s.pool.size() + 15) / 16 * 16);  // more threads than rows: 0
  const int64_t slices = (D + slice_rows - 1) / slice_rows;
  s.pool.parallel_for_dynamic(slices, [&](int64_t begin, int64_t end, int) {
    for (int64_t c = begin; c < end; ++c) {
      const int64_t r0 = c * slice_rows, r1 = std::min(D, r0 + slice_rows);
      for (int t0 = 0; t0 < s.T; t0 += kSparseRowsMaxTokens)
        sparse_columns_rows_tokens(down, s.b.sparse_act.data() + t0, std::min(kSparseRowsMaxTokens, s.T - t0), r0, r1, out + t0 * D, D);
    }
  }, std::max<int64_t>(1, slices / (6 * s.pool.size())));
}

// docs/model.md §4.4d: GeGLU feed-forward; on sparse layers the gate keeps only values above mean + κ·std
// (population std, two passes) before GELU. Result x2 = x1 + RMSNorm_{post_ffw_norm}(down · (gelu(g) ⊙ u)),
// written to `out`.
void feed_forward(Step& s, int layer, const Gemma3nLayerWeights& lw, const float* x1, float* out) {
  const int64_t D = s.D(), F = s.c.n_ff[layer];
  s.each_row([&](int t, int) { rms_norm(x1 + t * D, lw.ffn_norm.data(), s.b.tmp_d.data() + t * D, D, s.c.rms_eps); });
  s.lin(lw.ffn_gate, s.b.tmp_d.data(), s.b.gate.data());
  const float kappa = s.c.sparsity_std_multiplier[layer];
  float* g = s.b.gate.data();
  if (kappa > 0) {
    float* cutoff = s.b.cutoff.data();  // per row: values at or below it become 0 (Gaussian top-k)
    s.each_row([&](int t, int) {
      const float* gt = g + t * F;
      const double mean = sum4(gt, F, [](float v) { return double(v); }) / static_cast<double>(F);
      const double var = sum4(gt, F, [mean](float v) { return (v - mean) * (v - mean); }) / static_cast<double>(F);
      cutoff[t] = static_cast<float>(mean + kappa * std::sqrt(var));
    });
    s.each_chunk(static_cast<int64_t>(s.T) * F, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end;) {  // row by row: a division per value cost 1.7% of a prompt
        const int64_t row = i / F, stop = std::min(end, (row + 1) * F);
        const float c = cutoff[row];
        for (; i < stop; ++i) g[i] = std::max(0.0f, g[i] - c);
      }
    });
    // gelu(0) = 0, so up only matters where the sparse gate survived (~5% of rows): the other rows of
    // ffn_up are not read at all. Same numbers as the dense product.
    matmul_masked(lw.ffn_up, s.b.tmp_d.data(), D, s.T, s.b.up.data(), F, g, F, s.pool, s.mode, s.b.matmul);
  } else {
    s.lin(lw.ffn_up, s.b.tmp_d.data(), s.b.up.data());
  }
  // gelu(g) * u over all rows at once, in chunks (a single decode row is 8-16K tanh evaluations).
  s.each_chunk(static_cast<int64_t>(s.T) * F, [&](int64_t begin, int64_t end) {
    gelu_tanh_mul(g + begin, s.b.up.data() + begin, end - begin);
  });
  if (kappa > 0 && s.mode == MatmulMode::Fast && !lw.ffn_down_cols.empty())
    sparse_down_projection(s, lw.ffn_down_cols, g, out);
  else
    s.lin(lw.ffn_down, g, out);
  s.each_row([&](int t, int) {
    float* o = out + t * D;
    rms_norm(o, lw.post_ffw_norm.data(), o, D, s.c.rms_eps);
    for (int64_t i = 0; i < D; ++i) o[i] += x1[t * D + i];
  });
}

// docs/model.md §4.4e: cor_i = pred_i + (altup_correct_coef · r' + 1)_i · (x2 − pred_a), written into the streams.
void altup_correct(Step& s, const Gemma3nLayerWeights& lw, const float* x2) {
  const int N = s.c.n_altup, a = s.c.altup_active;
  const int64_t D = s.D();
  altup_router_modalities(s, lw, x2);
  s.lin(lw.altup_correct_coef, s.b.router.data(), s.b.coefs.data());
  s.each_row([&](int t, int) {
    const float* pa = s.pred(a) + t * D;
    const float* x = x2 + t * D;
    for (int i = 0; i < N; ++i) {
      const float bi = s.b.coefs[t * N + i] + 1.0f;
      const float* p = s.pred(i) + t * D;
      float* out = s.stream(i) + t * D;
      for (int64_t d = 0; d < D; ++d) out[d] = p[d] + bi * (x[d] - pa[d]);
    }
  });
}

// docs/model.md §4.4f: w = RMSNorm_{post_norm}(proj · (gelu(inp_gate · (cor_a ⊙ altup_correct_scale)) ⊙ pli_l)),
// added to every stream but stream 0.
void inject_per_layer_input(Step& s, int layer, const Gemma3nLayerWeights& lw) {
  const auto& c = s.c;
  const int64_t D = s.D(), P = c.n_embd_per_layer, LP = static_cast<int64_t>(c.n_layer) * P;
  const float* active = s.stream(c.altup_active);
  s.each_row([&](int t, int) {
    for (int64_t i = 0; i < D; ++i) s.b.tmp_d[t * D + i] = active[t * D + i] * lw.altup_correct_scale[i];
  });
  s.lin(lw.inp_gate, s.b.tmp_d.data(), s.b.ple_gate.data());
  s.each_row([&](int t, int) {
    float* g = s.b.ple_gate.data() + t * P;
    const float* pli = s.b.per_layer.data() + t * LP + static_cast<int64_t>(layer) * P;
    gelu_tanh_mul(g, pli, P);
  });
  s.lin(lw.proj, s.b.ple_gate.data(), s.b.tmp_d.data());
  s.each_row([&](int t, int) {
    float* w = s.b.tmp_d.data() + t * D;
    rms_norm(w, lw.post_norm.data(), w, D, c.rms_eps);
    for (int k = 1; k < c.n_altup; ++k) {
      float* sk = s.stream(k) + t * D;
      for (int64_t i = 0; i < D; ++i) sk[i] += w[i];
    }
  });
}

// docs/model.md §4.4: one decoder layer over the current batch rows.
void decoder_layer(Step& s, int layer) {
  const auto& lw = s.w.layers[layer];
  const int64_t D = s.D();
  altup_predict(s, lw);
  const float* act = s.pred(s.c.altup_active);
  s.each_row([&](int t, int) { rms_norm(act + t * D, lw.attn_norm.data(), s.b.h.data() + t * D, D, s.c.rms_eps); });
  laurel(s, lw, s.b.h.data(), s.b.laurel.data());
  self_attention(s, layer, lw);
  s.lin(lw.attn_output, s.b.attn.data(), s.b.x1.data());
  const float inv_sqrt2 = static_cast<float>(1.0 / std::sqrt(2.0));
  s.each_row([&](int t, int) {
    float* x1 = s.b.x1.data() + t * D;
    rms_norm(x1, lw.post_attention_norm.data(), x1, D, s.c.rms_eps);
    for (int64_t i = 0; i < D; ++i) x1[i] = (act[t * D + i] + x1[i] + s.b.laurel[t * D + i]) * inv_sqrt2;
  });
  feed_forward(s, layer, lw, s.b.x1.data(), s.b.h.data());  // h is free again: reuse it for x2
  altup_correct(s, lw, s.b.h.data());
  inject_per_layer_input(s, layer, lw);
}

// Moves the selected batch rows to the front of a [rows, width] buffer (order kept).
void compact_rows(float* data, int64_t width, const std::vector<int32_t>& rows) {
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i] != static_cast<int32_t>(i))
      std::memmove(data + i * width, data + rows[i] * width, sizeof(float) * width);
}

// docs/model.md §4.5: average stream 0 with the un-embedded other streams (each rescaled to stream 0's magnitude),
// final norm, tied head, soft-cap. Row i of the step is batch row rows[i]: its hidden vector goes to hidden (in
// order) where want_hidden says so, and its logits to logits where want_logits does; rows wanting no logits skip the head.
void output_head(Step& s, const ForwardBatch& batch, const std::vector<int32_t>& rows, float* logits, float* hidden) {
  const auto& c = s.c;
  const int64_t D = s.D();
  const float* s0 = s.stream(0);
  float* acc = s.b.x1.data();
  std::memcpy(acc, s0, sizeof(float) * s.T * D);
  for (int k = 1; k < c.n_altup; ++k) {
    float* v = s.b.tmp_d.data();
    s.lin(s.w.altup_unembd_proj[k - 1], s.stream(k), v);
    s.each_row([&](int t, int) {
      const float r = magnitude_ratio(std::sqrt(sum_squares(s0 + t * D, D) / static_cast<float>(D)), v + t * D, D);
      for (int64_t i = 0; i < D; ++i) acc[t * D + i] += v[t * D + i] * r;
    });
  }
  const float inv_n = 1.0f / static_cast<float>(c.n_altup);
  s.each_row([&](int t, int) {
    float* h = acc + t * D;
    for (int64_t i = 0; i < D; ++i) h[i] *= inv_n;
    rms_norm(h, s.w.output_norm.data(), h, D, c.rms_eps);
  });
  std::vector<int32_t>& logit_rows = s.b.logit_rows;
  logit_rows.clear();
  int64_t n_hidden = 0;
  for (int i = 0; i < s.T; ++i) {
    const int32_t t = rows[static_cast<size_t>(i)];
    if (!batch.want_hidden.empty() && batch.want_hidden[t])
      std::memcpy(hidden + n_hidden++ * D, acc + static_cast<int64_t>(i) * D, sizeof(float) * D);
    if (batch.want_logits[t]) logit_rows.push_back(i);
  }
  if (logit_rows.empty()) return;
  if (static_cast<int>(logit_rows.size()) < s.T) {
    compact_rows(acc, D, logit_rows);
    s.T = static_cast<int>(logit_rows.size());
  }
  s.lin(s.w.output, acc, logits);
  if (c.final_logit_softcap > 0) {
    const float cap = c.final_logit_softcap;
    s.each_chunk(static_cast<int64_t>(s.T) * c.n_vocab, [&](int64_t begin, int64_t end) {
      soft_cap(logits + begin, end - begin, cap);
    });
  }
}

}  // namespace

ForwardBuffers::ForwardBuffers(const Model& model, int nb, int n_ctx, int n_threads) : n_batch(nb), n_scores(n_ctx) {
  const auto& c = model.config();
  const size_t T = nb, D = c.n_embd, N = c.n_altup, P = c.n_embd_per_layer, L = c.n_layer;
  const size_t qw = static_cast<size_t>(c.n_head) * c.head_dim, kvw = static_cast<size_t>(c.n_head_kv) * c.head_dim;
  const size_t F = *std::max_element(c.n_ff.begin(), c.n_ff.end());
  x0.resize(T * D);
  per_layer.resize(T * L * P);
  streams.resize(N * T * D);
  pred.resize(N * T * D);
  tmp_d.resize(T * D);
  h.resize(T * D);
  laurel.resize(T * D);
  rank.resize(T * c.laurel_rank);
  q.resize(T * qw);
  k.resize(T * kvw);
  v.resize(T * kvw);
  attn.resize(T * qw);
  x1.resize(T * D);
  gate.resize(T * F);
  up.resize(T * F);
  router.resize(T * N);
  coefs.resize(T * N * N);
  ple_gate.resize(T * P);
  ple_row.resize(static_cast<size_t>(n_threads) * L * P);
  cutoff.resize(T);
  // Sparse down projection scratch, sized once here so that decoding allocates nothing.
  for (const auto& lw : model.weights().layers) {
    const SparseColumns& cols = lw.ffn_down_cols;
    if (cols.empty()) continue;
    const uint64_t nb = static_cast<uint64_t>(cols.n_in) / 256;
    sparse_q8.resize(std::max<size_t>(sparse_q8.size(), T * act_row_bytes(cols.type, cols.n_in)));
    sparse_act.resize(T);
    for (SparseQ8K& a : sparse_act) {
      a.d.reserve(nb);
      a.bsum32.reserve(8 * nb);
      a.start.reserve(nb + 1);
      a.col.reserve(static_cast<size_t>(cols.n_in));
      a.val.reserve(static_cast<size_t>(cols.n_in));
    }
  }
  rope_local.resize(T * c.head_dim);
  rope_global.resize(T * c.head_dim);
  scores.resize(static_cast<size_t>(n_threads) * n_ctx * static_cast<size_t>(c.n_head / c.n_head_kv));
  positions.resize(T);
  caches.resize(T);
  rows.reserve(T);
  logit_rows.reserve(T);
}

void gemma3n_forward(const Model& model, const ForwardBatch& batch, ForwardBuffers& b, ThreadPool& pool,
                     MatmulMode mode, float* logits_out, float* hidden_out) {
  const auto& c = model.config();
  const int T = static_cast<int>(batch.tokens.size());
  if (T == 0) return;
  if (T > b.n_batch) throw std::invalid_argument("gemma3n_forward: batch larger than the buffers");
  if (batch.positions.size() != batch.tokens.size() || batch.caches.size() != batch.tokens.size() ||
      batch.want_logits.size() != batch.tokens.size() ||
      (!batch.embeddings.empty() && batch.embeddings.size() != batch.tokens.size()) ||
      (!batch.want_hidden.empty() && batch.want_hidden.size() != batch.tokens.size()))
    throw std::invalid_argument("gemma3n_forward: batch arrays differ in length");
  for (int t = 0; t < T; ++t) {
    const int32_t id = batch.tokens[t];
    if (!row_vector(batch.embeddings, t) && (id < 0 || id >= c.n_vocab)) throw std::out_of_range("token id " + std::to_string(id) + " outside the vocabulary (0.." + std::to_string(c.n_vocab - 1) + ")");
    const KvCache* kv = batch.caches[t];
    if (!kv) throw std::invalid_argument("gemma3n_forward: row without a KV cache");
    if (batch.positions[t] < 0 || batch.positions[t] >= kv->n_ctx()) throw std::out_of_range("position " + std::to_string(batch.positions[t]) + " exceeds the context length " + std::to_string(kv->n_ctx()));
    if (kv->n_ctx() > b.n_scores) throw std::invalid_argument("gemma3n_forward: KV cache longer than the score buffers");
  }

  Step s{c, model.weights(), b, pool, mode, T};
  std::copy(batch.positions.begin(), batch.positions.end(), b.positions.begin());
  std::copy(batch.caches.begin(), batch.caches.end(), b.caches.begin());
  s.each_row([&](int t, int) {  // each row's RoPE angles, once for all heads and layers
    rope_angles(c.head_dim, b.positions[t], c.rope_base_local, b.rope_local.data() + static_cast<int64_t>(t) * c.head_dim);
    rope_angles(c.head_dim, b.positions[t], c.rope_base_global, b.rope_global.data() + static_cast<int64_t>(t) * c.head_dim);
  });
  embed_rows(s, batch.tokens, batch.embeddings);
  compute_per_layer_inputs(s, batch.tokens, batch.embeddings);
  altup_init_streams(s);

  // docs/model.md §4.6: layers from n_layer_kv on write no cache, so only rows whose logits are wanted need them (and
  // the output head); with no KV-sharing layers the selection happens before the head.
  const int select_at = batch.prefill_shortcut ? std::min(c.n_layer_kv, c.n_layer) : c.n_layer;
  for (int layer = 0; layer <= c.n_layer; ++layer) {
    if (layer == select_at) {
      b.rows.clear();
      for (int t = 0; t < T; ++t)
        if (batch.want_logits[t] || (!batch.want_hidden.empty() && batch.want_hidden[t])) b.rows.push_back(t);
      if (b.rows.empty()) return;
      if (static_cast<int>(b.rows.size()) < s.T) {
        for (int k = 0; k < c.n_altup; ++k) compact_rows(s.stream(k), c.n_embd, b.rows);
        compact_rows(b.per_layer.data(), static_cast<int64_t>(c.n_layer) * c.n_embd_per_layer, b.rows);
        compact_rows(b.rope_local.data(), c.head_dim, b.rows);
        compact_rows(b.rope_global.data(), c.head_dim, b.rows);
        for (size_t i = 0; i < b.rows.size(); ++i) {
          b.positions[i] = b.positions[b.rows[i]];
          b.caches[i] = b.caches[b.rows[i]];
        }
        s.T = static_cast<int>(b.rows.size());
      }
    }
    if (layer < c.n_layer) decoder_layer(s, layer);
  }
  output_head(s, batch, b.rows, logits_out, hidden_out);
}

}  // namespace g3n
