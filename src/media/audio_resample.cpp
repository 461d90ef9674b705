#include "media/audio_resample.h"

#include <soxr.h>

#include <cmath>
#include <string>

#include "audio/clip.h"
#include "media/image.h"

namespace g3n {

Resampler16k::Resampler16k(double input_rate) : ratio_(kAudioSampleRate / input_rate) {
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_VHQ, 0);
  const soxr_runtime_spec_t runtime = soxr_runtime_spec(1);  // one thread: callers parallelise across files
  soxr_error_t err = nullptr;
  soxr_ = soxr_create(input_rate, kAudioSampleRate, 1, &err, &io, &quality, &runtime);
  if (!soxr_ || err) {
    if (soxr_) soxr_delete(soxr_);
    throw MediaError(std::string("audio: resampler: ") + soxr_strerror(err));
  }
}

Resampler16k::~Resampler16k() { soxr_delete(soxr_); }

void Resampler16k::drain(const float* in, size_t n, std::vector<float>& out) {
  // Room for this block's share of output plus soxr's internal delay; loop until it has taken all input
  // (or, when flushing, until it gives nothing more).
  const size_t room = static_cast<size_t>(std::ceil(n * ratio_)) + 4096;
  size_t used = 0;
  for (;;) {
    const size_t old = out.size();
    out.resize(old + room);
    size_t idone = 0, odone = 0;
    const soxr_error_t err = soxr_process(soxr_, in ? in + used : nullptr, in ? n - used : 0, &idone, out.data() + old, room, &odone);
    out.resize(old + odone);
    if (err) throw MediaError(std::string("audio: resampler: ") + soxr_strerror(err));
    used += idone;
    if (in ? used >= n && odone < room : odone == 0) return;
  }
}

void Resampler16k::push(std::span<const float> in, std::vector<float>& out) {
  if (!in.empty()) drain(in.data(), in.size(), out);
}

void Resampler16k::finish(std::vector<float>& out) { drain(nullptr, 0, out); }

}  // namespace g3n
