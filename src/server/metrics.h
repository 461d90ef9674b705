// The server's counters, rendered for GET /metrics (Prometheus text format).
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "runtime/session.h"

namespace g3n::server {

class Metrics {
 public:
  // One answered request; `label` is its route's pattern ("other" when no route matched).
  void record_request(const std::string& label, int status, double seconds);
  // One finished (or cancelled) generation.
  void record_generation(const GenerateStats& st);
  // A request that decoded speculatively (docs/speculative.md): its drafts, acceptance and forward rounds.
  void record_speculation(const SpecStats& spec, const GenerateStats& st);
  // One image of a request: encoded (seconds: decode, preprocess and tower), taken from the encoder's
  // cache, or cancelled while it encoded (the client went away).
  void record_image_encoded(double seconds);
  void record_image_cached();
  void record_image_cancelled();
  // One recording of a request, the same way (seconds: the tower's time; audio_seconds: its length).
  void record_audio_encoded(double seconds, double audio_seconds);
  void record_audio_cached();
  void record_audio_cancelled();
  // One input of an embedding request embedded; one embedding request stopped because its client went away.
  void record_embed_input();
  void record_embed_cancelled();
  // The whole exposition; the gauges come from the caller.
  std::string text(int queued, int active, size_t loaded_models) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, double> seconds_;
  uint64_t tokens_generated_ = 0, prompt_tokens_ = 0, prompt_cached_ = 0;
  uint64_t images_encoded_ = 0, images_cached_ = 0, images_cancelled_ = 0;
  double image_seconds_ = 0;
  uint64_t audio_encoded_ = 0, audio_cached_ = 0, audio_cancelled_ = 0;
  double audio_encode_seconds_ = 0, audio_input_seconds_ = 0;
  uint64_t embed_inputs_ = 0, embed_cancelled_ = 0;
  double eval_seconds_ = 0;
  double last_tokens_per_second_ = 0;
  uint64_t spec_requests_ = 0, spec_drafted_ = 0, spec_accepted_ = 0, spec_rounds_ = 0, spec_tokens_ = 0;
};

}  // namespace g3n::server
