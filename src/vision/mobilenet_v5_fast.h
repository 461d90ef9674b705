// Gemma 3n's vision tower, fast path: the same steps as mobilenet_v5.h (the exact twin, which stays
// the readable reference), computed with the blocked SIMD kernels of kernels/conv.h and fused per tile
// of pixels so that no expanded map is ever materialised:
//   stem + first edge residual  streamed in bands of output rows (the stem map never exists whole);
//   edge residual               im2col of a pixel tile -> conv_exp GEMM -> norm+gelu -> conv_pwl -> norm;
//   UIR without dw_mid          per pixel tile: dw_start -> pw_exp -> norm+gelu -> pw_proj -> norm, scale;
//   UIR with dw_mid (stride 2)  expanded rows made once into a ring of rows, then per output tile;
//   multi-query attention       per query tile: q, scores, softmax, values, output projection;
//   fusion adapter              per pixel tile: concat -> pw_exp -> norm+gelu -> pw_proj -> norm.
// Activations are f32. Pixels are split into fixed tiles that threads take on demand; every value's
// arithmetic depends on the tile's contents only, so the result is the same for any thread count.
#pragma once
#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/conv.h"
#include "vision/mmproj.h"
#include "vision/mobilenet_v5.h"

namespace g3n {

class ThreadPool;

// Wall time of one part of the tower ("stage0" includes the stem, "msfa" the fusion adapter).
struct VisionStageTime {
  std::string name;
  double seconds = 0;
};

struct FastTowerOptions {
  const std::atomic<bool>* cancel = nullptr;  // polled before every block: throws VisionCancelled
  VisionTap tap;                              // as run_vision_tower's (the stem map is then made whole)
  std::vector<VisionStageTime>* times = nullptr;  // when set, receives the per-stage times
  const ConvKernelSet* kernels = nullptr;         // null: conv_kernels() (tests pick each set)
};

// pixels: [3, n, n] CHW in [0, 1]. Returns the tower output [16, 16, vision width] HWC. Same input
// checks and errors as run_vision_tower.
VisionMap run_vision_tower_fast(const Mmproj& mm, std::span<const float> chw, int64_t n, ThreadPool& pool,
                                const FastTowerOptions& opts = {});

}  // namespace g3n
