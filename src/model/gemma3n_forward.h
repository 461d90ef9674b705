// The Gemma 3n text decoder forward pass (docs/model.md §4), over a batch of tokens of one sequence.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/sparse_columns.h"

namespace g3n {

class Model;
class KvCache;
class ThreadPool;

// Activation buffers for up to n_batch tokens attending over caches of up to n_ctx positions,
// allocated once (no allocation per token).
struct ForwardBuffers {
  ForwardBuffers(const Model& model, int n_batch, int n_ctx, int n_threads);
  int n_batch;
  int n_scores;                 // longest KV cache the score buffers fit
  std::vector<float> x0;        // [T, D] scaled token embeddings
  std::vector<float> per_layer; // [T, L*P] per-layer inputs
  std::vector<float> streams;   // [N, T, D] AltUp streams
  std::vector<float> pred;      // [N, T, D] AltUp predictions
  std::vector<float> tmp_d;     // [T, D]
  std::vector<float> h;         // [T, D] normed attention input
  std::vector<float> laurel;    // [T, D]
  std::vector<float> rank;      // [T, R]
  std::vector<float> q;         // [T, H*Dh]
  std::vector<float> k, v;      // [T, Hkv*Dh]
  std::vector<float> attn;      // [T, H*Dh]
  std::vector<float> x1;        // [T, D] attention block output
  std::vector<float> gate, up;  // [T, F]
  std::vector<float> router;    // [T, N]
  std::vector<float> coefs;     // [T, N*N]
  std::vector<float> ple_gate;  // [T, P]
  std::vector<float> ple_row;   // [threads, L*P] one decoded per-layer table row per thread
  std::vector<float> cutoff;    // [T] Gaussian top-k threshold of each row's FFN gate
  std::vector<uint8_t> sparse_q8;      // [T] Q8_K rows of the sparse FFN activations
  std::vector<SparseQ8K> sparse_act;   // [T] their non-zero entries (sparse down projection)
  std::vector<float> rope_local, rope_global;  // [T, Dh] each row's RoPE cos/sin (rope_angles)
  std::vector<float> scores;    // [threads, n_ctx] attention scores
  MatmulScratch matmul;         // quantized activations / decoded weight rows
  std::vector<int64_t> positions;
  std::vector<KvCache*> caches;
  std::vector<int32_t> rows;    // batch rows kept past the last KV-owning layer
  std::vector<int32_t> logit_rows;  // of those (indices into rows), the ones that run the LM head
};

// One forward pass over rows that may belong to different sequences (continuous batching): row i is
// token tokens[i] — or, where embeddings[i] is set, that n_embd-wide vector (an image or audio soft
// token) — at position positions[i] of the sequence whose cache is caches[i]. Rows of one
// sequence appear in position order, at most n_batch of them, and see each other (their K/V are
// written before attention). For each row with want_logits[i] != 0, in order, one row of n_vocab
// logits is written to logits_out. Layers past the last KV-owning one run only for those rows
// (docs/model.md §4.6: exact, since they write no cache). Every row's result is independent of the others.
struct ForwardBatch {
  std::span<const int32_t> tokens;
  // Empty (every row a token) or one entry per row: null for a token row, else the row's vector, taken
  // as the layer input x0 as given (docs/model.md §9: no sqrt(D) scale, per-layer token
  // part from row 0, causal attention, one position per row). tokens[i] is ignored for such rows.
  std::span<const float* const> embeddings;
  std::span<const int64_t> positions;
  std::span<KvCache* const> caches;
  std::span<const uint8_t> want_logits;
  // Empty (no row) or one entry per row: rows with want_hidden[i] != 0 also (or instead) write their final hidden
  // vector — the LM head's input, after the AltUp un-embedding and the final RMSNorm (docs/model.md §4.5) —
  // n_embd floats each, in order, to hidden_out. A row wanted only here skips the LM head.
  std::span<const uint8_t> want_hidden;
  // Run the KV-sharing layers only for rows whose logits are wanted (docs/model.md §4.6). Off only to measure it.
  bool prefill_shortcut = true;
};

// logits_out may be null when no row wants logits, hidden_out when none wants its hidden vector.
void gemma3n_forward(const Model& model, const ForwardBatch& batch, ForwardBuffers& buffers, ThreadPool& pool,
                     MatmulMode mode, float* logits_out, float* hidden_out = nullptr);

}  // namespace g3n
