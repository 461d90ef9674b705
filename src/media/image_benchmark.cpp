#include "media/image_benchmark.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "base/thread_pool.h"
#include "gguf/gguf.h"
#include "media/image.h"
#include "media/preprocess.h"
#include "media/stage_times.h"
#include "runtime/benchmark.h"
#include "vision/encode.h"
#include "vision/mmproj.h"

namespace g3n {
namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// The part of the encode a tap closes: "stem", "blk.S.B" -> "stageS", "msfa.*" -> "msfa".
std::string part_of(const std::string& tap) {
  if (tap == "stem") return "stem";
  if (tap.rfind("msfa", 0) == 0) return "msfa";
  if (tap.rfind("blk.", 0) == 0) {
    const size_t dot = tap.find('.', 4);
    return "stage" + tap.substr(4, dot == std::string::npos ? std::string::npos : dot - 4);
  }
  return "other";
}

ImageStageTimes empty_stages(size_t n_stages) {
  ImageStageTimes t{{"stem", 0.0}};
  for (size_t s = 0; s < n_stages; ++s) t.emplace_back("stage" + std::to_string(s), 0.0);
  t.emplace_back("msfa", 0.0);
  t.emplace_back("embedder", 0.0);
  return t;
}

}  // namespace

ImageBenchResult run_image_benchmark(const ImageBenchParams& p) {
  if (p.repeats < 1) throw std::invalid_argument("image bench: need repeats >= 1");
  ImageBenchResult r;
  auto t0 = Clock::now();
  const Mmproj mm = load_mmproj(p.mmproj);
  r.load_s = seconds(t0, Clock::now());
  if (p.n_embd > 0) check_projector_width(mm, p.n_embd);
  r.image_size = mm.config.image_size;
  const std::vector<uint8_t> bytes = read_image_file(p.image);
  ThreadPool pool(std::max(1, p.n_threads));
  VisionOptions opts;
  opts.fast = p.fast;
  const size_t n_stages = mm.tower.stage_last.size();
  for (int rep = 0; rep < p.repeats; ++rep) {
    ImageBenchRun run;
    t0 = Clock::now();
    std::vector<float> px;
    {  // as ImageEncoder: the decoded image is freed before the encode
      RgbImage img;
      try {
        img = decode_image(bytes);
      } catch (const MediaError& e) {
        throw MediaError(p.image + ": " + e.what());
      }
      px = preprocess_image(img, static_cast<int>(mm.config.image_size));
      r.source_width = img.width;
      r.source_height = img.height;
    }
    run.preprocess_s = seconds(t0, Clock::now());
    run.stages = empty_stages(n_stages);
    Clock::time_point last = Clock::now();
    const Clock::time_point start = last;
    // The fast path reports its parts itself: a tap would make it keep whole maps it otherwise streams
    // (the stem, the fusion adapter's full-resolution map), changing the time and memory measured.
    std::vector<VisionStageTime> times;
    VisionTap tap;
    if (p.fast) {
      opts.times = &times;
    } else {
      tap = [&](const std::string& name, const VisionMap&) {
        const Clock::time_point now = Clock::now();
        add_stage_time(run.stages, part_of(name), seconds(last, now));
        last = now;
      };
    }
    const ImageEmbedding e = encode_image(mm, px, mm.config.image_size, pool, opts, tap);
    const Clock::time_point end = Clock::now();
    double tower_s = 0;
    for (const VisionStageTime& t : times) {
      add_stage_time(run.stages, t.name, t.seconds);
      tower_s += t.seconds;
    }
    add_stage_time(run.stages, "embedder", p.fast ? seconds(start, end) - tower_s : seconds(last, end));
    run.encode_s = seconds(start, end);
    r.tokens = mm.config.text_width > 0 ? static_cast<int64_t>(e.soft.size()) / mm.config.text_width : 0;
    r.runs.push_back(std::move(run));
  }
  std::vector<double> pre, enc;
  for (const auto& run : r.runs) {
    pre.push_back(run.preprocess_s);
    enc.push_back(run.encode_s);
  }
  r.preprocess_s = median(pre);
  r.encode_s = median(enc);
  r.stages = median_stage_times(r.runs);
  return r;
}

}  // namespace g3n
