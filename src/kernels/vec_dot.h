// Row dot products between a GGUF weight row and one activation row: the inner kernel of matmul.
//
// Quantized weights are dotted with activations quantized to int8 per block, as ggml's CPU backend
// does, so the inner loop is integer multiply-adds:
//   Q2_K..Q6_K      x Q8_K (float d, 256 int8, int16 sums of each 16)
//   Q4_0 Q5_0 Q8_0  x Q8_0 (fp16 d, 32 int8)
//   Q4_1 Q5_1       x Q8_1 (fp16 d, fp16 s = d*sum(q), 32 int8)
//   F32 F16 BF16    x F32  (the activation row is a plain float*)
// Typical use per activation row x:  quantize_act_row(type, x, buf, n)  once, then
// vec_dot(type, w.row(r), buf, n)  for every weight row r.
//
// Every function has a `_ref` twin: plain scalar C++, the readable definition. The plain names run the
// kernel set in use (see vec_dot_sets below): by default the fastest the CPU runs (cpuid on x86-64,
// HWCAP on AArch64; on AVX-512 CPUs that split 512-bit operations, the 256-bit VNNI set).
// Agreement, pinned by tests/kernels_vec_dot_test.cpp:
//  * quantize_act_row == quantize_act_row_ref byte for byte (same rounding: nearest-even);
//  * integer block sums are exact in both; only the float accumulation order differs (SIMD lanes), so
//    |vec_dot - vec_dot_ref| <= 2e-6 * sum_i |w_i * a_i| (observed <= 2e-7);
//  * F32/F16/BF16 and the dot/axpy helpers: same bound (FMA and lane-order rounding only).
// Quantized lengths must be multiples of the block size (32 or 256); float types take any n >= 0.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "quant/ggml_type.h"

namespace g3n {

// The activation format vec_dot pairs with a weight type: Q8_K, Q8_0, Q8_1, or F32 ("float
// activations"). Throws std::invalid_argument for weight types without a kernel (Q8_1, Q8_K).
GgmlType vec_dot_act_type(GgmlType weight_type);
// True when vec_dot has a kernel for this weight type.
bool vec_dot_supported(GgmlType weight_type);
// Bytes of a quantized activation row of n elements for this weight type (n*4 for float types).
uint64_t act_row_bytes(GgmlType weight_type, int64_t n);
// Quantizes n floats into dst (act_row_bytes bytes) in vec_dot_act_type(weight_type) format; for
// float types this copies x.
void quantize_act_row(GgmlType weight_type, const float* x, void* dst, int64_t n);
// sum_i w_i * a_i over n elements; act_row is what quantize_act_row wrote (or a float* for float types).
float vec_dot(GgmlType weight_type, const void* weight_row, const void* act_row, int64_t n);

GgmlType vec_dot_act_type_ref(GgmlType weight_type);
uint64_t act_row_bytes_ref(GgmlType weight_type, int64_t n);
void quantize_act_row_ref(GgmlType weight_type, const float* x, void* dst, int64_t n);
float vec_dot_ref(GgmlType weight_type, const void* weight_row, const void* act_row, int64_t n);

// Resolved kernels, for callers that want to skip the per-call type switch in an inner loop. The
// pointers are to the dispatched (fastest) kernels; nullptr for unsupported types. No validation of n.
using VecDotFn = float (*)(const void* weight_row, const void* act_row, int64_t n);
using QuantizeActFn = void (*)(const float* x, void* dst, int64_t n);
VecDotFn vec_dot_fn(GgmlType weight_type);
QuantizeActFn quantize_act_fn(GgmlType weight_type);

// Tile kernels, the inner loop of prefill: a block of weight rows against a block of activation rows,
//   out[t*ldo + r] = vec_dot(weight_type, w + r*w_stride, act + t*act_stride, n)
// for r < n_rows, t < n_tok. Each weight block is unpacked once for several activation rows and each
// activation block is reused by several weight rows, but every (r, t) value is BIT-IDENTICAL to the
// matching vec_dot (vec_dot_tile_ref: to vec_dot_ref), whatever n_rows, n_tok or position in the tile:
// the per-block integer sums are exact and the float accumulation of each pair repeats vec_dot's lanes
// and order. That makes batched prefill give the same numbers as one-token decode (batch invariance).
// Types without a tile kernel loop over vec_dot (same result, no reuse).
using VecDotTileFn = void (*)(const void* w, uint64_t w_stride, int64_t n_rows, const void* act,
                              uint64_t act_stride, int64_t n_tok, int64_t n, float* out, int64_t ldo);
void vec_dot_tile(GgmlType weight_type, const void* w, uint64_t w_stride, int64_t n_rows, const void* act,
                  uint64_t act_stride, int64_t n_tok, int64_t n, float* out, int64_t ldo);
void vec_dot_tile_ref(GgmlType weight_type, const void* w, uint64_t w_stride, int64_t n_rows,
                      const void* act, uint64_t act_stride, int64_t n_tok, int64_t n, float* out, int64_t ldo);
// The dispatched tile kernel, or nullptr where the type has none in the chosen set (loop vec_dot_fn).
VecDotTileFn vec_dot_tile_fn(GgmlType weight_type);
// A tile kernel that computes row r for the token group t0..t0+7 only where need[r*ldn + t0/8] != 0
// (other outputs untouched); same bits as the plain tile. nullptr where the chosen set has none.
using VecDotMaskedTileFn = void (*)(const void* w, uint64_t w_stride, int64_t n_rows, const void* act,
                                    uint64_t act_stride, int64_t n_tok, int64_t n, float* out, int64_t ldo,
                                    const uint8_t* need, int64_t ldn);
VecDotMaskedTileFn vec_dot_masked_tile_fn(GgmlType weight_type);
// Decode's inner loop: out[r] = vec_dot(weight_type, w + r*w_stride, act, n) for r < n_rows, one activation
// row, BIT-IDENTICAL to vec_dot (several rows share the activation loads and the float close). nullptr
// where the chosen set has none (loop vec_dot_fn).
using VecDotRowsFn = void (*)(const void* w, uint64_t w_stride, int64_t n_rows, const void* act, int64_t n, float* out);
VecDotRowsFn vec_dot_rows_fn(GgmlType weight_type);
// Packed matrices (kernels/packed_panels.h: groups of 16 rows, rows in the lanes): n_groups groups from
// `packed` (group 0 of the call) against n_tok activation rows,
//   out[t*ldo + 16*g + i] = vec_dot(weight_type, row 16*g + i, act + t*act_stride, n),
// BIT-IDENTICAL to vec_dot of the unpacked row. nullptr where the chosen set has none (matmul then unpacks
// rows and loops vec_dot_fn, same bits).
using VecDotPackedFn = void (*)(const void* packed, int64_t n_groups, const void* act, uint64_t act_stride,
                                int64_t n_tok, int64_t n, float* out, int64_t ldo);
VecDotPackedFn vec_dot_packed_fn(GgmlType weight_type);
// Tokens per tile call at which the dispatched tile's per-call work is well amortized (the AVX-512
// K-quant tiles build each 16-row panel once per call); 0 where it makes no difference. A hint for the
// cache blocking of matmul.
int64_t vec_dot_tile_tokens(GgmlType weight_type);
// The same hint for the packed kernels (the AMX set makes panels of each packed group once per call).
int64_t vec_dot_packed_tokens(GgmlType weight_type);
// Whether the set in use decodes faster from packed Q6_K matrices than from their rows (then a model packs
// them for plain decoding too; otherwise only for speculation's verify passes).
bool vec_dot_packs_q6k_for_decode();

// F16 KV-cache helpers and their f32 siblings (any n >= 0).
float dot_f16_f32(const uint16_t* a, const float* b, int64_t n);         // sum a_i*b_i
void axpy_f16(float alpha, const uint16_t* x, float* y, int64_t n);      // y += alpha*x
float dot_f32_simd(const float* a, const float* b, int64_t n);           // sum a_i*b_i
void axpy_f32(float alpha, const float* x, float* y, int64_t n);         // y += alpha*x
float dot_f16_f32_ref(const uint16_t* a, const float* b, int64_t n);
void axpy_f16_ref(float alpha, const uint16_t* x, float* y, int64_t n);
float dot_f32_ref(const float* a, const float* b, int64_t n);
void axpy_f32_ref(float alpha, const float* x, float* y, int64_t n);

// Elementwise tails of the FFN and the output head.
//   gelu_tanh_mul: g[i] = gelu_tanh(g[i]) * u[i]   (u may be null: no product)
//   soft_cap:      x[i] = cap * tanh(x[i] / cap)
// The _ref twins use std::tanh; the SIMD versions evaluate tanh from a polynomial (small arguments) or
// exp (larger ones) and agree with the twins to a few 1e-8 relative (tests/kernels_elementwise_test.cpp).
void gelu_tanh_mul(float* g, const float* u, int64_t n);
void soft_cap(float* x, int64_t n, float cap);
void gelu_tanh_mul_ref(float* g, const float* u, int64_t n);
void soft_cap_ref(float* x, int64_t n, float cap);

// Named kernel sets. Each set is the kernels of its instruction set overlaid on a weaker set's
// (scalar <- avx2+fma+f16c <- avx512vnni; scalar <- neon <- neon+dotprod <- neon+i8mm), so every set has every
// kernel. avx512vnni replaces only the K-quant dots and tiles, with the AVX2 set's bits.
// The plain functions above (and the sparse-column kernels) run the set in use: the best this CPU
// runs, or G3N_VEC_DOT=NAME from the environment (read once), or the last vec_dot_use_set.
// The set in use: "scalar", "avx2+fma+f16c", "avx512vnni", "avx512vnni-256", "avx512vnni+amx", "avx-vnni",
// "neon", "neon+dotprod" or "neon+i8mm".
const char* vec_dot_isa();
// Names of the sets this CPU can run, weakest first (always starts with "scalar").
std::vector<std::string> vec_dot_sets();
// The set chosen without G3N_VEC_DOT: the strongest this CPU runs.
std::string vec_dot_best_set();
// The set chosen at first use: G3N_VEC_DOT=NAME where this CPU runs it, else the best (never a later
// vec_dot_use_set).
std::string vec_dot_start_set();
// The name of the towers' conv set (kernels/conv.h) that goes with the named set, by the registers it
// computes with; "" for a name that is no set.
std::string vec_dot_conv_set(const std::string& name);
// Switches every later call to the named set (tests, bench; not meant for use while other threads
// run kernels, which would mix sets). False, and no change, for a set this CPU cannot run.
bool vec_dot_use_set(const std::string& name);

}  // namespace g3n
