// `g3n debug ...`: stable interfaces for checking the engine against reference engines.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "audio/audio_encode.h"
#include "audio/audio_mmproj.h"
#include "audio/clip.h"
#include "audio/features.h"
#include "base/file.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "media/audio.h"
#include "media/image.h"
#include "media/preprocess.h"
#include "model/model.h"
#include "runtime/context.h"
#include "runtime/input_rows.h"
#include "vision/embedder.h"
#include "vision/encode.h"
#include "vision/mmproj.h"

namespace g3n::cli {
namespace {

std::vector<int32_t> parse_token_list(const std::string& s, const char* flag = "--tokens") {
  std::vector<int32_t> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    size_t used = 0;
    long v = 0;
    try {
      v = std::stol(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(std::string(flag) + ": '" + item + "' is not a token id");
    out.push_back(static_cast<int32_t>(v));
  }
  if (out.empty()) throw std::invalid_argument(std::string(flag) + ": no token ids given");
  return out;
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  f.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(f.tellg());
  if (size % sizeof(float) != 0) throw std::runtime_error(path + ": " + std::to_string(size) + " bytes is not a whole number of float32 values");
  f.seekg(0);
  std::vector<float> v(size / sizeof(float));
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(size));
  if (!f) throw std::runtime_error("cannot read " + path);
  return v;
}

// A rows case (golden/multimodal format): {"rows": [{"token": id} | {"embedding": k}, ...],
// "embeddings_file": "..."}; vector k is row k of the embeddings file, n_embd floats each.
InputRows read_rows_case(const std::string& case_path, std::string embeddings_path, int64_t n_embd) {
  std::ifstream f(case_path);
  if (!f) throw std::runtime_error("cannot open " + case_path);
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw std::runtime_error(case_path + ": " + e.what());
  }
  if (!doc.is_object() || !doc.contains("rows") || !doc["rows"].is_array() || doc["rows"].empty())
    throw std::runtime_error(case_path + ": expected an object with a non-empty \"rows\" array");
  if (embeddings_path.empty() && doc.contains("embeddings_file") && doc["embeddings_file"].is_string())
    embeddings_path = (std::filesystem::path(case_path).parent_path() / doc["embeddings_file"].get<std::string>()).string();
  std::vector<float> emb;
  InputRows rows;
  for (const auto& r : doc["rows"]) {
    if (r.is_object() && r.size() == 1 && r.contains("token") && r["token"].is_number_integer()) {
      const int64_t id = r["token"].get<int64_t>();
      if (id < 0 || id > INT32_MAX) throw std::runtime_error(case_path + ": token id " + std::to_string(id) + " out of range");
      rows.push_token(static_cast<int32_t>(id));
    } else if (r.is_object() && r.size() == 1 && r.contains("embedding") && r["embedding"].is_number_integer()) {
      if (embeddings_path.empty()) throw std::runtime_error(case_path + ": embedding rows but no --embeddings file");
      if (emb.empty()) {
        emb = read_floats(embeddings_path);
        if (emb.empty() || emb.size() % static_cast<uint64_t>(n_embd) != 0)
          throw std::runtime_error(embeddings_path + ": " + std::to_string(emb.size()) + " floats are not whole vectors of n_embd = " +
                                   std::to_string(n_embd) + " floats");
      }
      const int64_t k = r["embedding"].get<int64_t>();
      const int64_t count = static_cast<int64_t>(emb.size()) / n_embd;
      if (k < 0 || k >= count)
        throw std::runtime_error(case_path + ": embedding " + std::to_string(k) + " outside " + embeddings_path + " (" + std::to_string(count) + " vectors)");
      rows.push_vectors(std::span<const float>(emb).subspan(static_cast<size_t>(k * n_embd), static_cast<size_t>(n_embd)), n_embd);
    } else {
      throw std::runtime_error(case_path + ": each row must be {\"token\": id} or {\"embedding\": k}, got " + r.dump());
    }
  }
  return rows;
}

struct LogitsOptions {
  std::string model, tokens, rows, embeddings, append_tokens, out, kv = "f32", matformer;
  int ctx = 0, threads = 0;
  bool incremental = false;
  bool fast = false;
};

void run_debug_logits(const LogitsOptions& o) {
  if (o.tokens.empty() == o.rows.empty()) throw std::invalid_argument("give exactly one of --tokens and --rows");
  if (o.rows.empty() && (!o.embeddings.empty() || !o.append_tokens.empty()))
    throw std::invalid_argument("--embeddings and --append-tokens go with --rows");
  auto model = Model::load(o.model, o.matformer);
  InputRows rows;
  if (!o.tokens.empty()) {
    rows.push_tokens(parse_token_list(o.tokens));
  } else {
    rows = read_rows_case(o.rows, o.embeddings, model->config().n_embd);
    if (!o.append_tokens.empty()) rows.push_tokens(parse_token_list(o.append_tokens, "--append-tokens"));
  }
  ContextParams p;
  p.n_ctx = o.ctx > 0 ? o.ctx : std::max<int>(256, static_cast<int>(rows.size()));
  p.n_threads = o.threads;
  p.exact = !o.fast;
  if (o.kv == "f32") p.kv_type = KvType::F32;
  else if (o.kv == "f16") p.kv_type = KvType::F16;
  else throw std::invalid_argument("--kv must be f32 or f16");
  Context ctx(*model, p);
  const int V = ctx.n_vocab();
  const size_t n = rows.size();
  std::vector<float> all(n * static_cast<size_t>(V));
  if (o.incremental) {
    for (size_t i = 0; i < n; ++i) {
      ctx.eval(rows.view().subspan(i, 1), LogitsFor::Last);
      std::copy(ctx.last_logits().begin(), ctx.last_logits().end(), all.begin() + i * V);
    }
  } else {
    ctx.eval(rows.view(), LogitsFor::All);
    for (size_t i = 0; i < n; ++i)
      std::copy(ctx.logits(static_cast<int>(i)).begin(), ctx.logits(static_cast<int>(i)).end(), all.begin() + i * V);
  }
  // A failed run never leaves a truncated file under the requested name.
  write_file_atomic(o.out, std::string_view(reinterpret_cast<const char*>(all.data()), all.size() * sizeof(float)));
  std::fprintf(stderr, "wrote %zu x %d logits to %s\n", n, V, o.out.c_str());
}

struct HiddenOptions {
  std::string model, tokens, out;
  int ctx = 0, threads = 0;
  bool fast = false;
};

// The LM head's input rows: f32 [n_tokens, n_embd] after the AltUp un-embedding and the final RMSNorm
// (docs/model.md §4.5); logits = softcap(h · token_embdᵀ). Exact arithmetic unless --fast, as `debug logits`.
void run_debug_hidden(const HiddenOptions& o) {
  auto model = Model::load(o.model);
  const std::vector<int32_t> tokens = parse_token_list(o.tokens);
  ContextParams p;
  p.n_ctx = o.ctx > 0 ? o.ctx : std::max<int>(256, static_cast<int>(tokens.size()));
  p.n_threads = o.threads;
  p.exact = !o.fast;
  Context ctx(*model, p);
  ctx.eval(tokens, LogitsFor::None, LogitsFor::All);
  const size_t n = tokens.size(), D = static_cast<size_t>(model->config().n_embd);
  std::vector<float> all(n * D);
  for (size_t i = 0; i < n; ++i) {
    const auto h = ctx.hidden(static_cast<int>(i));
    std::copy(h.begin(), h.end(), all.begin() + i * D);
  }
  write_file_atomic(o.out, std::string_view(reinterpret_cast<const char*>(all.data()), all.size() * sizeof(float)));
  std::fprintf(stderr, "wrote %zu x %zu hidden rows to %s\n", n, D, o.out.c_str());
}

struct EmbedImageOptions {
  std::string mmproj, image, pixels_in, u8_in, out, tower_out, pixels_out, hard_out, intermediates_dir;
  int size = 0, threads = 0;
  bool fast = false, timings = false;
};

std::string_view as_bytes(const std::vector<float>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)};
}

// The side of a square [3, n, n] input of `count` values; --size must agree where given.
int64_t square_side(uint64_t count, int size, const std::string& path) {
  int64_t n = 0;
  while (static_cast<uint64_t>(3 * (n + 1) * (n + 1)) <= count) ++n;
  if (n == 0 || static_cast<uint64_t>(3 * n * n) != count)
    throw std::runtime_error(path + ": " + std::to_string(count) + " values are not a [3, N, N] image");
  if (size > 0 && size != n) throw std::runtime_error(path + ": holds a " + std::to_string(n) + "x" + std::to_string(n) + " image, --size says " + std::to_string(size));
  return n;
}

void run_debug_embed_image(const EmbedImageOptions& o) {
  if (o.timings && !o.fast) throw std::invalid_argument("--timings needs --fast");
  if ((!o.image.empty()) + (!o.pixels_in.empty()) + (!o.u8_in.empty()) != 1)
    throw std::invalid_argument("give exactly one of IMAGE, --pixels-in and --u8-chw-in");
  const Mmproj mm = load_mmproj(o.mmproj);
  std::vector<float> pixels;
  int64_t n = 0;
  if (!o.image.empty()) {
    n = o.size > 0 ? o.size : mm.config.image_size;
    pixels = preprocess_image(decode_image_file(o.image), static_cast<int>(n));
  } else if (!o.pixels_in.empty()) {
    pixels = read_floats(o.pixels_in);
    n = square_side(pixels.size(), o.size, o.pixels_in);
  } else {
    std::ifstream f(o.u8_in, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + o.u8_in);
    const std::vector<uint8_t> u8((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (o.size <= 0) throw std::invalid_argument("--u8-chw-in needs --size N");
    n = square_side(u8.size(), o.size, o.u8_in);
    pixels = rescale_u8_chw(u8);
  }
  ThreadPool pool(o.threads > 0 ? o.threads : default_thread_count());
  // Intermediates are kept until the whole run succeeded: no partial output on error.
  std::vector<std::pair<std::string, std::vector<float>>> taps;
  VisionTap tap;
  if (!o.intermediates_dir.empty())
    tap = [&](const std::string& name, const VisionMap& x) { taps.emplace_back(name, vision_map_to_chw(x)); };
  VisionOptions vo;
  vo.fast = o.fast;
  std::vector<VisionStageTime> times;
  if (o.timings) vo.times = &times;
  const auto start = std::chrono::steady_clock::now();
  const ImageEmbedding e = encode_image(mm, pixels, n, pool, vo, tap);
  if (o.timings) {
    for (const auto& t : times) std::fprintf(stderr, "%-8s %8.3f s\n", t.name.c_str(), t.seconds);
    std::fprintf(stderr, "encode   %8.3f s (tower and embedder, %d threads)\n",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), pool.size());
  }
  std::vector<float> hard;
  if (!o.hard_out.empty()) {
    std::vector<int32_t> ids(static_cast<size_t>(mm.config.n_hard));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = kVisionHardTokenBase + static_cast<int32_t>(i);
    hard = embed_hard_tokens(mm, ids, pool);
  }
  if (!o.intermediates_dir.empty()) {
    std::filesystem::create_directories(o.intermediates_dir);
    for (const auto& [name, v] : taps) write_file_atomic(std::filesystem::path(o.intermediates_dir) / (name + ".f32.bin"), as_bytes(v));
  }
  if (!o.pixels_out.empty()) write_file_atomic(o.pixels_out, as_bytes(pixels));
  if (!o.tower_out.empty()) write_file_atomic(o.tower_out, as_bytes(vision_map_to_chw(e.tower)));
  if (!o.hard_out.empty()) write_file_atomic(o.hard_out, as_bytes(hard));
  write_file_atomic(o.out, as_bytes(e.soft));
  std::fprintf(stderr, "wrote %lld x %lld soft tokens to %s\n", static_cast<long long>(e.soft.size() / mm.config.text_width),
               static_cast<long long>(mm.config.text_width), o.out.c_str());
}

struct EmbedAudioOptions {
  std::string mmproj, audio, waveform_in, waveform_out, features_in, out, features_out, features_valid_out, encoder_out, encoder_valid_out, hard_out, intermediates_dir;
  int threads = 0;
  int64_t chunk = 0;
  bool fast = false, timings = false;
};

std::string_view as_bytes(const std::vector<uint8_t>& v) { return {reinterpret_cast<const char*>(v.data()), v.size()}; }

// --features-in: [T, 128] float32, T from the file size, every frame valid (a single clip: README §3).
LogMelFeatures read_features(const std::string& path) {
  LogMelFeatures f;
  f.data = read_floats(path);
  if (f.data.empty() || f.data.size() % kAudioMelBins != 0)
    throw std::runtime_error(path + ": " + std::to_string(f.data.size()) + " floats are not [T, " + std::to_string(kAudioMelBins) + "] log-mel frames");
  f.frames = static_cast<int64_t>(f.data.size()) / kAudioMelBins;
  f.valid.assign(static_cast<size_t>(f.frames), 1);
  return f;
}

void run_debug_embed_audio(const EmbedAudioOptions& o) {
  if ((!o.audio.empty()) + (!o.waveform_in.empty()) + (!o.features_in.empty()) != 1)
    throw std::invalid_argument("give exactly one of AUDIO, --waveform-in and --features-in");
  if (!o.features_in.empty() && (!o.waveform_out.empty() || o.chunk != 0))
    throw std::invalid_argument("--waveform-out and --chunk need AUDIO or --waveform-in");
  const AudioMmproj mm = load_audio_mmproj(o.mmproj);
  // The whole recording at 16 kHz (AUDIO: decoded, down-mixed, resampled), then 30 s chunk --chunk of it.
  std::vector<float> waveform;
  if (!o.audio.empty()) waveform = decode_audio(read_audio_file(o.audio)).samples;
  else if (!o.waveform_in.empty()) waveform = read_floats(o.waveform_in);
  LogMelFeatures features;
  if (!o.features_in.empty()) {
    features = read_features(o.features_in);
  } else {
    const int64_t chunks = audio_chunk_count(static_cast<int64_t>(waveform.size()));
    if (o.chunk < 0 || o.chunk >= chunks)
      throw std::invalid_argument("--chunk " + std::to_string(o.chunk) + ": the recording has " + std::to_string(chunks) + " chunk(s) of 30 s");
    features = log_mel_features(audio_chunk(waveform, o.chunk));
  }
  ThreadPool pool(o.threads > 0 ? o.threads : default_thread_count());
  // Intermediates are kept until the whole run succeeded: no partial output on error.
  std::vector<std::pair<std::string, std::vector<float>>> taps;
  AudioTap tap;
  if (!o.intermediates_dir.empty())
    tap = [&](const std::string& name, std::span<const float> v) { taps.emplace_back(name, std::vector<float>(v.begin(), v.end())); };
  AudioOptions ao;
  ao.fast = o.fast;
  std::vector<AudioStageTime> times;
  if (o.timings) ao.times = &times;
  const auto start = std::chrono::steady_clock::now();
  const AudioEncoding e = encode_audio(mm, features, pool, ao, tap);
  if (o.timings) {
    for (const auto& t : times) std::fprintf(stderr, "%-10s %8.3f s\n", t.name, t.seconds);
    std::fprintf(stderr, "encode     %8.3f s (tower and embedder, %d threads)\n",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), pool.size());
  }
  std::vector<float> hard;
  if (!o.hard_out.empty()) hard = audio_hard_rows(mm, pool);
  if (!o.intermediates_dir.empty()) {
    const std::filesystem::path dir(o.intermediates_dir);
    std::filesystem::create_directories(dir);
    for (const auto& [name, v] : taps) {
      if (name == "sscp_valid") {  // a mask: u8 like the fixture's sscp_valid.u8.bin
        const std::vector<uint8_t> m(v.begin(), v.end());
        write_file_atomic(dir / (name + ".u8.bin"), as_bytes(m));
      } else {
        write_file_atomic(dir / (name + ".f32.bin"), as_bytes(v));
      }
    }
  }
  if (!o.waveform_out.empty()) write_file_atomic(o.waveform_out, as_bytes(waveform));
  if (!o.features_out.empty()) write_file_atomic(o.features_out, as_bytes(features.data));
  if (!o.features_valid_out.empty()) write_file_atomic(o.features_valid_out, as_bytes(features.valid));
  if (!o.encoder_out.empty()) write_file_atomic(o.encoder_out, as_bytes(e.encoder_out));
  if (!o.encoder_valid_out.empty()) write_file_atomic(o.encoder_valid_out, as_bytes(e.valid));
  if (!o.hard_out.empty()) write_file_atomic(o.hard_out, as_bytes(hard));
  write_file_atomic(o.out, as_bytes(e.rows));
  std::fprintf(stderr, "wrote 188 x %lld audio rows (%lld encoder tokens) to %s\n", static_cast<long long>(e.width),
               static_cast<long long>(e.n_tokens), o.out.c_str());
}

}  // namespace

void add_debug_commands(CLI::App& app) {
  auto* debug = app.add_subcommand("debug", "Debugging interfaces (stable; see README)");
  debug->require_subcommand(1);
  auto opts = std::make_shared<LogitsOptions>();
  auto* logits = debug->add_subcommand("logits", "Write float32 logits [n_rows, n_vocab] for every position");
  logits->add_option("model", opts->model, "GGUF model file")->required();
  logits->add_option("--tokens", opts->tokens, "comma-separated token ids");
  logits->add_option("--rows", opts->rows, "JSON case whose rows are {\"token\": id} or {\"embedding\": k} (golden/multimodal format)");
  logits->add_option("--embeddings", opts->embeddings, "float32 vectors [k, n_embd] for --rows (default: the case's embeddings_file, relative to it)");
  logits->add_option("--append-tokens", opts->append_tokens, "comma-separated token ids added after the --rows case");
  logits->add_option("--out", opts->out, "output file (float32 little-endian)")->required();
  logits->add_option("--ctx", opts->ctx, "context length (default max(256, n_tokens))");
  logits->add_option("--kv", opts->kv, "KV cache type: f32 (default) or f16");
  logits->add_flag("--incremental", opts->incremental, "evaluate one token at a time");
  logits->add_option("--threads", opts->threads, "threads (default: physical cores)");
  logits->add_flag("--fast", opts->fast, "use the fast path (int8 activations) instead of the exact one");
  logits->add_option("--matformer", opts->matformer, "run a MatFormer slice: a preset (e2b, e2.54b, ...), FILE.json "
                     "{\"kept_layers\": [...], \"ffn_width\": [...]} or FILE.csv:ROW NAME (docs/matformer.md)");
  logits->callback([opts] { run_debug_logits(*opts); });
  auto ho = std::make_shared<HiddenOptions>();
  auto* hidden = debug->add_subcommand("hidden", "Write float32 final hidden rows [n_tokens, n_embd] (the LM head's input) for every position");
  hidden->add_option("model", ho->model, "GGUF model file")->required();
  hidden->add_option("--tokens", ho->tokens, "comma-separated token ids")->required();
  hidden->add_option("--out", ho->out, "output file (float32 little-endian)")->required();
  hidden->add_option("--ctx", ho->ctx, "context length (default max(256, n_tokens))");
  hidden->add_option("--threads", ho->threads, "threads (default: physical cores)");
  hidden->add_flag("--fast", ho->fast, "use the fast path (int8 activations) instead of the exact one");
  hidden->callback([ho] { run_debug_hidden(*ho); });
  auto eo = std::make_shared<EmbedImageOptions>();
  auto* ei = debug->add_subcommand("embed-image", "Write an image's soft tokens [256, text width] (float32), and optionally the tower, pixels, hard tokens, per-block maps");
  ei->add_option("mmproj", eo->mmproj, "vision projector GGUF")->required();
  ei->add_option("image", eo->image, "image file (JPEG, PNG, GIF, BMP, WebP)");
  ei->add_option("--pixels-in", eo->pixels_in, "preprocessed pixels, float32 [3, N, N] (instead of IMAGE)");
  ei->add_option("--u8-chw-in", eo->u8_in, "resized pixels, uint8 [3, N, N] (instead of IMAGE; needs --size)");
  ei->add_option("--size", eo->size, "N: the square input side (default: the projector's image_size)");
  ei->add_option("--out", eo->out, "soft tokens, float32 [256, text width]")->required();
  ei->add_option("--tower-out", eo->tower_out, "tower output, float32 [C, 16, 16]");
  ei->add_option("--pixels-out", eo->pixels_out, "the preprocessed pixels, float32 [3, N, N]");
  ei->add_option("--hard-out", eo->hard_out, "every hard token's row, float32 [n_hard, text width] (row 0 = <end_of_image>)");
  ei->add_option("--intermediates-dir", eo->intermediates_dir, "per-block maps, float32 [C, H, W], named as the fixture's (stem, blk.S.B, msfa.ffn, msfa.pooled)");
  ei->add_option("--threads", eo->threads, "threads (default: physical cores)");
  ei->add_flag("--fast", eo->fast, "the fast path (SIMD, tiled; the fixture's F16 tier) instead of the exact one");
  ei->add_flag("--timings", eo->timings, "with --fast: print the tower's per-stage wall times to stderr");
  ei->callback([eo] { run_debug_embed_image(*eo); });
  auto ao = std::make_shared<EmbedAudioOptions>();
  auto* ea = debug->add_subcommand("embed-audio", "Write an audio clip's 188 decoder rows [188, text width] (float32), and optionally the encoder output, hard rows, per-stage activations");
  ea->add_option("mmproj", ao->mmproj, "audio projector GGUF (gemma3na)")->required();
  ea->add_option("audio", ao->audio, "audio file (WAV, FLAC, Ogg Vorbis/Opus, MP3): decoded, down-mixed, resampled to 16 kHz");
  ea->add_option("--waveform-in", ao->waveform_in, "16 kHz mono waveform, float32 [n] (instead of AUDIO)");
  ea->add_option("--features-in", ao->features_in, "log-mel features, float32 [T, 128] (instead of AUDIO; T from the file size; every frame valid)");
  ea->add_option("--chunk", ao->chunk, "K: encode the K-th 30 s chunk of the recording (default 0)");
  ea->add_option("--waveform-out", ao->waveform_out, "the whole 16 kHz mono waveform, float32 [n]");
  ea->add_option("--out", ao->out, "the 188 rows, float32 [188, text width]")->required();
  ea->add_option("--features-out", ao->features_out, "the log-mel features, float32 [T, 128]");
  ea->add_option("--features-valid-out", ao->features_valid_out, "the feature mask, uint8 [T]");
  ea->add_option("--encoder-out", ao->encoder_out, "encoder output after the reduction, float32 [n, width]");
  ea->add_option("--encoder-valid-out", ao->encoder_valid_out, "encoder token mask, uint8 [n]");
  ea->add_option("--hard-out", ao->hard_out, "every hard row, float32 [n_hard, text width] (row 0 = <end_of_audio>, last = padding)");
  ea->add_option("--intermediates-dir", ao->intermediates_dir, "per-stage activations named as the fixture's (sscp_conv0.f32.bin, ..., sscp_valid.u8.bin, conformer_<i>_*.f32.bin)");
  ea->add_option("--threads", ao->threads, "threads (default: physical cores)");
  ea->add_flag("--fast", ao->fast, "the fast path (SIMD GEMMs, threaded) instead of the exact one");
  ea->add_flag("--timings", ao->timings, "print the per-stage wall times to stderr");
  ea->callback([ao] { run_debug_embed_audio(*ao); });
  add_tokenize_command(*debug);
}

}  // namespace g3n::cli
