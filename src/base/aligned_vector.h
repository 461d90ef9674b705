// A std::vector whose storage starts on a cache line: SIMD kernels that read 32-byte vectors from a
// packed buffer then never split a load across two lines (which costs about 15% in the GEMM
// micro-kernel on Zen 3, bench/gemm_bench).
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace g3n {

template <class T, std::size_t Align = 64>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U, Align>&) {}
  template <class U>
  struct rebind {
    using other = AlignedAllocator<U, Align>;
  };
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{Align})); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{Align}); }
  template <class U>
  bool operator==(const AlignedAllocator<U, Align>&) const { return true; }
};

template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace g3n
