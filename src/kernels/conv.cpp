// The scalar conv kernel set (the readable definitions), the run-time choice of set, and the blocked
// GEMM driver shared by every set.
#include "kernels/conv.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "kernels/conv_impl.h"
#include "kernels/cpu_features.h"
#include "kernels/vec_dot.h"
#include "quant/ggml_type.h"
#include "quant/quantize.h"

namespace g3n {
namespace conv {

// Weight row r, inputs k0 .. k0+kc-1, decoded to f32 (k0 on a block boundary).
void decode_weight_span(const WeightMatrix& w, int64_t r, int64_t k0, int64_t kc, float* dst) {
  const uint64_t offset = k0 == 0 ? 0 : *ggml_row_bytes(w.type, static_cast<uint64_t>(k0));
  dequantize_row(w.type, w.row(r) + offset, dst, kc);
}

namespace {

void pack_weights_scalar(const WeightMatrix& w, int64_t n0, int64_t nn, int64_t k0, int64_t kc, float* dst) {
  const int64_t strips = (nn + kGemmNR - 1) / kGemmNR;
  std::fill(dst, dst + strips * kc * kGemmNR, 0.0f);
  std::vector<float> row(static_cast<size_t>(kc));
  for (int64_t j = 0; j < nn; ++j) {
    decode_weight_span(w, n0 + j, k0, kc, row.data());
    float* strip = dst + (j / kGemmNR) * kc * kGemmNR + j % kGemmNR;
    for (int64_t k = 0; k < kc; ++k) strip[k * kGemmNR] = row[static_cast<size_t>(k)];
  }
}

void gemm_strip_scalar(const float* a, int64_t lda, int64_t m, const float* b, int64_t kc, float* c, int64_t ldc,
                       int64_t nn, bool accumulate) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < nn; ++j) {
      float acc = accumulate ? c[i * ldc + j] : 0.0f;
      for (int64_t k = 0; k < kc; ++k) acc += a[i * lda + k] * b[k * kGemmNR + j];
      c[i * ldc + j] = acc;
    }
}

void pack_activations_scalar(const float* a, int64_t lda, int64_t m, int64_t K, float* dst) {
  const int64_t panels = (m + kGemmMR - 1) / kGemmMR;
  for (int64_t g = 0; g < panels; ++g)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t r = 0; r < kGemmMR; ++r) {
        const int64_t i = g * kGemmMR + r;
        dst[(g * K + k) * kGemmMR + r] = i < m ? a[i * lda + k] : 0.0f;
      }
}

void gemm_panel_scalar(const float* ap, int64_t panel_stride, int64_t m, const float* b, int64_t kc, float* c, int64_t ldc,
                       int64_t nn, bool accumulate) {
  for (int64_t i = 0; i < m; ++i) {
    const float* a = ap + (i / kGemmMR) * panel_stride + i % kGemmMR;
    for (int64_t j = 0; j < nn; ++j) {
      float acc = accumulate ? c[i * ldc + j] : 0.0f;
      for (int64_t k = 0; k < kc; ++k) acc += a[k * kGemmMR] * b[k * kGemmNR + j];
      c[i * ldc + j] = acc;
    }
  }
}

void depthwise_row_scalar(const float* const* rows, int64_t w_in, int64_t C, const float* w, int k, int stride,
                          int64_t pad_left, int64_t x0, int64_t nx, float* out) {
  for (int64_t x = 0; x < nx; ++x) {
    float* o = out + x * C;
    std::fill(o, o + C, 0.0f);
    for (int ky = 0; ky < k; ++ky) {
      if (!rows[ky]) continue;  // zero padding row
      for (int kx = 0; kx < k; ++kx) {
        const int64_t ix = (x0 + x) * stride - pad_left + kx;
        if (ix < 0 || ix >= w_in) continue;
        const float* in = rows[ky] + ix * C;
        const float* wt = w + (ky * k + kx) * C;
        for (int64_t c = 0; c < C; ++c) o[c] += wt[c] * in[c];
      }
    }
  }
}

float gelu_scalar(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + 0.044715f * x * x)));
}

void rms_norm_rows_scalar(float* x, int64_t ld, int64_t rows, int64_t n, const float* w, float eps, bool gelu) {
  for (int64_t r = 0; r < rows; ++r) {
    float* v = x + r * ld;
    float ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += v[i] * v[i];
    const float s = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
    for (int64_t i = 0; i < n; ++i) v[i] = v[i] * s * w[i];
    if (gelu)
      for (int64_t i = 0; i < n; ++i) v[i] = gelu_scalar(v[i]);
  }
}

void softmax_rows_scalar(float* x, int64_t ld, int64_t rows, int64_t n, float scale) {
  for (int64_t r = 0; r < rows; ++r) {
    float* v = x + r * ld;
    float mx = v[0];
    for (int64_t i = 1; i < n; ++i) mx = std::max(mx, v[i]);
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += (v[i] = std::exp((v[i] - mx) * scale));
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; ++i) v[i] *= inv;
  }
}

void silu_scalar(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
}

}  // namespace

const ConvKernelSet& scalar_set() {
  static const ConvKernelSet k{"scalar",           pack_weights_scalar,  gemm_strip_scalar,   pack_activations_scalar,
                               gemm_panel_scalar,  depthwise_row_scalar, rms_norm_rows_scalar, softmax_rows_scalar,
                               silu_scalar};
  return k;
}

}  // namespace conv

const ConvKernelSet& conv_kernels_scalar() { return conv::scalar_set(); }

std::vector<const ConvKernelSet*> conv_kernel_sets() {
  std::vector<const ConvKernelSet*> sets = {&conv::scalar_set()};
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  if (const ConvKernelSet* a = conv::avx2_set(); a && avx2) sets.push_back(a);
  if (const ConvKernelSet* z = conv::avx512_set(); z && avx2 && f.avx512f) sets.push_back(z);
  if (const ConvKernelSet* n = conv::neon_set(); n && f.neon) sets.push_back(n);
  return sets;
}

const ConvKernelSet& conv_set_for(const std::string& vec_dot_set) {
  const std::string name = vec_dot_conv_set(vec_dot_set);
  for (const ConvKernelSet* s : conv_kernel_sets())
    if (name == s->name) return *s;
  return conv::scalar_set();
}

const ConvKernelSet& conv_kernels() {
  static const ConvKernelSet* chosen = &conv_set_for(vec_dot_start_set());
  return *chosen;
}

WeightMatrix f32_weight_view(const float* data, int64_t rows, int64_t cols) {
  return WeightMatrix{GgmlType::F32, cols, rows, static_cast<uint64_t>(cols) * sizeof(float), reinterpret_cast<const uint8_t*>(data)};
}

void gemm_weights(const ConvKernelSet& ks, const float* a, int64_t lda, int64_t m, const WeightMatrix& w, float* c,
                  int64_t ldc, GemmScratch& scratch) {
  if (w.n_out < kGemmPackAMinOut || m < kGemmMR) return gemm_weights_columns(ks, a, lda, m, w, 0, w.n_out, c, ldc, scratch);
  const int64_t size = packed_activations_size(m, w.n_in);
  if (scratch.acts.size() < static_cast<size_t>(size)) scratch.acts.resize(static_cast<size_t>(size));
  ks.pack_activations(a, lda, m, w.n_in, scratch.acts.data());
  gemm_weights_packed_columns(ks, scratch.acts.data(), m, w, 0, w.n_out, c, ldc, scratch);
}

// The blocking both variants share (L2 = 512 KiB per core on the machines measured). A group of up to
// kGroup strips (128 output channels) is packed once over all of K (128 KiB per input block) and swept by
// row chunks of kMC rows; within a chunk the input blocks run innermost, so the chunk's C block
// (kMC x 128 f32 = 48 KiB) stays in L2 from the first input block to the last instead of making a trip
// to L3 per block (C's rows are often 4 KiB multiples apart, which L1 cannot hold together). Every value
// is still the k-ordered chain (the accumulator is stored and reloaded as is between input blocks),
// whatever the blocking.
template <class Strip>
static void gemm_blocked(const ConvKernelSet& ks, int64_t m, const WeightMatrix& w, int64_t o0, int64_t o1, float* c, int64_t ldc,
                         GemmScratch& scratch, Strip&& strip) {
  constexpr int64_t kGroup = 8, kMC = 96;
  const int64_t K = w.n_in;
  if (m <= 0 || o1 <= o0) return;
  if (K == 0) {
    for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc + o0, c + i * ldc + o1, 0.0f);
    return;
  }
  const int64_t blocks = (K + kGemmKC - 1) / kGemmKC;
  const int64_t block_floats = kGroup * std::min(K, kGemmKC) * kGemmNR;  // one input block of the group
  if (scratch.panel.size() < static_cast<size_t>(blocks * block_floats)) scratch.panel.resize(static_cast<size_t>(blocks * block_floats));
  for (int64_t n0 = o0; n0 < o1; n0 += kGroup * kGemmNR) {
    const int64_t nn = std::min(kGroup * kGemmNR, o1 - n0), ns = (nn + kGemmNR - 1) / kGemmNR;
    for (int64_t kb = 0; kb < blocks; ++kb) {
      const int64_t k0 = kb * kGemmKC;
      ks.pack_weights(w, n0, nn, k0, std::min(kGemmKC, K - k0), scratch.panel.data() + kb * block_floats);
    }
    for (int64_t i0 = 0; i0 < m; i0 += kMC) {
      const int64_t mc = std::min(kMC, m - i0);
      for (int64_t kb = 0; kb < blocks; ++kb) {
        const int64_t k0 = kb * kGemmKC, kc = std::min(kGemmKC, K - k0);
        const float* panel = scratch.panel.data() + kb * block_floats;
        for (int64_t s = 0; s < ns; ++s)
          strip(i0, mc, k0, kc, panel + s * kc * kGemmNR, c + i0 * ldc + n0 + s * kGemmNR, std::min(kGemmNR, nn - s * kGemmNR));
      }
    }
  }
}

void gemm_weights_packed_columns(const ConvKernelSet& ks, const float* a_packed, int64_t m, const WeightMatrix& w, int64_t o0,
                                 int64_t o1, float* c, int64_t ldc, GemmScratch& scratch) {
  const int64_t stride = w.n_in * kGemmMR;  // floats between panels; kMC is a multiple of 6
  gemm_blocked(ks, m, w, o0, o1, c, ldc, scratch, [&](int64_t i0, int64_t mc, int64_t k0, int64_t kc, const float* b, float* cc, int64_t nn) {
    ks.gemm_panel(a_packed + (i0 / kGemmMR) * stride + k0 * kGemmMR, stride, mc, b, kc, cc, ldc, nn, k0 > 0);
  });
}

void gemm_weights_columns(const ConvKernelSet& ks, const float* a, int64_t lda, int64_t m, const WeightMatrix& w, int64_t o0,
                          int64_t o1, float* c, int64_t ldc, GemmScratch& scratch) {
  gemm_blocked(ks, m, w, o0, o1, c, ldc, scratch, [&](int64_t i0, int64_t mc, int64_t k0, int64_t kc, const float* b, float* cc, int64_t nn) {
    ks.gemm_strip(a + i0 * lda + k0, lda, mc, b, kc, cc, ldc, nn, k0 > 0);
  });
}

}  // namespace g3n
