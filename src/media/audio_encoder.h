// An audio file's bytes -> the rows the decoder takes: decoding to 16 kHz mono, the cut into 30 s chunks,
// the feature extractor, the audio tower and the embedder, per chunk. Shared by `g3n run` and the server,
// so both place the same rows. Each chunk is encoded on its own, exactly as one reference clip: its rows
// never depend on other audio in the request (HF's processor pads a batch's clips to the longest one; g3n
// does not: fixture gemma3n-audio-tiny README §4.4).
//
//   AudioEncoder enc(mmproj_path, model.config().n_embd, threads);
//   auto clip = enc.encode(bytes);   // cached by content: a second call is free
//   // clip->chunks.size() audio blocks, each kAudioSoftTokens rows + <start_of_audio> + <end_of_audio>
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "audio/audio_encode.h"
#include "audio/audio_mmproj.h"
#include "audio/clip.h"
#include "media/content_cache.h"

namespace g3n {
class ThreadPool;
struct Waveform;

// One encoded recording (immutable once made; shared between the cache and the prompts that use it).
struct EncodedAudio {
  std::vector<std::vector<float>> chunks;  // per 30 s chunk: [kAudioSoftTokens, width] rows
  int64_t width = 0;
  uint64_t key = 0;          // content hash of the file bytes
  double seconds = 0;        // duration of the 16 kHz waveform
  int source_rate = 0, source_channels = 0;
  double decode_s = 0;       // decoding + down-mix + resampling
  double features_s = 0;     // log-mel features, all chunks
  double encode_s = 0;       // tower + embedder, all chunks
  std::vector<int64_t> valid_tokens;  // per chunk: encoder rows before the padding rows
};

class AudioEncoder {
 public:
  // Loads the audio half of a projector. Throws std::runtime_error on a file without an audio tower or a bad
  // one, and when n_embd > 0 and the projector's text width differs from it. threads: the encoder's own pool
  // (it runs beside the decode loop); fast: the fast path (false: the exact one).
  AudioEncoder(const std::string& mmproj_path, int64_t n_embd, int threads, bool fast = true);
  ~AudioEncoder();
  AudioEncoder(const AudioEncoder&) = delete;
  AudioEncoder& operator=(const AudioEncoder&) = delete;

  const AudioMmproj& projector() const { return mm_; }
  const std::string& path() const { return path_; }
  // Rows one 30 s chunk takes in a prompt: <start_of_audio>, the soft rows and the <end_of_audio> row.
  static constexpr int64_t rows_per_block() { return kAudioSoftTokens + 2; }
  // The embedder's <end_of_audio> row (hard row 0), computed once at construction.
  std::span<const float> end_of_audio_row() const { return end_row_; }

  // Decodes (MediaError on a bad, unknown or too large file) and encodes every 30 s chunk. Results are
  // cached by the bytes' content (the last kCacheClips recordings). One encode runs at a time; callers wait
  // on a mutex. cancel: polled between conformer layers (AudioCancelled).
  std::shared_ptr<const EncodedAudio> encode(std::span<const uint8_t> bytes, const std::atomic<bool>* cancel = nullptr);
  std::shared_ptr<const EncodedAudio> encode_file(const std::string& path, const std::atomic<bool>* cancel = nullptr);
  // A decoded waveform (16 kHz mono), cached under `key` (0: not cached).
  std::shared_ptr<const EncodedAudio> encode_waveform(const Waveform& wave, uint64_t key = 0, const std::atomic<bool>* cancel = nullptr);
  // The cached encoding of these bytes (marked most recently used), or null: nothing is decoded or encoded.
  std::shared_ptr<const EncodedAudio> cached(std::span<const uint8_t> bytes);

  static constexpr size_t kCacheClips = 8;

 private:
  std::shared_ptr<EncodedAudio> encode_locked(const Waveform& wave, uint64_t key, const std::atomic<bool>* cancel);  // mu_ held

  std::string path_;
  AudioMmproj mm_;
  bool fast_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<float> end_row_;
  std::mutex mu_;  // guards the pool and the cache
  ContentCache<EncodedAudio> cache_{kCacheClips};
};

}  // namespace g3n
