// The image half of `g3n bench`: one image file through decode + resize, the vision tower and the
// embedder, timed per stage (runtime/benchmark.h is the text half; it stays free of media).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "media/stage_times.h"

namespace g3n {

struct ImageBenchParams {
  std::string mmproj;   // projector GGUF
  std::string image;    // image file (any format media/image.h decodes)
  int n_threads = 1;
  bool fast = true;     // VisionOptions::fast
  int repeats = 3;
  int64_t n_embd = 0;   // the text model's width, checked against the projector's (0: not checked)
};

// Seconds per part of the encode, in order: "stem", "stage0" .. "stageN-1", "msfa", "embedder". The fast
// path times its parts itself (VisionOptions::times; the stem, streamed into stage 0's first block, is
// its stem bands' time); the exact path's come from the tower's tap: the time up to a tap named "stem",
// "blk.S.B" or "msfa.*" goes to that part. The rest (the embedder) goes to "embedder", so they sum to
// encode_s.
using ImageStageTimes = StageTimes;

struct ImageBenchRun {
  double preprocess_s = 0;  // decode + resize + rescale (the file's bytes already in memory)
  double encode_s = 0;      // tower + embedder
  ImageStageTimes stages;
};

struct ImageBenchResult {
  double load_s = 0;        // opening and binding the projector (once)
  int64_t image_size = 0;   // the square side the image is resized to
  int64_t tokens = 0;       // soft-token rows the encode produced
  int64_t source_width = 0, source_height = 0;
  std::vector<ImageBenchRun> runs;
  // Medians over the runs.
  double preprocess_s = 0, encode_s = 0;
  ImageStageTimes stages;
};

// Loads the projector and runs params.repeats decode + encode passes of the image. Throws
// std::runtime_error (MediaError for the image) on a bad file or a width mismatch.
ImageBenchResult run_image_benchmark(const ImageBenchParams& params);

}  // namespace g3n
