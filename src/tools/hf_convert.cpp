#include "tools/hf_convert.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

#include "tools/hf_checkpoint.h"
#include "tools/hf_mmproj_gguf.h"
#include "tools/hf_tokenizer.h"

namespace g3n {
namespace fs = std::filesystem;

namespace {

// The test hook of the kill -9 test (tests/cli_create_hf_test.cpp): with G3N_TEST_STALL_CONVERSION=S set,
// the text conversion stops for S seconds after its first run of rows, its temporary file half written,
// and says so on stderr, so the test can kill it there.
void maybe_stall() {
  static bool stalled = false;
  const char* s = std::getenv("G3N_TEST_STALL_CONVERSION");
  if (!s || stalled) return;
  stalled = true;
  std::fprintf(stderr, "\nG3N_TEST_STALL_CONVERSION: stalling for %s s\n", s);
  std::fflush(stderr);
  std::this_thread::sleep_for(std::chrono::seconds(std::atoi(s)));
}

// Removes every entry of the staging directory but `keep`: temporary files and finished outputs of
// runs that were killed (the caller holds the lock, so no live conversion owns them).
int remove_stale(const fs::path& staging, const std::vector<fs::path>& keep) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(staging)) {
    bool kept = false;
    for (const auto& k : keep) kept = kept || e.path().filename() == k.filename();
    if (kept) continue;
    std::error_code ec;
    fs::remove_all(e.path(), ec);
    n += !ec;
  }
  return n;
}

}  // namespace

bool is_hf_checkpoint_dir(const fs::path& dir) { return fs::is_directory(dir) && fs::exists(dir / "config.json"); }

HfStaging::HfStaging(fs::path dir, const std::function<void()>& on_wait)
    : dir_(std::move(dir)), lock_([&] {
        fs::create_directories(dir_.parent_path().empty() ? fs::path(".") : dir_.parent_path());
        return FileLock(fs::path(dir_.string() + ".lock"), on_wait);
      }()) {
  fs::create_directories(dir_);
}

HfConvertReport convert_hf_checkpoint(const std::string& dir, const fs::path& staging, const HfConvertOptions& opt) {
  const HfStaging s(staging);
  return convert_hf_checkpoint(dir, s, opt);
}

HfConvertReport convert_hf_checkpoint(const std::string& dir, const HfStaging& staging, const HfConvertOptions& opt) {
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
  HfConvertReport r;
  r.text_gguf = staging.dir() / (std::string(stamp) + "-text.gguf");
  HfMmprojOptions mo;
  mo.vision = opt.vision && ck.has_vision_config();
  mo.audio = opt.audio && ck.has_audio_config();
  mo.f32 = opt.towers_f32;
  mo.n_threads = opt.n_threads;
  if (mo.vision || mo.audio) r.mmproj_gguf = staging.dir() / (std::string(stamp) + "-mmproj.gguf");
  r.stale_removed = remove_stale(staging.dir(), {r.text_gguf, r.mmproj_gguf});

  // Progress over text and towers together: the towers' total is known from the index up front, the
  // text's from its first report.
  const bool text_done = fs::exists(r.text_gguf), towers_done = r.mmproj_gguf.empty() || fs::exists(r.mmproj_gguf);
  const uint64_t tower_total = towers_done ? 0 : hf_mmproj_bytes(ck, mo);
  uint64_t text_total = 0;
  if (text_done) {
    r.reused = true;
  } else {
    const HfVocab vocab = read_hf_vocab(ck.dir(), ck.text(), opt.layout, ck.generation_eos());
    HfConvertOptions o = opt;
    o.progress = [&](uint64_t done, uint64_t total) {
      text_total = total;
      r.bytes_read = done;
      if (opt.progress) opt.progress(done, total + tower_total);
      maybe_stall();
    };
    write_hf_text_gguf(ck, r.text_gguf.string(), o, hf_vocab_kvs(vocab, opt.layout));
  }
  if (!towers_done) {
    const uint64_t base = r.bytes_read;
    mo.progress = [&](uint64_t done) {
      r.bytes_read = base + done;
      if (opt.progress) opt.progress(text_total + done, text_total + tower_total);
    };
    write_hf_mmproj_gguf(ck, r.mmproj_gguf.string(), mo);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  r.peak_rss_bytes = static_cast<int64_t>(ru.ru_maxrss) * 1024;
  return r;
}

}  // namespace g3n
