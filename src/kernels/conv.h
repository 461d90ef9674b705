// Kernels of the vision tower's fast path: a blocked f32 GEMM against weight matrices packed on the fly,
// depthwise convolution rows, and row-wise RMSNorm(+gelu) and softmax, all over HWC activations
// (pixels x channels, channels contiguous).
//
// GEMM: C[m x n_out] = A[m x n_in] * W^T, where W is a WeightMatrix (row o = output channel o over the
// n_in inputs: a 1x1 conv, an im2col'ed k x k conv, or an f32 K/V matrix of the attention). W^T is
// packed per block into strips of kGemmNR output channels, [kc][kGemmNR] f32 each (converted from
// F16/BF16/Q8_0 as it is packed: no f32 copy of the whole weights), and a register-blocked
// micro-kernel (6 pixels x 16 channels on AVX2 and NEON, 12 x 16 on AVX-512) sweeps A's rows against one strip.
//
// Every kernel exists once per instruction set: the scalar set (plain C++, the readable definition)
// and the SIMD sets the build has (AVX2+FMA+F16C and AVX-512F on x86-64, NEON on AArch64). conv_kernels() is the
// set that goes with the text decoder's vec_dot set, chosen once at run time (G3N_VEC_DOT=NAME picks both); the
// per-set tables are public so tests run every set the CPU supports against the scalar one.
// Agreement: only float rounding differs (FMA, lane order in reductions, polynomial exp):
// tests/kernels_conv_test.cpp pins the bounds. Within one set every GEMM output is the k-ordered
// multiply-add chain over n_in, whatever m, the row or column blocking: results never depend on how
// callers split pixels between threads.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "base/aligned_vector.h"
#include "kernels/matmul.h"

namespace g3n {

inline constexpr int64_t kGemmMR = 6;    // pixels per micro-kernel call (rows of a packed A panel)
inline constexpr int64_t kGemmNR = 16;   // output channels per packed strip
inline constexpr int64_t kGemmKC = 256;  // inputs per packed block (a multiple of Q8_0's 32)

struct ConvKernelSet {
  const char* name;
  // Packs W rows n0 .. n0+nn-1, inputs k0 .. k0+kc-1 (k0 a multiple of the type's block size) into
  // ceil(nn/16) strips: dst[s*kc*16 + k*16 + j] = W[n0 + s*16 + j][k0 + k], 0 where n0+s*16+j >= n0+nn.
  void (*pack_weights)(const WeightMatrix& w, int64_t n0, int64_t nn, int64_t k0, int64_t kc, float* dst);
  // One strip: C[i*ldc + j] = (accumulate ? C[i*ldc + j] : 0) + sum_k A[i*lda + k] * B[k*16 + j] for
  // i < m, j < nn <= 16 (columns nn..15 of C are not touched).
  void (*gemm_strip)(const float* a, int64_t lda, int64_t m, const float* b, int64_t kc, float* c, int64_t ldc,
                     int64_t nn, bool accumulate);
  // A's rows packed in panels of 6 (the micro-kernel then reads A as one contiguous stream):
  // dst[(i/6)*K*6 + k*6 + i%6] = a[i*lda + k] for i < m, k < K; rows past m in the last panel are 0.
  void (*pack_activations)(const float* a, int64_t lda, int64_t m, int64_t K, float* dst);
  // gemm_strip with A packed: ap = the first panel at input k0, panel_stride = K*6 floats between panels.
  // Same bits as gemm_strip on the unpacked rows.
  void (*gemm_panel)(const float* ap, int64_t panel_stride, int64_t m, const float* b, int64_t kc, float* c, int64_t ldc,
                     int64_t nn, bool accumulate);
  // Depthwise k x k convolution of one output row segment: out[x*C + c] (x < nx) for output column
  // x0 + x: sum over ky < k, kx < k of w[(ky*k + kx)*C + c] * rows[ky][ix*C + c], ix = (x0+x)*stride -
  // pad_left + kx, skipping ix outside [0, w_in) and null rows (zero padding).
  void (*depthwise_row)(const float* const* rows, int64_t w_in, int64_t C, const float* w, int k, int stride,
                        int64_t pad_left, int64_t x0, int64_t nx, float* out);
  // Each of `rows` rows of n values (stride ld), in place: x * rsqrt(mean(x^2) + eps) * w, then the
  // tanh gelu when `gelu`.
  void (*rms_norm_rows)(float* x, int64_t ld, int64_t rows, int64_t n, const float* w, float eps, bool gelu);
  // Each row in place: softmax(scale * x) (scale > 0).
  void (*softmax_rows)(float* x, int64_t ld, int64_t rows, int64_t n, float scale);
  // n values in place: x / (1 + exp(-x)) (SiLU, the audio tower's FFN and light-conv activation).
  void (*silu)(float* x, int64_t n);
};

// The scalar set: always available.
const ConvKernelSet& conv_kernels_scalar();
// The set that goes with a vec_dot kernel set (its row in vec_dot.cpp's table names it: zmm "avx512f" for
// avx512vnni and avx512vnni+amx, "avx2+fma+f16c" for the ymm sets including Zen 4's avx512vnni-256, "neon" for
// the neon sets); scalar where that set does not run here.
const ConvKernelSet& conv_set_for(const std::string& vec_dot_set);
// The set of the vec_dot set chosen at start (vec_dot_start_set: G3N_VEC_DOT=NAME, else the best), once.
const ConvKernelSet& conv_kernels();
// Every set this build has and this CPU runs, scalar first (for tests and benchmarks).
std::vector<const ConvKernelSet*> conv_kernel_sets();

// Reusable packing buffers of one thread.
struct GemmScratch {
  AlignedVector<float> panel;  // packed weights (cache-line aligned: the micro-kernel's 32-byte loads never split)
  AlignedVector<float> acts;   // packed activations
};

// Floats of m rows of K inputs packed by pack_activations.
inline int64_t packed_activations_size(int64_t m, int64_t K) { return (m + kGemmMR - 1) / kGemmMR * kGemmMR * K; }
// GEMMs with at least this many output channels pack A first (the copy costs ~1/n_out of the work).
inline constexpr int64_t kGemmPackAMinOut = 8 * kGemmNR;

// C[i*ldc + o] = sum_k A[i*lda + k] * W[o][k] for i < m, o < w.n_out (C is overwritten). Blocked:
// for each kGemmKC block of inputs, every strip of W is packed once and reused by all m rows.
void gemm_weights(const ConvKernelSet& ks, const float* a, int64_t lda, int64_t m, const WeightMatrix& w, float* c,
                  int64_t ldc, GemmScratch& scratch);
// The same for output columns o0 <= o < o1 only (o0 a multiple of kGemmNR): threads that split a
// GEMM by columns pack disjoint parts of W. Each value has the same bits as gemm_weights'.
void gemm_weights_columns(const ConvKernelSet& ks, const float* a, int64_t lda, int64_t m, const WeightMatrix& w, int64_t o0,
                          int64_t o1, float* c, int64_t ldc, GemmScratch& scratch);

// gemm_weights_columns with A already packed by pack_activations (m rows of w.n_in inputs): threads that
// split one GEMM by columns share one packed copy. Same bits as gemm_weights.
void gemm_weights_packed_columns(const ConvKernelSet& ks, const float* a_packed, int64_t m, const WeightMatrix& w, int64_t o0,
                                 int64_t o1, float* c, int64_t ldc, GemmScratch& scratch);

// An f32 row-major matrix [rows][cols] seen as a WeightMatrix (rows = outputs).
WeightMatrix f32_weight_view(const float* data, int64_t rows, int64_t cols);

}  // namespace g3n
