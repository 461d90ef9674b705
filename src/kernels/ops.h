// Elementwise and reduction operations of the forward pass, in f32 (scalar reference arithmetic).
#pragma once
#include <cstdint>

namespace g3n {

float dot_f32(const float* a, const float* b, int64_t n);
float sum_squares(const float* x, int64_t n);
// 1 / sqrt(mean(x^2) + eps)
float rms_scale(const float* x, int64_t n, float eps);
// y = x * rms_scale(x) * w (w may be null: no weight). y may alias x.
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);
// tanh-approximated GELU (gelu_pytorch_tanh), evaluated exactly in f32.
float gelu_tanh(float x);
// NeoX ("rotate half") RoPE of one head vector in place: pairs (i, i + d/2), angle pos * base^(-2i/d).
void rope_neox(float* x, int64_t head_dim, int64_t pos, float base);
// The same rotation split in two, so a batch computes each position's angles once for all heads:
// rope_angles writes cos (head_dim/2 values) then sin (head_dim/2) for one position and base;
// rope_neox_with applies them. rope_neox(x, d, p, b) == rope_angles + rope_neox_with, bit for bit.
void rope_angles(int64_t head_dim, int64_t pos, float base, float* cos_sin);
void rope_neox_with(float* x, int64_t head_dim, const float* cos_sin);
// In-place softmax over n values; -inf entries get probability 0.
void softmax(float* x, int64_t n);

}  // namespace g3n
