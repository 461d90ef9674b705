// Attention inner loops over a run of cached keys/values for the query heads that share one KV head
// (grouped-query attention): each K and V row is read and converted once for all G heads.
//   attn_scores: scores[h * ld + j] = q_h . K_j            for j < n, h < G
//   attn_values: out[h * d + i] += sum_j p[h * ld + j] * V_j[i]
// K_j / V_j are rows of d values at k + j * stride (element stride), F16 or F32. q is G rows of d
// floats, contiguous. The _ref twins are plain loops; the SIMD versions agree with them up to float
// summation order (tests/kernels_attention_test.cpp). G <= 8.
#pragma once
#include <cstdint>

namespace g3n {

void attn_scores_f16(const uint16_t* k, int64_t stride, int64_t n, const float* q, int G, int64_t d, float* scores, int64_t ld);
void attn_scores_f32(const float* k, int64_t stride, int64_t n, const float* q, int G, int64_t d, float* scores, int64_t ld);
void attn_values_f16(const uint16_t* v, int64_t stride, int64_t n, const float* p, int64_t ld, int G, int64_t d, float* out);
void attn_values_f32(const float* v, int64_t stride, int64_t n, const float* p, int64_t ld, int G, int64_t d, float* out);

void attn_scores_f16_ref(const uint16_t* k, int64_t stride, int64_t n, const float* q, int G, int64_t d, float* scores, int64_t ld);
void attn_scores_f32_ref(const float* k, int64_t stride, int64_t n, const float* q, int G, int64_t d, float* scores, int64_t ld);
void attn_values_f16_ref(const uint16_t* v, int64_t stride, int64_t n, const float* p, int64_t ld, int G, int64_t d, float* out);
void attn_values_f32_ref(const float* v, int64_t stride, int64_t n, const float* p, int64_t ld, int G, int64_t d, float* out);

}  // namespace g3n
