// Views of a Gemma 3n GGUF's tensors, by role. Matrices stay in the mmapped file in their stored type;
// 1-D vectors (norm weights, scales) are decoded to f32 once at load (a few KB per layer).
#pragma once
#include <string>
#include <vector>

#include "base/aligned_vector.h"

#include "kernels/matmul.h"
#include "kernels/sparse_columns.h"
#include "model/gemma3n_config.h"

namespace g3n {

class GgufFile;

struct Gemma3nLayerWeights {
  // AltUp
  WeightMatrix altup_router;        // [D -> N]
  std::vector<float> altup_router_norm;
  WeightMatrix altup_predict_coef;  // [N -> N*N]
  WeightMatrix altup_correct_coef;  // [N -> N]
  std::vector<float> altup_correct_scale;
  // attention
  std::vector<float> attn_norm;
  WeightMatrix attn_q, attn_k, attn_v, attn_output;  // attn_k/attn_v empty on KV-sharing layers
  std::vector<float> attn_q_norm, attn_k_norm;
  std::vector<float> post_attention_norm;
  // LAuReL
  WeightMatrix laurel_l, laurel_r;
  std::vector<float> laurel_post_norm;
  // feed-forward
  std::vector<float> ffn_norm;
  WeightMatrix ffn_gate, ffn_up, ffn_down;
  // Column-major copy of ffn_down on activation-sparse layers (Q4_K/Q6_K files): the fast path reads
  // only the columns of non-zero activations. Empty elsewhere.
  SparseColumns ffn_down_cols;
  // A MatFormer slice's ffn_down (a column prefix of the stored rows) repacked with a compact stride, so
  // that only the kept bytes stay resident (model.cpp). Empty elsewhere; ffn_down then points here.
  AlignedVector<uint8_t> ffn_down_compact;  // 64-byte aligned: it may hold a packed matrix
  std::vector<float> post_ffw_norm;
  // per-layer input injection
  WeightMatrix inp_gate;  // [D -> P]
  WeightMatrix proj;      // [P -> D]
  std::vector<float> post_norm;
};

// The per-layer tables hold one P-wide block per FILE layer. A MatFormer slice uses its kept layers'
// blocks, read as runs of consecutive file layers (a single run when no layer is skipped): views of
// per_layer_token_embd's columns (each token row gathered, never the whole table) and of
// per_layer_model_proj's rows.
struct PerLayerRun {
  int first_layer = 0;      // model layer of the run's first block
  int n_layers = 0;
  WeightMatrix token_embd;  // [n_layers*P, Vp], rows strided as the file's table
  WeightMatrix model_proj;  // [D -> n_layers*P]
};

struct Gemma3nWeights {
  // The file the matrices are views of. The per-layer token table is read from it a row at a time with
  // GgufFile::read_bytes (never through the mapping, whose pages would stay resident around every lookup).
  const GgufFile* file = nullptr;
  WeightMatrix token_embd;            // [D, V]: input table and tied output head
  WeightMatrix output;                // = token_embd unless the file has output.weight
  std::vector<PerLayerRun> per_layer;
  std::vector<float> per_layer_proj_norm;
  std::vector<WeightMatrix> altup_proj;         // N-1 slices [D -> D]
  std::vector<WeightMatrix> altup_unembd_proj;  // N-1 slices [D -> D]
  std::vector<float> output_norm;
  std::vector<Gemma3nLayerWeights> layers;
};

// Calls fn(matrix, column copy or nullptr) for every matrix the forward pass multiplies with (Weights: const
// or not), ffn_down with its layer's column copy. Not the per-layer token tables: they are read from the
// file by row. The tied input table and output head come as two matrices with the same data.
template <class Weights, class Fn>
void for_each_matrix(Weights& w, Fn&& fn) {
  fn(w.token_embd, nullptr);
  fn(w.output, nullptr);
  for (auto& run : w.per_layer) fn(run.model_proj, nullptr);
  for (auto& m : w.altup_proj) fn(m, nullptr);
  for (auto& m : w.altup_unembd_proj) fn(m, nullptr);
  for (auto& lw : w.layers) {
    for (auto* m : {&lw.altup_router, &lw.altup_predict_coef, &lw.altup_correct_coef, &lw.attn_q, &lw.attn_k, &lw.attn_v,
                    &lw.attn_output, &lw.laurel_l, &lw.laurel_r, &lw.ffn_gate, &lw.ffn_up, &lw.inp_gate, &lw.proj})
      fn(*m, nullptr);
    fn(lw.ffn_down, &lw.ffn_down_cols);
  }
}

// Binds every tensor the forward pass uses, checking names, shapes and types; throws
// std::runtime_error naming the tensor on any mismatch.
Gemma3nWeights bind_gemma3n_weights(const GgufFile& file, const Gemma3nConfig& config);

}  // namespace g3n
