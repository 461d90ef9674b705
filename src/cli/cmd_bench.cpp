// `g3n bench MODEL`: load time, time to first token, prompt and generation speed, peak RSS; with
// --mmproj and --image also the image's preprocessing and encode time, per stage, and the memory the
// image adds (the peak of this command minus the peak of the same command without the image, which the
// bench runs as a child process).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/thread_pool.h"
#include "cli/commands.h"
#include "kernels/conv.h"
#include "kernels/cpu_features.h"
#include "kernels/vec_dot.h"
#include "media/audio_benchmark.h"
#include "media/image_benchmark.h"
#include "model/model.h"
#include "model/matformer.h"
#include "runtime/benchmark.h"
#include "runtime/drafter_model.h"
#include "runtime/spec_benchmark.h"

namespace g3n::cli {
namespace {
struct Options {
  std::string model, kv = "f16", matformer;
  int prompt = 512, gen = 64, threads = 0, repeats = 3, parallel = 1, ctx = 0;
  bool json = false, exact = false, no_shortcut = false;
  // Image figures.
  std::string mmproj, image, vision, audio;
  int image_repeats = 0;
  bool no_rss_baseline = false;
  // Speculative decoding (docs/speculative.md).
  std::string spec = "none", draft, draft_matformer = "e2b";
  int draft_max = 4;
  double synthetic = -1;
  std::string kernels;  // --kernels NAME: a vec_dot kernel set (default: the best this CPU runs)
};

// --kernels NAME: switches vec_dot (and with it tiles, sparse columns, attention) to a named set, and
// sets G3N_VEC_DOT so the conv kernels and the baseline child process follow it.
void choose_kernels(const std::string& name) {
  if (!vec_dot_use_set(name)) {
    std::string sets;
    for (const auto& s : vec_dot_sets()) sets += " " + s;
    throw std::invalid_argument("--kernels " + name + ": not a kernel set this CPU runs (it runs:" + sets + ")");
  }
  setenv("G3N_VEC_DOT", name.c_str(), 1);
}

// What the run computed with: the report's `kernels` object and line.
nlohmann::json kernels_json() {
  return {{"set", vec_dot_isa()}, {"conv_set", conv_kernels().name}, {"cpu_features", cpu_features_string()}};
}
void print_kernels_line() {
  std::printf("kernels    %s (conv %s); cpu %s\n", vec_dot_isa(), conv_kernels().name, cpu_features_string().c_str());
}

// `--spec MODE`: speculative against plain greedy decoding, and the verify cost.
void run_spec(const Options& o, const BenchParams& p) {
  const SpecMode mode = parse_spec_mode(o.spec);
  if (o.synthetic != -1 && (o.synthetic < 0 || o.synthetic > 1)) throw std::invalid_argument("--synthetic-acceptance must be in [0, 1]");
  if (mode == SpecMode::Draft && o.draft.empty()) throw std::invalid_argument("--spec draft needs --draft MODEL");
  // Loaded as g3n run --spec loads it (plain decoding is measured on the same layout).
  auto model = Model::load(o.model, Model::LoadOptions{.matformer = o.matformer, .speculative = true});
  std::unique_ptr<Model> draft_model;
  if (mode == SpecMode::Draft) {
    draft_model = Model::load(o.draft);
    check_draft_vocabulary(*model, *draft_model);
  } else if (mode == SpecMode::Self) {
    draft_model = Model::load(o.model, o.draft_matformer, model.get());  // the same file: pages and packed matrices shared
  }
  std::unique_ptr<ModelDrafter> drafter;
  if (draft_model) {
    ContextParams cp;
    cp.n_ctx = p.n_prompt + p.n_gen + o.draft_max + 2;
    cp.n_threads = p.n_threads;
    cp.kv_type = p.kv_type;
    cp.exact = p.exact;
    drafter = std::make_unique<ModelDrafter>(*draft_model, cp, spec_mode_name(mode));
  }
  SpecBenchParams sp;
  sp.base = p;
  sp.mode = mode;
  sp.draft_max = o.draft_max;
  sp.synthetic_acceptance = o.synthetic;
  sp.model_drafter = drafter.get();
  const SpecBenchResult r = run_spec_benchmark(*model, sp);
  if (o.json) {
    nlohmann::json j;
    j["model"] = o.model;
    j["threads"] = p.n_threads;
    j["n_prompt"] = p.n_prompt;
    j["n_gen"] = p.n_gen;
    j["repeats"] = p.repeats;
    j["kv_type"] = o.kv;
    j["exact"] = o.exact;
    j["spec_mode"] = o.spec;
    j["draft_model"] = mode == SpecMode::Draft ? nlohmann::json(o.draft) : mode == SpecMode::Self ? nlohmann::json(o.model + " --matformer " + o.draft_matformer) : nlohmann::json(nullptr);
    j["spec_draft_len"] = o.draft_max;
    j["synthetic_acceptance"] = o.synthetic >= 0 ? nlohmann::json(o.synthetic) : nlohmann::json(nullptr);
    j["spec_acceptance"] = r.acceptance;
    j["spec_position_acceptance"] = r.position_acceptance;
    j["spec_tokens_per_s"] = r.spec_tokens_per_s;
    j["plain_tokens_per_s"] = r.plain_tokens_per_s;
    j["spec_speedup"] = r.speedup;
    j["spec_predicted_speedup"] = r.predicted_speedup;
    j["spec_outputs_equal"] = r.outputs_equal;
    j["spec_drafted_per_round"] = r.drafted_per_round;
    j["draft_s_per_token"] = r.draft_s_per_token;
    j["draft_cost"] = r.draft_cost;
    j["verify_depth"] = sp.verify_depth;
    j["decode_step_s"] = r.step_s;
    j["verify_cost_ratio"] = r.verify_cost_ratio;
    j["verify_beta"] = r.beta;
    j["prefill_row_s"] = r.prefill_row_s;
    // The compute floor of T rows: T full-depth rows with the LM head at the measured prefill throughput.
    nlohmann::json floor = nlohmann::json::array();
    for (size_t t = 1; t <= r.verify_cost_ratio.size(); ++t) floor.push_back(r.step_s > 0 ? t * r.prefill_row_s / r.step_s : 0.0);
    j["verify_compute_floor_ratio"] = floor;
    uint64_t packed_bytes = 0;
    j["decode_weight_bytes"] = decode_weight_bytes(*model, &packed_bytes);
    j["decode_packed_bytes"] = packed_bytes;  // the layout a speculating load chose
    j["kernels"] = kernels_json();
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("model      %s\nthreads    %d, kv %s, %d repeats (medians), spec %s, draft length %d%s\n", o.model.c_str(), p.n_threads,
              o.kv.c_str(), p.repeats, o.spec.c_str(), o.draft_max, o.synthetic >= 0 ? (", synthetic acceptance " + std::to_string(o.synthetic)).c_str() : "");
  std::printf("plain      %.2f tokens/s\nspec       %.2f tokens/s: %.3fx (predicted %.3fx), acceptance %.3f, outputs %s\n", r.plain_tokens_per_s,
              r.spec_tokens_per_s, r.speedup, r.predicted_speedup, r.acceptance, r.outputs_equal ? "equal" : "DIFFER");
  std::printf("verify     at depth %d, step %.4f s, beta %.3f, cost ratio by T:", sp.verify_depth, r.step_s, r.beta);
  for (double v : r.verify_cost_ratio) std::printf(" %.3f", v);
  std::printf("\ndraft      %.4f s per token (c = %.3f)\n", r.draft_s_per_token, r.draft_cost);
  print_kernels_line();
}

// The same text benchmark without the image, run as a child (`/proc/self/exe bench ... --json`): its
// peak RSS is the baseline the image's figure is measured against. nullopt if it failed.
std::optional<uint64_t> baseline_peak_rss(const Options& o, int threads) {
  std::vector<std::string> args = {"g3n", "bench", o.model, "--prompt", std::to_string(o.prompt), "--gen", std::to_string(o.gen),
                                   "--threads", std::to_string(threads), "--repeats", std::to_string(o.repeats), "--kv", o.kv,
                                   "--parallel", std::to_string(o.parallel), "--ctx", std::to_string(o.ctx), "--json"};
  if (o.exact) args.push_back("--exact");
  if (!o.matformer.empty()) args.insert(args.end(), {"--matformer", o.matformer});
  if (o.no_shortcut) args.push_back("--no-prefill-shortcut");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int fds[2];
  if (pipe(fds) != 0) return std::nullopt;
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return std::nullopt;
  }
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0) out.append(buf, static_cast<size_t>(n));
    else if (n == 0 || errno != EINTR) break;
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  try {
    return nlohmann::json::parse(out).at("peak_rss_bytes").get<uint64_t>();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void run(const Options& o) {
  BenchParams p;
  if (!o.kernels.empty()) choose_kernels(o.kernels);
  p.n_prompt = o.prompt;
  p.n_gen = o.gen;
  p.repeats = o.repeats;
  p.n_threads = o.threads > 0 ? o.threads : default_thread_count();
  p.exact = o.exact;
  p.n_parallel = o.parallel;
  p.n_ctx = o.ctx;
  p.prefill_shortcut = !o.no_shortcut;
  if (o.kv == "f32") p.kv_type = KvType::F32;
  else if (o.kv != "f16") throw std::invalid_argument("--kv must be f16 or f32");
  if (o.spec != "none") {
    if (!o.mmproj.empty() || o.parallel != 1) throw std::invalid_argument("--spec measures one text sequence (no --mmproj, --parallel)");
    run_spec(o, p);
    return;
  }
  if (o.mmproj.empty() != (o.image.empty() && o.audio.empty()))
    throw std::invalid_argument("--mmproj goes with --image and/or --audio");
  const bool with_image = !o.image.empty(), with_audio = !o.audio.empty();
  if (!o.vision.empty() && o.vision != "fast" && o.vision != "exact") throw std::invalid_argument("--vision must be fast or exact");
  const bool vision_fast = o.vision.empty() ? !o.exact : o.vision == "fast";
  // Fail before the long text runs, not after them.
  for (const std::string* f : {&o.mmproj, &o.image, &o.audio})
    if (!f->empty() && !std::filesystem::is_regular_file(*f)) throw std::invalid_argument(*f + ": no such file");
  // Before the model exists; the peak RSS is reset after it (the buffer is gone by then), so the buffer
  // never counts toward the peak reported below.
  const double bandwidth = measure_read_bandwidth(p.n_threads);
  reset_peak_rss();
  std::vector<double> loads;
  std::unique_ptr<Model> model;
  for (int i = 0; i < o.repeats; ++i) {
    model.reset();
    const auto t0 = std::chrono::steady_clock::now();
    model = Model::load(o.model, o.matformer);
    loads.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const BenchResult r = run_benchmark(*model, p);
  const double load_s = median(loads);
  ImageBenchResult img;
  std::optional<uint64_t> baseline_rss;
  if (with_image) {
    ImageBenchParams ip;
    ip.mmproj = o.mmproj;
    ip.image = o.image;
    ip.n_threads = p.n_threads;
    ip.fast = vision_fast;
    ip.repeats = o.image_repeats > 0 ? o.image_repeats : o.repeats;
    ip.n_embd = model->config().n_embd;
    img = run_image_benchmark(ip);
  }
  AudioBenchResult aud;
  if (with_audio) {
    AudioBenchParams ap;
    ap.mmproj = o.mmproj;
    ap.audio = o.audio;
    ap.n_threads = p.n_threads;
    ap.fast = vision_fast;
    ap.repeats = o.image_repeats > 0 ? o.image_repeats : o.repeats;
    ap.n_embd = model->config().n_embd;
    aud = run_audio_benchmark(ap);
  }
  const uint64_t rss = peak_rss_bytes();
  if ((with_image || with_audio) && !o.no_rss_baseline) {
    baseline_rss = baseline_peak_rss(o, p.n_threads);
    if (!baseline_rss) std::fprintf(stderr, "warning: the baseline run without the image failed; no image memory figure\n");
  }
  // A decode step reads the weights once for all its sequences.
  uint64_t packed_bytes = 0;
  const uint64_t step_bytes = decode_weight_bytes(*model, &packed_bytes);
  const double traffic = static_cast<double>(step_bytes) * r.median_gen_tokens_per_s / std::max(1, o.parallel);
  const double fraction = bandwidth > 0 ? traffic / bandwidth : 0;
  if (o.json) {
    nlohmann::json j;
    j["model"] = o.model;
    j["matformer"] = o.matformer.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.matformer);
    j["n_layer"] = model->config().n_layer;
    j["effective_params"] = effective_parameters(model->config());
    j["threads"] = p.n_threads;
    j["n_prompt"] = p.n_prompt;
    j["n_gen"] = p.n_gen;
    j["repeats"] = p.repeats;
    j["kv_type"] = o.kv;
    j["parallel"] = o.parallel;
    j["n_ctx"] = std::max(o.ctx, o.prompt + o.gen + 1);
    j["exact"] = o.exact;
    j["prefill_shortcut"] = !o.no_shortcut;
    j["prompt_tokens_per_s"] = r.median_prompt_tokens_per_s;
    j["gen_tokens_per_s"] = r.median_gen_tokens_per_s;
    j["ttft_s"] = r.median_ttft_s;
    j["load_s"] = load_s;
    j["peak_rss_bytes"] = rss;
    j["decode_weight_bytes"] = step_bytes;
    j["decode_packed_bytes"] = packed_bytes;
    j["mem_read_bytes_per_s"] = bandwidth;
    j["gen_bandwidth_fraction"] = fraction;
    j["kernels"] = kernels_json();
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& run : r.runs)
      runs.push_back({{"prompt_s", run.prompt_s}, {"ttft_s", run.ttft_s}, {"gen_s", run.gen_s}});
    j["runs"] = runs;
    if (with_image) {
      j["mmproj"] = o.mmproj;
      j["image"] = o.image;
      j["image_vision_path"] = vision_fast ? "fast" : "exact";
      j["image_repeats"] = img.runs.size();
      j["image_size"] = img.image_size;
      j["image_source_width"] = img.source_width;
      j["image_source_height"] = img.source_height;
      j["image_load_s"] = img.load_s;
      j["image_preprocess_s"] = img.preprocess_s;
      j["image_encode_s"] = img.encode_s;
      j["image_tokens"] = img.tokens;
      nlohmann::json stages = nlohmann::json::object();
      for (const auto& [name, s] : img.stages) stages[name] = s;
      j["image_stage_s"] = stages;
      nlohmann::json iruns = nlohmann::json::array();
      for (const auto& run : img.runs) {
        nlohmann::json st = nlohmann::json::object();
        for (const auto& [name, s] : run.stages) st[name] = s;
        iruns.push_back({{"preprocess_s", run.preprocess_s}, {"encode_s", run.encode_s}, {"stage_s", st}});
      }
      j["image_runs"] = iruns;
    }
    if (with_audio) {
      j["mmproj"] = o.mmproj;
      j["audio"] = o.audio;
      j["audio_path"] = vision_fast ? "fast" : "exact";
      j["audio_repeats"] = aud.runs.size();
      j["audio_load_s"] = aud.load_s;
      j["audio_seconds"] = aud.audio_seconds;
      j["audio_chunks"] = aud.chunks;
      j["audio_tokens"] = aud.tokens;
      j["audio_decode_s"] = aud.decode_s;
      j["audio_features_s"] = aud.features_s;
      j["audio_encode_s"] = aud.encode_s;
      j["audio_flops"] = aud.flops;
      j["audio_gflops"] = aud.encode_s > 0 ? aud.flops / aud.encode_s / 1e9 : 0.0;
      nlohmann::json stages = nlohmann::json::object();
      for (const auto& [name, s] : aud.stages) stages[name] = s;
      j["audio_stage_s"] = stages;
      nlohmann::json aruns = nlohmann::json::array();
      for (const auto& run : aud.runs) {
        nlohmann::json st = nlohmann::json::object();
        for (const auto& [name, s] : run.stages) st[name] = s;
        aruns.push_back({{"decode_s", run.decode_s}, {"features_s", run.features_s}, {"encode_s", run.encode_s}, {"stage_s", st}});
      }
      j["audio_runs"] = aruns;
    }
    if (with_image || with_audio) {
      // Memory the media add: null when the baseline run was skipped (--no-rss-baseline) or failed. With both
      // --image and --audio each figure is the two together.
      const nlohmann::json delta =
          baseline_rss ? nlohmann::json(static_cast<int64_t>(rss) - static_cast<int64_t>(*baseline_rss)) : nlohmann::json(nullptr);
      j["baseline_peak_rss_bytes"] = baseline_rss ? nlohmann::json(*baseline_rss) : nlohmann::json(nullptr);
      if (with_image) j["image_peak_rss_delta_bytes"] = delta;
      if (with_audio) j["audio_peak_rss_delta_bytes"] = delta;
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  if (!o.matformer.empty())
    std::printf("matformer  %s: %d layers, %.3f B effective parameters\n", o.matformer.c_str(), model->config().n_layer,
                effective_parameters(model->config()) / 1e9);
  std::printf("model      %s\nthreads    %d, kv %s, %d repeats (medians)\n", o.model.c_str(), p.n_threads, o.kv.c_str(), p.repeats);
  std::printf("load       %.3f s\n", load_s);
  std::printf("prompt     %d tokens: %.2f tokens/s\n", p.n_prompt, r.median_prompt_tokens_per_s);
  std::printf("ttft       %.3f s\n", r.median_ttft_s);
  std::printf("generation %d tokens x %d sequences: %.2f tokens/s\n", p.n_gen, p.n_parallel, r.median_gen_tokens_per_s);
  std::printf("peak RSS   %.1f MB\n", rss / 1e6);
  std::printf("bandwidth  decode reads %.2f GB of weights per step (%.2f GB packed): %.1f GB/s, %.0f%% of the measured %.1f GB/s\n",
              step_bytes / 1e9, packed_bytes / 1e9, traffic / 1e9, 100 * fraction, bandwidth / 1e9);
  print_kernels_line();
  if (with_audio) {
    std::printf("audio      %s, %.2f s, %lld chunk(s), %lld tokens, %s path, %zu repeats (medians)\n", o.audio.c_str(), aud.audio_seconds,
                static_cast<long long>(aud.chunks), static_cast<long long>(aud.tokens), vision_fast ? "fast" : "exact", aud.runs.size());
    std::printf("audio enc  decode %.3f s, features %.3f s, encode %.3f s (%.1f GFLOP/s):", aud.decode_s, aud.features_s, aud.encode_s,
                aud.encode_s > 0 ? aud.flops / aud.encode_s / 1e9 : 0.0);
    for (const auto& [name, s] : aud.stages) std::printf(" %s %.3f", name.c_str(), s);
    std::printf("\n");
    if (baseline_rss && !with_image)
      std::printf("audio RSS  %+.1f MB (peak %.1f MB vs %.1f MB without the audio)\n",
                  (static_cast<double>(rss) - static_cast<double>(*baseline_rss)) / 1e6, rss / 1e6, *baseline_rss / 1e6);
  }
  if (!with_image) return;
  std::printf("image      %s, %dx%d -> %lldx%lld, %lld tokens, %s vision path, %zu repeats (medians)\n", o.image.c_str(),
              static_cast<int>(img.source_width), static_cast<int>(img.source_height), static_cast<long long>(img.image_size),
              static_cast<long long>(img.image_size), static_cast<long long>(img.tokens), vision_fast ? "fast" : "exact", img.runs.size());
  std::printf("projector  %s loaded in %.3f s\n", o.mmproj.c_str(), img.load_s);
  std::printf("preprocess %.3f s (decode + resize)\n", img.preprocess_s);
  std::printf("encode     %.3f s (tower + embedder):", img.encode_s);
  for (const auto& [name, s] : img.stages) std::printf(" %s %.3f", name.c_str(), s);
  std::printf("\n");
  if (baseline_rss)
    std::printf("image RSS  %+.1f MB (peak %.1f MB vs %.1f MB without the image)\n",
                (static_cast<double>(rss) - static_cast<double>(*baseline_rss)) / 1e6, rss / 1e6, *baseline_rss / 1e6);
}
}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto* c = app.add_subcommand("bench", "Measure load time, prompt and generation speed, peak memory");
  c->add_option("model", o->model, "GGUF model file")->required();
  c->add_option("--prompt", o->prompt, "prompt tokens (default 512)");
  c->add_option("--gen", o->gen, "generated tokens (default 64)");
  c->add_option("--threads", o->threads, "threads (default: physical cores)");
  c->add_option("--repeats", o->repeats, "repeats; medians are reported (default 3)");
  c->add_option("--kv", o->kv, "KV cache type: f16 (default) or f32");
  c->add_flag("--json", o->json, "print one JSON object");
  c->add_option("--ctx", o->ctx, "KV cache length per sequence (default: prompt + gen + 1); sizes the memory figure");
  c->add_option("--parallel", o->parallel, "sequences decoding together; generation tok/s is their sum (default 1)");
  c->add_option("--matformer", o->matformer, "measure a MatFormer slice of the model: a preset (e2b, ...), FILE.json or FILE.csv:ROW");
  c->add_flag("--exact", o->exact, "exact arithmetic (f32 activations) instead of the fast path");
  c->add_flag("--no-prefill-shortcut", o->no_shortcut, "run KV-sharing layers for every prompt token (to measure the shortcut)");
  c->add_option("--mmproj", o->mmproj, "projector (mmproj GGUF): also measure an image (--image) and/or audio (--audio) encode");
  c->add_option("--audio", o->audio, "audio file to encode, every 30 s chunk (with --mmproj holding an audio tower)");
  c->add_option("--image", o->image, "image file to encode (with --mmproj)");
  c->add_option("--vision", o->vision, "vision path: fast (default) or exact (default exact with --exact)");
  c->add_option("--image-repeats", o->image_repeats, "image encodes; medians are reported (default: --repeats)");
  c->add_flag("--no-rss-baseline", o->no_rss_baseline,
              "skip the run without the image that the image's peak-RSS figure is measured against");
  c->add_option("--spec", o->spec, "speculative decoding against plain greedy: ngram, draft or self (docs/speculative.md)");
  c->add_option("--draft", o->draft, "draft model for --spec draft (a Gemma 3n GGUF with the same vocabulary)");
  c->add_option("--draft-matformer", o->draft_matformer, "the slice --spec self drafts with (default e2b)");
  c->add_option("--draft-max", o->draft_max, "draft length (default 4)");
  c->add_option("--synthetic-acceptance", o->synthetic,
                "each draft position is the true token with this probability, else a wrong one (the drafter still runs)");
  c->add_option("--kernels", o->kernels, "kernel set to run (scalar, avx2+fma+f16c, avx-vnni, avx512vnni, avx512vnni-256, "
                                          "avx512vnni+amx, neon, neon+dotprod, neon+i8mm; "
                                          "default: the best this CPU runs; same as G3N_VEC_DOT=NAME)");
  c->callback([o] { run(*o); });
}

}  // namespace g3n::cli
