// What a model and context will keep resident, estimated before any weight is touched, so `g3n run`
// can refuse clearly instead of being killed by the OOM killer.
#pragma once
#include <cstdint>
#include <optional>

#include "runtime/context.h"

namespace g3n {

class Model;
struct Mmproj;

struct MemoryEstimate {
  uint64_t weights = 0;    // mapped weights that every token reads (all but the per-layer table)
  uint64_t per_layer_table_touched = 0;  // rows of the per-layer table a context can touch (upper bound)
  uint64_t kv_cache = 0;
  uint64_t buffers = 0;    // activations and logits
  uint64_t total() const { return weights + per_layer_table_touched + kv_cache + buffers; }
};

MemoryEstimate estimate_memory(const Model& model, const ContextParams& params);
// A vision projector beside the model (the server keeps one loaded with its model).
//  weights:     the projector's tensor bytes (mapped) plus the k×k kernels decoded to f32 at load.
//  activations: an allowance for one encode: the largest of, per tower block, its input map, two expanded
//               maps (before and after a depthwise conv) and its output map, and for attention blocks the
//               queries, keys, values and every head's score matrix, all as f32 at the projector's
//               image size (the exact path; the fast path keeps less); the MSFA's concat, expanded and
//               projected maps; plus the [3, n, n] input. Images are encoded one at a time per
//               projector, so one allowance covers any number of requests. Decoding the source image
//               is not included (3 bytes per pixel, bounded by the decoder's pixel limit).
struct ProjectorEstimate {
  uint64_t weights = 0;
  uint64_t activations = 0;
  uint64_t total() const { return weights + activations; }
};
ProjectorEstimate estimate_projector_memory(const Mmproj& mm);

// MemAvailable from /proc/meminfo, if readable.
std::optional<uint64_t> available_memory_bytes();

}  // namespace g3n
