// Column-major copies of K-quant matrices, sparse Q8_K activation rows, and the scalar products (the
// readable definition; the AVX2, AVX-512 and NEON kernels are in sparse_columns_avx2.cpp / _avx512.cpp /
// _neon.cpp).
#include "kernels/sparse_columns.h"
#include "kernels/sparse_columns_slice.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/kquant_step.h"
#include "kernels/vec_dot.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace g3n {

namespace sparse_detail {
TokensFn avx2_tokens();  // sparse_columns_avx2.cpp; nullptr where not compiled
TokensFn neon_tokens();  // sparse_columns_neon.cpp; nullptr where not compiled
using TileFn = void (*)(const SparseColumns&, const void*, uint64_t, int64_t, int64_t, int64_t, float*, int64_t);
TileFn avx512_tile();  // sparse_columns_avx512.cpp; nullptr where not compiled
TileFn amx_tile();     // the same file, AMX-INT8 tile multiplies for whole 16-token tiles
TokensFn avx512_tokens();  // sparse_columns_avx512.cpp; nullptr where not compiled
inline TileFn no_tile() { return nullptr; }
}  // namespace sparse_detail

namespace {

using namespace quant;

// The 256 6-bit quants of a Q6_K block, unsigned (0..63), in value order (as dot_q6_k pairs them with
// the activations): per half, ql[l] / ql[l+32] give the low nibbles of values l, l+32 (low nibble) and
// l+64, l+96 (high nibble); qh[l] holds their top 2 bits at bits 0, 2, 4, 6.
void q6k_quants(const BlockQ6_K& b, uint8_t* v) {
  for (int half = 0; half < 2; ++half)
    for (int l = 0; l < 32; ++l) {
      const uint8_t ql0 = b.ql[64 * half + l], ql1 = b.ql[64 * half + 32 + l], qh = b.qh[32 * half + l];
      uint8_t* o = v + 128 * half + l;
      o[0] = uint8_t((ql0 & 0x0F) | ((qh & 3) << 4));
      o[32] = uint8_t((ql1 & 0x0F) | (((qh >> 2) & 3) << 4));
      o[64] = uint8_t((ql0 >> 4) | (((qh >> 4) & 3) << 4));
      o[96] = uint8_t((ql1 >> 4) | (((qh >> 6) & 3) << 4));
    }
}

// The low nibbles of column j's quants for rows r0..r0+15 (quants[k][j] is row r0+k): 8 bytes, byte k
// holding row r0+k low and row r0+8+k high. Both types' copies store them this way.
void put_nibbles(const uint8_t (&quants)[16][kQK_K], int j, uint8_t* dst) {
  for (int k = 0; k < 8; ++k) dst[k] = uint8_t((quants[k][j] & 0x0F) | ((quants[k + 8][j] & 0x0F) << 4));
}

// Row r's low nibble in a column written by put_nibbles (col points at the column's R/2 bytes).
int nibble_at(const uint8_t* col, int64_t r) {
  const uint8_t byte = col[(r / 16) * 8 + (r % 8)];
  return (r % 16) < 8 ? (byte & 0x0F) : (byte >> 4);
}

}  // namespace

uint64_t SparseColumns::block_bytes() const {
  const uint64_t R = static_cast<uint64_t>(n_out);
  return type == GgmlType::Q4_K ? R * (4 + 8 + 8 + 128) : R * (2 + 16 + 128 + 64);
}

bool sparse_columns_supported(const WeightMatrix& w) {
  return (w.type == GgmlType::Q4_K || w.type == GgmlType::Q6_K) && !w.empty() && !w.packed && w.n_out > 0 &&
         w.n_out % 16 == 0 && w.n_in > 0 && w.n_in % kQK_K == 0;
}

SparseColumns make_sparse_columns(const WeightMatrix& w) {
  if (!sparse_columns_supported(w))
    throw std::invalid_argument("make_sparse_columns: needs a Q4_K or Q6_K matrix with rows a multiple of 16");
  SparseColumns m;
  m.type = w.type;
  m.n_in = w.n_in;
  m.n_out = w.n_out;
  const int64_t R = w.n_out, nb = w.n_in / kQK_K;
  const uint64_t bb = m.block_bytes();
  auto bytes = std::make_shared<std::vector<uint8_t>>(bb * static_cast<uint64_t>(nb));
  // Block by block, 16 rows at a time: their quants are decoded into a small [16][256] table, then each
  // column's 16 values are written as one 8- or 16-byte run (a write pattern the cache can follow).
  uint8_t quants[16][kQK_K];
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* out = bytes->data() + bb * static_cast<uint64_t>(b);
    for (int64_t r0 = 0; r0 < R; r0 += 16) {
      if (w.type == GgmlType::Q4_K) {
        uint16_t* d = reinterpret_cast<uint16_t*>(out);  // fp16 bits, copied unchanged
        uint16_t* dmin = d + R;
        uint8_t* sc = out + 4 * R;
        uint8_t* mins = sc + 8 * R;
        uint8_t* q = mins + 8 * R;
        for (int k = 0; k < 16; ++k) {
          const int64_t r = r0 + k;
          const auto& blk = reinterpret_cast<const BlockQ4_K*>(w.row(r))[b];
          std::memcpy(d + r, &blk.d, 2);
          std::memcpy(dmin + r, &blk.dmin, 2);
          for (int g = 0; g < 8; ++g) {
            uint8_t s, mn;
            k4_scale_min(g, blk.scales, &s, &mn);
            sc[g * R + r] = s;
            mins[((g / 2) * R + r) * 2 + g % 2] = mn;
          }
          for (int c = 0; c < 4; ++c)
            for (int l = 0; l < 32; ++l) {
              const uint8_t byte = blk.qs[32 * c + l];
              quants[k][64 * c + l] = byte & 0x0F;
              quants[k][64 * c + 32 + l] = byte >> 4;
            }
        }
        for (int j = 0; j < kQK_K; ++j) put_nibbles(quants, j, q + j * (R / 2) + r0 / 2);
      } else {
        uint16_t* d = reinterpret_cast<uint16_t*>(out);
        int8_t* sc = reinterpret_cast<int8_t*>(out + 2 * R);
        uint8_t* q = out + 18 * R;
        uint8_t* qh = q + 128 * R;
        for (int k = 0; k < 16; ++k) {
          const int64_t r = r0 + k;
          const auto& blk = reinterpret_cast<const BlockQ6_K*>(w.row(r))[b];
          std::memcpy(d + r, &blk.d, 2);
          for (int g = 0; g < 16; ++g) sc[g * R + r] = blk.scales[g];
          q6k_quants(blk, quants[k]);
        }
        for (int j = 0; j < kQK_K; ++j) {
          put_nibbles(quants, j, q + j * (R / 2) + r0 / 2);
          uint32_t top = 0;
          for (int k = 0; k < 16; ++k) top |= uint32_t(quants[k][j] >> 4) << (2 * k);
          std::memcpy(qh + j * (R / 4) + r0 / 4, &top, 4);
        }
      }
    }
  }
  m.bytes = std::move(bytes);
  return m;
}

SparseColumns sparse_columns_prefix(const SparseColumns& m, int64_t n_in) {
  if (m.empty() || n_in <= 0 || n_in > m.n_in || n_in % kQK_K) return {};
  SparseColumns v = m;
  v.n_in = n_in;
  return v;
}

void sparse_q8k_from(const void* q8k_row, int64_t n, SparseQ8K& out) {
  const auto* a = static_cast<const BlockQ8_K*>(q8k_row);
  const int64_t nb = n / kQK_K;
  out.n_blocks = nb;
  out.d.resize(static_cast<size_t>(nb));
  out.bsum32.resize(static_cast<size_t>(nb) * 8);
  out.start.resize(static_cast<size_t>(nb) + 1);
  out.col.clear();
  out.val.clear();
  out.block.clear();
  for (int64_t b = 0; b < nb; ++b) {
    out.d[b] = a[b].d;
    for (int g = 0; g < 8; ++g) out.bsum32[b * 8 + g] = int16_t(a[b].bsums[2 * g] + a[b].bsums[2 * g + 1]);
    out.start[b] = static_cast<uint32_t>(out.col.size());
    for (int j = 0; j < kQK_K; ++j)
      if (a[b].qs[j] != 0) {
        out.col.push_back(uint8_t(j));
        out.val.push_back(a[b].qs[j]);
        out.block.push_back(static_cast<uint32_t>(b));
      }
  }
  out.start[nb] = static_cast<uint32_t>(out.col.size());
}

// The scalar twin: per row and block, the integer sums of dot_q4_k_ref / dot_q6_k_ref over the
// non-zero columns only, combined by the same float expression.
void sparse_columns_rows_ref(const SparseColumns& m, const SparseQ8K& a, int64_t r0, int64_t r1, float* y) {
  const int64_t R = m.n_out;
  const uint64_t bb = m.block_bytes();
  for (int64_t r = r0; r < r1; ++r) {
    float sum = 0.0f;
    for (int64_t b = 0; b < a.n_blocks; ++b) {
      const uint8_t* blk = m.data() + bb * static_cast<uint64_t>(b);
      if (a.start[b] == a.start[b + 1]) continue;  // all-zero block: both sums are 0
      if (m.type == GgmlType::Q4_K) {
        uint16_t dh, mh;
        std::memcpy(&dh, blk + 2 * r, 2);
        std::memcpy(&mh, blk + 2 * (R + r), 2);
        const uint8_t* sc = blk + 4 * R;
        const uint8_t* mins = sc + 8 * R;
        const uint8_t* q = mins + 8 * R;
        int32_t summ = 0;
        for (int g = 0; g < 8; ++g) summ += mins[((g / 2) * R + r) * 2 + g % 2] * a.bsum32[b * 8 + g];
        int32_t isum = 0;
        for (uint32_t e = a.start[b]; e < a.start[b + 1]; ++e) {
          const int j = a.col[e];
          isum += sc[(j / 32) * R + r] * nibble_at(q + j * (R / 2), r) * a.val[e];
        }
        sum = vecdot::kquant_step_min(sum, a.d[b], fp16_to_fp32(dh), fp16_to_fp32(mh), isum, summ);
      } else {
        uint16_t dh;
        std::memcpy(&dh, blk + 2 * r, 2);
        const auto* sc = reinterpret_cast<const int8_t*>(blk + 2 * R);
        const uint8_t* q = blk + 18 * R;
        const uint8_t* qh = q + 128 * R;
        int32_t isum = 0;
        for (uint32_t e = a.start[b]; e < a.start[b + 1]; ++e) {
          const int j = a.col[e];
          const int low = nibble_at(q + j * (R / 2), r);
          uint32_t top;
          std::memcpy(&top, qh + j * (R / 4) + (r / 16) * 4, 4);
          const int quant = low | int(((top >> (2 * (r % 16))) & 3) << 4);
          isum += sc[(j / 16) * R + r] * (quant - 32) * a.val[e];
        }
        sum = vecdot::kquant_step(sum, a.d[b], fp16_to_fp32(dh), isum);
      }
    }
    y[r] = sum;
  }
}

namespace {

// The sparse kernel of each vec_dot kernel set (by name); a set not listed uses the scalar twin. Each
// must return the bits of its set's dense dot (the NEON sets' K-quant dots all close every block with
// the scalar dots' own step, kquant_step.h, so one NEON kernel serves the three; both AVX-512 sets' K-quant
// dots give the AVX2 set's bits, and their zmm kernel closes each block with the AVX2 kernel's fmas).
struct SparseEntry {
  const char* set;
  sparse_detail::TokensFn (*get)();
  sparse_detail::TileFn (*tile)();  // the prefill product, where the set has one
};
constexpr SparseEntry kSparseSets[] = {
    {"avx2+fma+f16c", sparse_detail::avx2_tokens, sparse_detail::no_tile},
    {"avx-vnni", sparse_detail::avx2_tokens, sparse_detail::no_tile},  // its K-quant dots give the AVX2 bits
    {"avx512vnni", sparse_detail::avx512_tokens, sparse_detail::avx512_tile},
    {"avx512vnni-256", sparse_detail::avx512_tokens, sparse_detail::avx512_tile},
    {"avx512vnni+amx", sparse_detail::avx512_tokens, sparse_detail::amx_tile},  // its K-quant dots are avx512vnni's
    {"neon", sparse_detail::neon_tokens, sparse_detail::no_tile},
    {"neon+dotprod", sparse_detail::neon_tokens, sparse_detail::no_tile},
    {"neon+i8mm", sparse_detail::neon_tokens, sparse_detail::no_tile},
};

const SparseEntry* entry_for(const char* set) {
  for (const SparseEntry& e : kSparseSets)
    if (std::strcmp(e.set, set) == 0) return &e;
  return nullptr;
}

void tokens_ref(const SparseColumns& m, const SparseQ8K* a, int n, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  for (int t = 0; t < n; ++t) sparse_columns_rows_ref(m, a[t], r0, r1, y + t * ldy);
}

sparse_detail::TokensFn tokens_for(const char* set) {
  if (const SparseEntry* e = entry_for(set))
    if (const sparse_detail::TokensFn fn = e->get()) return fn;
  return &tokens_ref;
}

sparse_detail::TileFn tile_for(const char* set) {
  const SparseEntry* e = entry_for(set);
  return e ? e->tile() : nullptr;
}

}  // namespace

void sparse_columns_rows(const SparseColumns& m, const SparseQ8K& a, int64_t r0, int64_t r1, float* y) {
  sparse_columns_rows_tokens(m, &a, 1, r0, r1, y, 0);
}

void sparse_columns_rows_tokens(const SparseColumns& m, const SparseQ8K* a, int n_tok, int64_t r0, int64_t r1,
                                float* y, int64_t ldy) {
  if (n_tok <= 0) return;
  // Follows vec_dot's set in use (which vec_dot_use_set may change), so this stays bit-identical to the
  // dense dot it replaces. One short name compare per call; a call covers many rows.
  tokens_for(vec_dot_isa())(m, a, n_tok, r0, r1, y, ldy);
}

bool sparse_columns_tile_available() { return tile_for(vec_dot_isa()) != nullptr; }

void sparse_columns_tile(const SparseColumns& m, const void* act, uint64_t act_stride, int64_t n_tok, int64_t r0,
                         int64_t r1, float* y, int64_t ldy) {
  const sparse_detail::TileFn tile = tile_for(vec_dot_isa());
  if (!tile) throw std::logic_error("sparse_columns_tile: the kernel set in use has none");
  if (r0 % 16 || r1 % 16 || r1 > m.n_out || r0 > r1)
    throw std::invalid_argument("sparse_columns_tile: rows must be a range of whole 16-row groups");
  tile(m, act, act_stride, n_tok, r0, r1, y, ldy);
}

}  // namespace g3n
