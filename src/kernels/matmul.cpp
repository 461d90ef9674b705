#include "kernels/matmul.h"

#include <vector>

#include "kernels/ops.h"
#include "quant/quantize.h"
#include "runtime/thread_pool.h"

namespace g3n {

void weight_row_f32(const WeightMatrix& w, int64_t r, float* dst) {
  dequantize_row(w.type, w.row(r), dst, w.n_in);
}

void matmul(const WeightMatrix& w, const float* x, int64_t ldx, int64_t n_tok, float* y, int64_t ldy,
            ThreadPool& pool) {
  pool.parallel_for(
      w.n_out,
      [&](int64_t begin, int64_t end, int) {
        // One decoded row per thread, reused across the batch: each weight row is decoded once per call.
        thread_local std::vector<float> buf;
        if (static_cast<int64_t>(buf.size()) < w.n_in) buf.resize(w.n_in);
        for (int64_t o = begin; o < end; ++o) {
          const float* row;
          if (w.type == GgmlType::F32) {
            row = reinterpret_cast<const float*>(w.row(o));
          } else {
            weight_row_f32(w, o, buf.data());
            row = buf.data();
          }
          for (int64_t t = 0; t < n_tok; ++t) y[t * ldy + o] = dot_f32(row, x + t * ldx, w.n_in);
        }
      },
      16);
}

}  // namespace g3n
