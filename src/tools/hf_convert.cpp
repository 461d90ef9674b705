#include "tools/hf_convert.h"

#include <sys/resource.h>

#include <chrono>
#include <functional>

#include "tools/hf_checkpoint.h"
#include "tools/hf_mmproj_gguf.h"
#include "tools/hf_tokenizer.h"

namespace g3n {
namespace fs = std::filesystem;

bool is_hf_checkpoint_dir(const fs::path& dir) { return fs::is_directory(dir) && fs::exists(dir / "config.json"); }

HfConvertReport convert_hf_checkpoint(const std::string& dir, const fs::path& staging, const HfConvertOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  const HfCheckpoint ck = HfCheckpoint::open(dir);
  // The stamp names the output after what it was made from: the checkpoint's absolute path, its files'
  // sizes and times, and the options. A kill -9 leaves at most a temporary file; a rerun with the same
  // stamp reuses a finished output.
  std::string key = fs::absolute(ck.dir()).string() + "|" + std::string(quant_target_name(opt.target)) + "|" +
                    (opt.layout == GgufLayout::Ollama ? "ollama" : "llamacpp") + "|" + opt.name + "|" +
                    std::to_string(opt.vision) + std::to_string(opt.audio) + std::to_string(opt.towers_f32);
  for (const auto& e : fs::directory_iterator(ck.dir())) {
    if (!e.is_regular_file()) continue;
    key += "|" + e.path().filename().string() + ":" + std::to_string(e.file_size()) + ":" +
           std::to_string(e.last_write_time().time_since_epoch().count());
  }
  char stamp[17];
  std::snprintf(stamp, sizeof stamp, "%016zx", std::hash<std::string>{}(key));
  fs::create_directories(staging);
  HfConvertReport r;
  r.text_gguf = staging / (std::string(stamp) + "-text.gguf");
  HfMmprojOptions mo;
  mo.vision = opt.vision && ck.has_vision_config();
  mo.audio = opt.audio && ck.has_audio_config();
  mo.f32 = opt.towers_f32;
  mo.n_threads = opt.n_threads;
  if (mo.vision || mo.audio) r.mmproj_gguf = staging / (std::string(stamp) + "-mmproj.gguf");
  if (!r.mmproj_gguf.empty() && !fs::exists(r.mmproj_gguf)) write_hf_mmproj_gguf(ck, r.mmproj_gguf.string(), mo);
  if (fs::exists(r.text_gguf)) {
    r.reused = true;
  } else {
    const HfVocab vocab = read_hf_vocab(ck.dir(), ck.text(), opt.layout, ck.generation_eos());
    HfConvertOptions o = opt;
    o.progress = [&](uint64_t done, uint64_t total) {
      r.bytes_read = done;
      if (opt.progress) opt.progress(done, total);
    };
    write_hf_text_gguf(ck, r.text_gguf.string(), o, hf_vocab_kvs(vocab, opt.layout));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  r.peak_rss_bytes = static_cast<int64_t>(ru.ru_maxrss) * 1024;
  return r;
}

}  // namespace g3n
