// Gemma 3n's audio embedder (HF Gemma3nMultimodalEmbedder, embed_audio) and the 188 rows a clip gives
// the decoder (fixture gemma3n-audio-tiny README §4.3):
//   soft[j] = RMS_∅(Lin(input_projection, RMS_soft(out[j])))         no pre-scale (unlike vision)
//   hard(r) = RMS_∅(Lin(input_projection, RMS_hard(embedding[r])))   r = id - 262272
//   rows    = [valid[j] ? soft[j] : hard(127)] ++ [hard(127)] × (188 - n)   (trap T12)
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "audio/audio_mmproj.h"
#include "audio/conformer.h"

namespace g3n {

class ThreadPool;
class AudioGemm;

// Soft rows of encoder tokens x [n, D] -> [n, text width]. gemm null: the exact path (weights decoded
// to f32); else the projection runs through that fast GEMM.
std::vector<float> embed_audio_soft(const AudioMmproj& mm, const float* x, int64_t n, ThreadPool& pool, AudioGemm* gemm = nullptr);

// Hard rows r (0 .. n_hard-1) -> [rows.size(), text width]. Throws std::runtime_error for a row outside
// the table.
std::vector<float> embed_audio_hard(const AudioMmproj& mm, std::span<const int64_t> rows, ThreadPool& pool);

// The 188 rows of one clip from its encoder tokens (n <= 188, else std::runtime_error).
std::vector<float> audio_clip_rows(const AudioMmproj& mm, const AudioFrames& tokens, ThreadPool& pool, AudioGemm* gemm = nullptr);

}  // namespace g3n
