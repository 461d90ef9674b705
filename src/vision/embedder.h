// Gemma 3n's vision embedder (HF Gemma3nMultimodalEmbedder): maps tower features and the hard vision
// tokens (ids 262144.., e.g. <end_of_image>) into the text model's embedding space.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "vision/mmproj.h"
#include "vision/mobilenet_v5.h"

namespace g3n {

class ThreadPool;

// Soft tokens: T[t] = features at (t / 16, t % 16) (row-major, trap 12), scaled by sqrt(Cv), RMSNorm
// (soft_emb_norm), projected to the text width, weightless RMSNorm. Returns [grid², Ct] row-major.
std::vector<float> embed_soft_tokens(const Mmproj& mm, const VisionMap& tower_out, ThreadPool& pool);
// The same on the fast path: the projection is a blocked GEMM (kernels/conv.h) split by output columns
// across threads (same bits for any thread count); the norms are as above.
std::vector<float> embed_soft_tokens_fast(const Mmproj& mm, const VisionMap& tower_out, ThreadPool& pool);

// Hard tokens: row id - 262144 of mm.embedding, RMSNorm (hard_emb_norm), projection, weightless
// RMSNorm. Returns [ids.size(), Ct]; throws std::runtime_error for an id outside the table.
std::vector<float> embed_hard_tokens(const Mmproj& mm, std::span<const int32_t> ids, ThreadPool& pool);

}  // namespace g3n
