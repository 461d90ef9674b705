// Matrix products against GGUF weight matrices: y = W x for a batch of activation rows.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "quant/ggml_type.h"

namespace g3n {

class ThreadPool;

// A 2-D view of (a slice of) a GGUF tensor: n_out rows of n_in elements, each row_bytes long.
// Matches PyTorch nn.Linear.weight [out, in] with GGUF ne = [in, out]; no transposition anywhere.
struct WeightMatrix {
  GgmlType type = GgmlType::F32;
  int64_t n_in = 0;
  int64_t n_out = 0;
  uint64_t row_bytes = 0;
  const uint8_t* data = nullptr;
  // data holds a packed matrix (kernels/packed_panels.h: groups of 16 rows for the AVX-512 VNNI kernels):
  // row() is then invalid, row_bytes stays the row-major size (of the viewed matrix's rows, for a column
  // prefix: packed_group_bytes), weight_row_f32 still gives any row.
  bool packed = false;
  const uint8_t* row(int64_t r) const { return data + static_cast<uint64_t>(r) * row_bytes; }
  bool empty() const { return data == nullptr; }
};

// Arithmetic of a matmul.
//  Exact: weights decoded to f32, dotted with f32 activations (the reference semantics; the fixtures'
//         2e-3 tolerance applies).
//  Fast:  quantized weights dotted with activations quantized to int8 per block (as llama.cpp does);
//         float weights with f32 activations. Integer inner loops, SIMD where the CPU has it.
enum class MatmulMode { Exact, Fast };

// Reusable scratch (quantized activations, decoded rows), grown on first use and then reused, so
// steady-state decoding allocates nothing.
struct MatmulScratch {
  std::vector<uint8_t> act;
  std::vector<float> rows;  // one decoded weight row per thread (exact path)
  std::vector<uint8_t> mask;  // masked prefill: [row][8-token group] "some token needs it"
  std::vector<uint8_t> unpacked;  // one unpacked row per thread (packed matrices, sets without packed kernels)
};

// Y[t*ldy + o] = sum_i W[o][i] * X[t*ldx + i] for t < n_tok, o < n_out. Rows are split across the
// pool's threads; every output element's summation order is fixed by the kernel alone, so results do
// not depend on the thread count or on which other rows share the batch (batch invariance).
void matmul(const WeightMatrix& w, const float* x, int64_t ldx, int64_t n_tok, float* y, int64_t ldy,
            ThreadPool& pool, MatmulMode mode, MatmulScratch& scratch);

// As matmul, but Y[t*ldy + o] is computed only where need[t*ldn + o] != 0 and is 0 elsewhere: rows no
// token needs are never read. Each computed value has the same bits as matmul's. Gemma 3n's sparse FFN
// layers use it for the up projection, whose outputs only matter where the sparsified gate is non-zero
// (gelu(0) * u = 0 for every finite u).
void matmul_masked(const WeightMatrix& w, const float* x, int64_t ldx, int64_t n_tok, float* y, int64_t ldy,
                   const float* need, int64_t ldn, ThreadPool& pool, MatmulMode mode, MatmulScratch& scratch);

// Decodes row r of w into dst (n_in floats).
void weight_row_f32(const WeightMatrix& w, int64_t r, float* dst);

// Rows [r0, r0 + n_out) of w, their first n_in values, read in place (a MatFormer draft's narrower matrices
// over its target's). nullopt where the layout cannot say it: outside w, a column count that is not whole
// blocks of the type, a packed matrix cut inside a 16-row group.
std::optional<WeightMatrix> weight_view(const WeightMatrix& w, int64_t r0, int64_t n_out, int64_t n_in);

}  // namespace g3n
