// The fast path's Linear: C = A·Wᵀ with the blocked GEMM of kernels/conv.h, threaded over the pool.
// Wide weights are split by output columns (A packed once and shared, every thread packs only its own
// columns of W, so W is read once); narrow ones (the SSCP convs, few columns) by rows. Either way each
// value is the k-ordered chain of the kernel set, so the result is the same for any thread count.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/conv.h"

namespace g3n {

class ThreadPool;

class AudioGemm {
 public:
  AudioGemm(const ConvKernelSet& ks, ThreadPool& pool);
  // c [m, w.n_out] (row stride ldc) = a [m, w.n_in] (row stride lda) · Wᵀ.
  void run(const float* a, int64_t lda, int64_t m, const WeightMatrix& w, float* c, int64_t ldc);
  const ConvKernelSet& kernels() const { return ks_; }

 private:
  const ConvKernelSet& ks_;
  ThreadPool& pool_;
  std::vector<GemmScratch> scratch_;  // one per thread
  std::vector<float> packed_;         // A packed for a column split
};

}  // namespace g3n
