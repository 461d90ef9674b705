// What a model and context will keep resident, estimated before any weight is touched, so `g3n run`
// can refuse clearly instead of being killed by the OOM killer.
#pragma once
#include <cstdint>
#include <optional>

#include "runtime/context.h"

namespace g3n {

class Model;

struct MemoryEstimate {
  uint64_t weights = 0;    // mapped weights that every token reads (all but the per-layer table)
  uint64_t per_layer_table_touched = 0;  // rows of the per-layer table a context can touch (upper bound)
  uint64_t kv_cache = 0;
  uint64_t buffers = 0;    // activations and logits
  uint64_t total() const { return weights + per_layer_table_touched + kv_cache + buffers; }
};

MemoryEstimate estimate_memory(const Model& model, const ContextParams& params);
// MemAvailable from /proc/meminfo, if readable.
std::optional<uint64_t> available_memory_bytes();

}  // namespace g3n
