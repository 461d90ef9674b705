// `g3n run MODEL [PROMPT]`: chat with a model in the terminal, or answer one prompt (arguments or piped
// stdin) with only the answer on stdout. Images and audio: --image FILE / --audio FILE, or image and audio
// file paths typed in a prompt (media/prompt_images.h, as Ollama's CLI finds images), read with the model's
// projector layer or --mmproj FILE (its vision and/or audio tower).
#include <editline/readline.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <cstdlib>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/json_nesting.h"
#include "chat/chat.h"
#include "cli/commands.h"
#include "media/audio_encoder.h"
#include "media/image_encoder.h"
#include "media/media_chat.h"
#include "media/projector.h"
#include "media/prompt_images.h"
#include "model/model.h"
#include "registry/resolve.h"
#include "runtime/drafter_model.h"
#include "runtime/memory_estimate.h"
#include "runtime/parameters.h"
#include "runtime/session.h"
#include "sampling/json_constraint.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace g3n::cli {
namespace {

// SIGINT during an answer stops that answer, not the program. A signal handler can only reach a
// lock-free flag with static storage; it is the one piece of process-wide state in the CLI.
std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted.store(true); }

struct RunOptions {
  std::string model;
  std::vector<std::string> prompt;
  bool verbose = false, insecure = false;
  int num_ctx = 0, threads = 0;
  std::string kv = "f16";
  std::string format;               // "json" or a JSON-schema file: constrain every answer
  std::vector<std::string> params;  // NAME=VALUE, as /set parameter
  std::string mmproj;               // projector, instead of the model's projector layer
  std::vector<std::string> images;  // placed before the first prompt's text, in order
  std::vector<std::string> audio;   // after the images, before the text
  std::string matformer;            // MatFormer slice to load (overrides the model's parameter)
  std::string spec, draft;          // speculative decoding: mode, draft model (or, for self, the slice)
  int draft_max = 0;                // 0: the parameter's value
};

struct RunState {
  RunOptions opts;
  std::string model_name;
  registry::ResolveResult resolved;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Session> session;
  std::shared_ptr<const JsonSchema> schema;  // --format; null: free text
  std::unique_ptr<TokenTexts> token_texts;   // built once, for the constraint
  Parameters params;  // the table's defaults <- the model's params layer <- flags and /set
  MediaConversation conv;
  std::string mmproj;                     // --mmproj, for the model named on the command line
  std::unique_ptr<ImageEncoder> encoder;  // the projector's vision tower, loaded with the first image
  std::unique_ptr<AudioEncoder> audio_encoder;  // its audio tower, loaded with the first recording
  std::vector<ChatImage> pending;         // --image files, for the first message
  std::vector<ChatAudio> pending_audio;   // --audio files, for the first message
  double load_s = 0;
  bool speculative = false;  // the model was loaded for speculation (its weight layout, Model::LoadOptions)
  // Speculative decoding's draft model (spec draft: the draft file; self: a slice of this model's file)
  // and its drafter, kept while the mode, draft and context stay the same.
  std::unique_ptr<Model> draft_model;
  std::unique_ptr<ModelDrafter> drafter;
  std::string drafter_key;
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string human_bytes(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GB", b / 1e9);
  return buf;
}

// Applies one parameter given as text (-p NAME=VALUE, /set parameter); a new engine option drops the
// session, so the next answer runs with it.
void set_parameter(RunState& s, const std::string& name, const std::string& value) {
  const ParamSpec* spec = find_parameter(name);
  if (!spec) throw std::invalid_argument("unknown parameter '" + name + "' (/? lists them)");
  ParamValue v;
  try {
    v = parse_parameter(*spec, std::string_view(value));
  } catch (const ParameterError& e) {
    throw std::invalid_argument(std::string("parameter ") + e.what());
  }
  const EngineOptions before = s.params.engine;
  apply_parameter(s.params, *spec, v, /*append_stop=*/true);
  const EngineOptions& now = s.params.engine;
  if (now.num_ctx != before.num_ctx || now.num_thread != before.num_thread || now.num_batch != before.num_batch) s.session.reset();
  if (now.matformer != before.matformer) {  // another slice is another model: reload it from the same file
    s.session.reset();
    // A self-speculation draft uses the model's packed matrices: it goes before the model does.
    s.drafter.reset();
    s.draft_model.reset();
    s.drafter_key.clear();
    try {
      s.model = Model::load(s.resolved.gguf_path.string(), Model::LoadOptions{.matformer = now.matformer, .speculative = s.speculative});
    } catch (...) {
      s.params.engine = before;
      throw;
    }
  }
}

// The model's params layer: a value that does not fit the table is skipped with a warning.
void apply_params_layer(RunState& s, const nlohmann::json& params) {
  const ParamList list = parse_parameters(params, {}, [](const std::string&, const std::string& msg) {
    std::fprintf(stderr, "warning: model parameter ignored: %s\n", msg.c_str());
  });
  apply_parameters(s.params, list);
}

void load_model(RunState& s, const std::string& name) {
  const double t0 = now_s();
  registry::RegistryOptions ropts;
  ropts.insecure = s.opts.insecure;
  auto resolved = registry::resolve_model(name, store::StoreConfig::from_environment(), true, pull_progress_printer(), ropts);
  // The slice is chosen before loading: --matformer, else the model's own PARAMETER matformer.
  Parameters layer = default_parameters();
  apply_parameters(layer, parse_parameters(resolved.params, {}, [](const std::string&, const std::string&) {}));
  const std::string slice = !s.opts.matformer.empty() ? s.opts.matformer : layer.engine.matformer;
  s.speculative = !s.opts.spec.empty() ? s.opts.spec != "none" : layer.spec.mode != SpecMode::None;
  auto model = Model::load(resolved.gguf_path.string(), Model::LoadOptions{.matformer = slice, .speculative = s.speculative});
  auto tok = std::make_unique<Tokenizer>(Tokenizer::from_gguf(model->file()));
  s.session.reset();
  s.encoder.reset();
  s.audio_encoder.reset();
  s.token_texts.reset();  // the constraint's token table belongs to the old vocabulary
  s.resolved = std::move(resolved);
  s.model = std::move(model);
  s.tokenizer = std::move(tok);
  s.model_name = name;
  s.params = default_parameters();
  apply_params_layer(s, s.resolved.params);
  s.params.engine.matformer = slice;
  if (s.resolved.system) s.conv.set_system(*s.resolved.system);
  if (s.opts.num_ctx > 0) set_parameter(s, "num_ctx", std::to_string(s.opts.num_ctx));
  if (s.opts.threads > 0) set_parameter(s, "num_thread", std::to_string(s.opts.threads));
  if (!s.opts.spec.empty()) set_parameter(s, "spec", s.opts.spec);
  if (!s.opts.draft.empty()) set_parameter(s, "draft", s.opts.draft);
  if (s.opts.draft_max > 0) set_parameter(s, "draft_max", std::to_string(s.opts.draft_max));
  for (const auto& kv : s.opts.params) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw std::invalid_argument("--parameter expects NAME=VALUE, got '" + kv + "'");
    set_parameter(s, kv.substr(0, eq), kv.substr(eq + 1));
  }
  s.load_s = now_s() - t0;
}

ContextParams context_params(const RunState& s) {
  ContextParams p;
  p.n_ctx = s.params.engine.num_ctx;
  p.n_threads = s.params.engine.num_thread;
  p.n_batch = s.params.engine.num_batch;
  p.kv_type = s.opts.kv == "f32" ? KvType::F32 : KvType::F16;
  return p;
}

// Sets the session's speculation from the parameters, loading the draft model the first time it is needed.
void prepare_speculation(RunState& s, Session& session) {
  const SpecOptions& so = s.params.spec;
  if (so.mode != SpecMode::Draft && so.mode != SpecMode::Self) {
    session.set_speculation(so);
    return;
  }
  const ContextParams p = context_params(s);
  const std::string draft = s.params.engine.draft;
  // n_batch too: the target drafts up to its own num_batch rows, which the draft's rings must hold to roll back.
  const std::string key = std::string(spec_mode_name(so.mode)) + "|" + draft + "|" + std::to_string(p.n_ctx) + "|" +
                          std::to_string(p.n_batch) + "|" + s.resolved.gguf_path.string();
  if (!s.drafter || s.drafter_key != key) {
    session.set_speculation({});  // it must not keep the old drafter
    s.drafter.reset();
    s.draft_model.reset();
    std::unique_ptr<Model> dm;
    if (so.mode == SpecMode::Self) {
      // The same file: its pages and packed matrices are shared with the model; only the slice's own KV
      // (and compacted down projections) are added.
      dm = Model::load(s.resolved.gguf_path.string(), draft.empty() ? "e2b" : draft, s.model.get());
    } else {
      if (draft.empty()) throw std::invalid_argument("spec draft needs a draft model: --draft MODEL or -p draft=MODEL");
      auto resolved = registry::resolve_model(draft, store::StoreConfig::from_environment(), true, pull_progress_printer(), {});
      dm = Model::load(resolved.gguf_path.string());
    }
    check_draft_vocabulary(*s.model, *dm);
    s.drafter = std::make_unique<ModelDrafter>(*dm, p, spec_mode_name(so.mode));
    s.draft_model = std::move(dm);
    s.drafter_key = key;
  }
  session.set_speculation(so, s.drafter.get());
}

Session& session(RunState& s) {
  if (!s.session) {
    const ContextParams p = context_params(s);
    const MemoryEstimate est = estimate_memory(*s.model, p);
    if (auto avail = available_memory_bytes(); avail && est.total() > *avail)
      throw std::runtime_error("not enough memory: this model with num_ctx " + std::to_string(p.n_ctx) + " needs about " +
                               human_bytes(est.total()) + ", " + human_bytes(*avail) + " is available");
    s.session = std::make_unique<Session>(*s.model, *s.tokenizer, p);
  }
  return *s.session;
}

// The projector: --mmproj, else the model's projector layer; empty when there is none.
std::string projector_path(const RunState& s) {
  if (!s.mmproj.empty()) return s.mmproj;
  if (!s.resolved.projectors.empty()) return s.resolved.projectors.front().string();
  return {};
}

// The image encoder, loaded on first use (a text-only chat never pays for the projector). Throws when the
// model has none or it belongs to a model of another width.
ImageEncoder& encoder(RunState& s) {
  if (!s.encoder) {
    const std::string path = projector_path(s);
    if (path.empty() || !probe_projector(path).vision)
      throw std::invalid_argument("model '" + s.model_name + "' has no vision projector, so it cannot read images (give one with "
                                  "--mmproj FILE, or create a model with one: g3n create NAME --from MODEL --mmproj FILE)");
    const int threads = s.params.engine.num_thread > 0 ? s.params.engine.num_thread : 0;
    try {
      s.encoder = std::make_unique<ImageEncoder>(path, s.model->config().n_embd, threads, /*fast=*/true);
    } catch (const std::exception& e) {
      throw std::runtime_error("vision projector " + path + ": " + e.what());
    }
  }
  return *s.encoder;
}

// The audio encoder, loaded on first use, as the image encoder.
AudioEncoder& audio_encoder(RunState& s) {
  if (!s.audio_encoder) {
    const std::string path = projector_path(s);
    if (path.empty() || !probe_projector(path).audio)
      throw std::invalid_argument("model '" + s.model_name + "' has no audio encoder, so it cannot hear audio (give a projector with "
                                  "an audio tower with --mmproj FILE, or create a model with one: g3n create NAME --from MODEL --mmproj FILE)");
    const int threads = s.params.engine.num_thread > 0 ? s.params.engine.num_thread : 0;
    try {
      s.audio_encoder = std::make_unique<AudioEncoder>(path, s.model->config().n_embd, threads, /*fast=*/true);
    } catch (const std::exception& e) {
      throw std::runtime_error("audio projector " + path + ": " + e.what());
    }
  }
  return *s.audio_encoder;
}

struct EncodedMedia {
  std::vector<ChatImage> images;
  std::vector<ChatAudio> audio;
};

// Reads and encodes image and audio files (each announced on stderr, as Ollama's "Added image"); Ctrl-C
// cancels.
EncodedMedia encode_media(RunState& s, const std::vector<PromptImage>& files) {
  EncodedMedia out;
  g_interrupted.store(false);
  for (const PromptImage& f : files) {
    if (f.audio) {
      AudioEncoder& enc = audio_encoder(s);
      auto clip = enc.encode_file(f.path, &g_interrupted);
      std::fprintf(stderr, "Added audio '%s' (%.1f s)\n", f.written.c_str(), clip->seconds);
      out.audio.push_back({f.written, std::move(clip)});
    } else {
      ImageEncoder& enc = encoder(s);
      std::fprintf(stderr, "Added image '%s'\n", f.written.c_str());
      out.images.push_back({f.written, enc.encode_file(f.path, &g_interrupted)});
    }
  }
  return out;
}

// Renders the conversation, images in their messages, with a generation prompt. One that does not fit
// loses its oldest turns (chat's policy, as the server's); images and the last message are never cut: too
// long on its own is an error.
InputRows prompt_rows(RunState& s, bool quiet) {
  const int n_ctx = s.params.engine.num_ctx;
  MediaEndRows end_rows;
  if (s.conv.image_count() > 0) end_rows.image = encoder(s).end_of_image_row();
  if (s.conv.audio_count() > 0) end_rows.audio = audio_encoder(s).end_of_audio_row();
  MediaChatPrompt p;
  try {
    p = media_chat_rows(*s.tokenizer, s.conv.messages(), end_rows, n_ctx);
  } catch (const chat::ContextOverflow& e) {
    const bool media = s.conv.image_count() + s.conv.audio_count() > 0;
    throw std::length_error(std::string(e.what()) + (media ? " (images and audio are never cut; each 30 s of audio takes 190 rows)" : "") +
                            "; raise it with --num-ctx N or /set parameter num_ctx N (max " + std::to_string(kMaxContext) + ")");
  }
  if (p.dropped_turns > 0) {
    s.conv.drop_oldest(p.dropped_turns);
    if (!quiet) std::fprintf(stderr, "(dropped the %zu oldest messages to fit the context of %d tokens)\n", p.dropped_turns, n_ctx);
  }
  return std::move(p.rows);
}

// One answer: streams to stdout, returns the text (for the history).
std::string answer(RunState& s, const std::string& user_text, EncodedMedia media, bool interactive) {
  const MediaConversation before = s.conv;  // restored if the prompt cannot be built
  InputRows rows;
  try {
    s.conv.add_user(user_text, std::move(media.images), std::move(media.audio));
    rows = prompt_rows(s, !interactive && !s.opts.verbose);
  } catch (...) {
    s.conv = before;
    throw;
  }
  std::string out;
  g_interrupted.store(false);
  std::unique_ptr<LogitsConstraint> constraint;
  if (s.schema) {
    if (!s.token_texts) s.token_texts = std::make_unique<TokenTexts>(*s.tokenizer);
    constraint = std::make_unique<JsonConstraint>(s.schema, *s.token_texts, s.tokenizer->stop_ids());
  }
  prepare_speculation(s, session(s));
  const GenerateStats st = session(s).generate(rows, s.params.sampling, [&](std::string_view text) {
    out += text;
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  }, &g_interrupted, std::move(constraint));
  if (!out.empty() && out.back() != '\n') std::fputc('\n', stdout);
  std::fflush(stdout);
  if (st.done_reason == DoneReason::Cancel) std::fprintf(stderr, "(interrupted)\n");
  if (st.done_reason == DoneReason::Length && session(s).context().n_past() + 1 >= s.params.engine.num_ctx)
    std::fprintf(stderr, "(the context of %d tokens is full; older turns will be dropped next time)\n", s.params.engine.num_ctx);
  s.conv.add_model(out);
  if (s.opts.verbose) {
    std::fprintf(stderr, "load duration:        %.3fs\n", s.load_s);
    std::fprintf(stderr, "prompt eval count:    %d token(s) (%d cached)\n", st.prompt_tokens, st.cached_tokens);
    std::fprintf(stderr, "prompt eval duration: %.3fs\n", st.prompt_s);
    const int evaluated = st.prompt_tokens - st.cached_tokens;
    std::fprintf(stderr, "prompt eval rate:     %.2f tokens/s\n", st.prompt_s > 0 ? evaluated / st.prompt_s : 0.0);
    std::fprintf(stderr, "time to first token:  %.3fs\n", st.ttft_s);
    std::fprintf(stderr, "eval count:           %d token(s)\n", st.gen_tokens);
    std::fprintf(stderr, "eval duration:        %.3fs\n", st.gen_s);
    std::fprintf(stderr, "eval rate:            %.2f tokens/s\n", st.gen_s > 0 && st.gen_tokens > 1 ? (st.gen_tokens - 1) / st.gen_s : 0.0);
    if (const SpecStats& sp = session(s).spec_stats(); sp.rounds > 0)
      std::fprintf(stderr, "speculation:          %s, %d forward passes, %d of %d draft tokens accepted (%.1f%%)\n",
                   spec_mode_name(s.params.spec.mode), sp.rounds, sp.accepted, sp.drafted, 100 * sp.acceptance());
  }
  return out;
}

void show(RunState& s, const std::string& what) {
  const auto& c = s.model->config();
  if (what == "info") {
    std::printf("  Model\n    architecture        gemma3n\n    parameters          %.2fB\n", [&] {
      double n = 0;
      for (const auto& t : s.model->file().tensors()) n += static_cast<double>(t.n_elements());
      return n / 1e9;
    }());
    std::printf("    context length      %d\n    embedding length    %d\n    layers              %d\n    file                %s\n",
                c.context_length, c.n_embd, c.n_layer, s.resolved.gguf_path.c_str());
    if (const std::string proj = projector_path(s); !proj.empty()) std::printf("    projector           %s\n", proj.c_str());
  } else if (what == "parameters") {
    for (const auto& line : show_parameters(s.params)) std::printf("%s\n", line.c_str());
  } else if (what == "template") {
    if (s.resolved.template_text) std::printf("%s\n", s.resolved.template_text->c_str());
    else if (auto t = chat::chat_template(s.model->file())) std::printf("%s\n", t->c_str());
    else std::printf("(built-in Gemma turn format)\n");
    std::printf("(g3n always formats prompts with its built-in Gemma turn format; templates are shown, not executed)\n");
  } else if (what == "system") {
    std::printf("%s\n", s.conv.system().empty() ? "(no system prompt)" : s.conv.system().c_str());
  } else {
    std::printf("Usage: /show info|parameters|template|system\n");
  }
}

void print_help() {
  std::printf(
      "Available commands:\n"
      "  /set parameter NAME VALUE   set a parameter (below); \"stop\" adds one stop text\n"
      "  /set system TEXT            set the system prompt\n"
      "  /show info|parameters|template|system\n"
      "  /clear                      forget the conversation\n"
      "  /load MODEL                 switch to another model\n"
      "  /save FILE                  save the conversation (JSON)\n"
      "  /bye                        exit\n"
      "  /?, /help                   this help\n\n"
      "Use \"\"\" to begin and end a multi-line message. Ctrl-C stops an answer; Ctrl-D exits.\n\n"
      "Parameters (as Ollama's; -p NAME=VALUE sets them on the command line):\n%s",
      parameters_help().c_str());
}

void save_conversation(RunState& s, const std::string& path) {
  nlohmann::json j;
  j["model"] = s.model_name;
  j["system"] = s.conv.system();
  j["messages"] = nlohmann::json::array();
  for (const auto& m : s.conv.turns()) {
    nlohmann::json msg = {{"role", m.role == chat::Role::User ? "user" : "assistant"}, {"content", m.text}};
    for (const ChatImage& im : m.images) msg["images"].push_back(im.source);
    for (const ChatAudio& a : m.audio) msg["audio"].push_back(a.source);
    j["messages"].push_back(std::move(msg));
  }
  {
    std::ofstream f(path);
    if (!f) throw std::runtime_error("cannot write " + path);
    f << j.dump(2) << "\n";
    f.close();  // on disk before it is reported
    if (!f) throw std::runtime_error("cannot write " + path);
  }
  std::printf("Saved the conversation to %s\n", path.c_str());
}

// Returns false to exit.
bool slash_command(RunState& s, const std::string& line) {
  std::istringstream in(line);
  std::string cmd, arg;
  in >> cmd;
  if (cmd == "/bye" || cmd == "/exit") return false;
  if (cmd == "/?" || cmd == "/help") { print_help(); return true; }
  if (cmd == "/clear") {
    s.conv.clear();
    s.pending.clear();
    s.pending_audio.clear();
    std::printf("Cleared session context\n");
    return true;
  }
  if (cmd == "/show") { in >> arg; show(s, arg); return true; }
  if (cmd == "/load") {
    in >> arg;
    if (arg.empty()) { std::printf("Usage: /load MODEL\n"); return true; }
    std::printf("Loading model '%s'\n", arg.c_str());
    s.mmproj.clear();  // --mmproj was for the first model; this one brings its own projector, if any
    load_model(s, arg);
    s.conv.clear();
    s.pending.clear();
    s.pending_audio.clear();
    return true;
  }
  if (cmd == "/save") {
    in >> arg;
    if (arg.empty()) { std::printf("Usage: /save FILE\n"); return true; }
    save_conversation(s, arg);
    return true;
  }
  if (cmd == "/set") {
    in >> arg;
    if (arg == "parameter") {
      std::string name, value;
      in >> name;
      std::getline(in >> std::ws, value);
      if (name.empty() || value.empty()) { std::printf("Usage: /set parameter NAME VALUE\n"); return true; }
      set_parameter(s, name, value);
      std::printf("Set parameter '%s' to '%s'\n", name.c_str(), value.c_str());
    } else if (arg == "system") {
      std::string text;
      std::getline(in >> std::ws, text);
      if (text.size() >= 2 && text.front() == '"' && text.back() == '"') text = text.substr(1, text.size() - 2);
      s.conv.set_system(text);
      std::printf("Set system message.\n");
    } else {
      std::printf("Usage: /set parameter NAME VALUE | /set system TEXT\n");
    }
    return true;
  }
  std::printf("Unknown command '%s'. Type /? for help\n", cmd.c_str());
  return true;
}

// One line from libedit (which hands over a malloc'd buffer); nullopt on EOF.
std::optional<std::string> read_line(const char* prompt) {
  const std::unique_ptr<char, decltype(&std::free)> raw(readline(prompt), &std::free);
  if (!raw) return std::nullopt;
  return std::string(raw.get());
}

// Reads one message: a line, or a """-delimited block. nullopt on EOF.
std::optional<std::string> read_message() {
  const std::optional<std::string> first = read_line(">>> ");
  if (!first) return std::nullopt;
  const std::string& line = *first;
  if (line.rfind("\"\"\"", 0) == 0) {
    std::string text = line.substr(3);
    while (true) {
      const size_t end = text.find("\"\"\"");
      if (end != std::string::npos) { text.resize(end); break; }
      const std::optional<std::string> more = read_line("... ");
      if (!more) break;
      text += "\n";
      text += *more;
    }
    add_history(("\"\"\"" + text + "\"\"\"").c_str());
    return text;
  }
  if (!line.empty()) add_history(line.c_str());
  return line;
}

void interactive(RunState& s) {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);  // no SA_RESTART: Ctrl-C at the prompt just gives a fresh prompt
  std::printf("Send a message (/? for help)\n");
  while (true) {
    g_interrupted.store(false);
    auto msg = read_message();
    if (!msg) {
      if (g_interrupted.load()) { std::printf("\nUse Ctrl + d or /bye to exit.\n"); continue; }
      std::printf("\n");
      break;
    }
    if (msg->empty()) continue;
    try {
      if ((*msg)[0] == '/') {
        if (!slash_command(s, *msg)) break;
        continue;
      }
      // Image and audio paths in the message become its media (after any --image / --audio files still
      // waiting); a file that cannot be read is an error and the message is not sent.
      PromptWithImages typed = extract_prompt_images(*msg);
      EncodedMedia media{s.pending, s.pending_audio};
      EncodedMedia more = encode_media(s, typed.images);
      for (ChatImage& im : more.images) media.images.push_back(std::move(im));
      for (ChatAudio& a : more.audio) media.audio.push_back(std::move(a));
      if (typed.text.empty() && media.images.empty() && media.audio.empty()) continue;
      answer(s, typed.text, std::move(media), true);
      s.pending.clear();
      s.pending_audio.clear();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "Error: %s\n", e.what());
    }
  }
}

// --format: "json" (any object, as Ollama's format "json") or the path of a JSON-schema file.
std::shared_ptr<const JsonSchema> load_format(const std::string& format) {
  if (format.empty()) return nullptr;
  if (format == "json") return JsonSchema::any_object();
  std::ifstream f(format, std::ios::binary);
  if (!f) throw std::runtime_error("--format: cannot open schema file " + format + " (or give 'json')");
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (json_nesting_exceeds(text))
    throw std::runtime_error("--format: " + format + ": nested more than " + std::to_string(kMaxJsonNesting) + " deep");
  try {
    return JsonSchema::compile(nlohmann::ordered_json::parse(text));  // properties in the file's order
  } catch (const std::exception& e) {
    throw std::runtime_error("--format: " + format + ": " + e.what());
  }
}

void run(RunOptions o) {
  RunState s;
  s.opts = std::move(o);
  s.schema = load_format(s.opts.format);  // before loading: a bad schema fails fast
  if (s.opts.kv != "f16" && s.opts.kv != "f32") throw std::invalid_argument("--kv must be f16 or f32");
  s.mmproj = s.opts.mmproj;
  load_model(s, s.opts.model);
  if (!s.mmproj.empty()) {  // a projector that does not fit fails before anything else
    const ProjectorParts parts = probe_projector(s.mmproj);
    if (parts.vision) encoder(s);
    if (parts.audio) audio_encoder(s);
  }
  std::vector<PromptImage> image_files;
  for (const std::string& f : s.opts.images) image_files.push_back({f, f, false});
  for (const std::string& f : s.opts.audio) image_files.push_back({f, f, true});
  std::string prompt;
  for (size_t i = 0; i < s.opts.prompt.size(); ++i) prompt += (i ? " " : "") + s.opts.prompt[i];
  const bool one_shot = !prompt.empty();
  // Image paths are looked for in the prompt typed as arguments (and in chat messages), not in piped text.
  PromptWithImages typed = extract_prompt_images(prompt);
  prompt = typed.text;
  image_files.insert(image_files.end(), typed.images.begin(), typed.images.end());
  EncodedMedia first = encode_media(s, image_files);
  s.pending = std::move(first.images);
  s.pending_audio = std::move(first.audio);
  const bool piped = !isatty(STDIN_FILENO);
  if (piped) {
    std::stringstream in;
    in << std::cin.rdbuf();
    const std::string stdin_text = in.str();
    if (!stdin_text.empty()) prompt = prompt.empty() ? stdin_text : prompt + "\n\n" + stdin_text;
  }
  if (one_shot || !prompt.empty()) {
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, nullptr);
    answer(s, prompt, EncodedMedia{std::move(s.pending), std::move(s.pending_audio)}, false);
    return;
  }
  if (piped) {  // empty stdin, no prompt: nothing to do
    if (!s.pending.empty() || !s.pending_audio.empty())
      throw std::invalid_argument("a file given with --image or --audio needs a prompt (an argument, piped stdin or the chat)");
    return;
  }
  interactive(s);
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  auto* c = app.add_subcommand("run", "Chat with a model, or answer one prompt");
  c->add_option("model", o->model, "model name (gemma3n:e2b) or path to a .gguf file")->required();
  c->add_option("prompt", o->prompt, "prompt (otherwise stdin when piped, else an interactive chat)");
  c->add_flag("--verbose", o->verbose, "print timings after each answer");
  c->add_option("--num-ctx", o->num_ctx, "context length (default " + std::to_string(kDefaultContext) + ", " +
                                            std::to_string(kMinContext) + ".." + std::to_string(kMaxContext) + ")");
  c->add_option("--threads", o->threads, "threads (default: physical cores)");
  c->add_option("--kv", o->kv, "KV cache type: f16 (default) or f32");
  c->add_flag("--insecure", o->insecure, "allow plain HTTP registries when pulling");
  // Repeatable options take one value each, so a prompt after them stays the prompt.
  c->add_option("-p,--parameter", o->params, "NAME=VALUE, as /set parameter (repeatable):\n" + parameters_help())
      ->allow_extra_args(false);
  c->add_option("--matformer", o->matformer, "run a MatFormer slice of the model: a preset (e2b, e2.54b, ...), FILE.json or "
                 "FILE.csv:ROW (docs/matformer.md)");
  c->add_option("--spec", o->spec, "speculative decoding (same output, faster when drafts are accepted): none, auto, ngram, draft, "
                 "self (docs/speculative.md; the Q6_K matrices are then loaded packed, for cheaper verifying: §1)");
  c->add_option("--draft", o->draft, "draft model for --spec draft (same vocabulary); for --spec self the slice (default e2b)");
  c->add_option("--draft-max", o->draft_max, "longest draft in tokens (default 8)");
  c->add_option("--format", o->format, "constrain answers to JSON: 'json' (any object) or a JSON-schema file");
  c->add_option("--mmproj", o->mmproj, "projector GGUF with a vision and/or audio tower (default: the model's projector layer, if any)");
  c->add_option("--image", o->images,
                "image file placed before the (first) prompt's text (repeatable; image paths typed in a prompt work too)")
      ->allow_extra_args(false);
  c->add_option("--audio", o->audio,
                "audio file (WAV, FLAC, OGG, MP3) placed after the images, before the (first) prompt's text (repeatable; audio "
                "paths typed in a prompt work too)")
      ->allow_extra_args(false);
  c->callback([o] { run(*o); });
}

}  // namespace g3n::cli
