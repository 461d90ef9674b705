#include "server/server.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "gguf/gguf.h"
#include "registry/registry_client.h"
#include "server/http.h"
#include "server/model_manager.h"
#include "server/options.h"
#include "server/prompt.h"
#include "store/modelfile.h"

namespace g3n::server {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using SysClock = std::chrono::system_clock;

constexpr const char* kVersion = "0.13.0";  // the Ollama API version whose shapes this server speaks
constexpr const char* kJsonType = "application/json; charset=utf-8";

int64_t to_ns(double seconds) { return static_cast<int64_t>(seconds * 1e9); }

SysClock::time_point to_sys(fs::file_time_type t) {
  return std::chrono::time_point_cast<SysClock::duration>(t - fs::file_time_type::clock::now() + SysClock::now());
}

std::string env_or(const char* a, const char* b) {
  if (const char* v = std::getenv(a); v && *v) return v;
  if (b)
    if (const char* v = std::getenv(b); v && *v) return v;
  return {};
}

int env_int(const char* name, const char* alt, int def, int lo) {
  const std::string v = env_or(name, alt);
  if (v.empty()) return def;
  try {
    return std::max(lo, std::stoi(v));
  } catch (...) {
    std::fprintf(stderr, "warning: invalid %s=%s, using %d\n", name, v.c_str(), def);
    return def;
  }
}

void set_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), kJsonType);
}

void set_error(httplib::Response& res, int status, const std::string& msg) { set_json(res, status, json{{"error", msg}}); }

json openai_error_body(int status, const std::string& msg) {
  const char* type = status == 404 ? "not_found_error" : status < 500 ? "invalid_request_error" : "api_error";
  return json{{"error", {{"message", msg}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}};
}

void set_openai_error(httplib::Response& res, int status, const std::string& msg) {
  set_json(res, status, openai_error_body(status, msg));
}

// keep_alive given and zero: the request asks to unload the model.
bool asks_unload(const json& body) {
  return body.contains("keep_alive") && !body["keep_alive"].is_null() &&
         parse_keep_alive(body["keep_alive"]).value_or(std::chrono::nanoseconds(1)).count() == 0;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json parse_body(const httplib::Request& req) {
  if (req.body.empty()) throw HttpError(400, "missing request body");
  json j;
  try {
    j = json::parse(req.body);
  } catch (const json::parse_error& e) {
    throw HttpError(400, std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) throw HttpError(400, "request body must be a JSON object");
  return j;
}

std::string require_model(const json& body) {
  auto m = get_string(body, "model");
  if (!m || m->empty()) m = get_string(body, "name");  // legacy field, still sent by some clients
  if (!m || m->empty()) throw HttpError(400, "model is required");
  return *m;
}

// "format": "json" or a JSON schema -> the constraint's schema (null: none).
std::shared_ptr<const JsonSchema> parse_format(const json& f) {
  if (f.is_null()) return nullptr;
  if (f.is_string()) {
    const std::string s = f.get<std::string>();
    if (s.empty()) return nullptr;
    if (s == "json") return JsonSchema::any_object();
    throw HttpError(400, "invalid format: \"" + s + "\" (expected \"json\" or a JSON schema)");
  }
  if (f.is_object()) {
    try {
      return JsonSchema::compile(f);
    } catch (const std::exception& e) {
      throw HttpError(400, std::string("invalid JSON schema in format: ") + e.what());
    }
  }
  throw HttpError(400, "invalid format: expected \"json\" or a JSON schema object");
}

void reject_images(const json& v) {
  if (v.is_null()) return;
  if (!v.is_array()) throw HttpError(400, "invalid type for \"images\": expected an array of base64 strings");
  if (!v.empty()) throw HttpError(400, "images are not supported: g3n serves Gemma 3n's text model only");
}

json gguf_value_json(const GgufValue& v, bool verbose) {
  switch (v.type) {
    case GgufValueType::UINT8: case GgufValueType::UINT16: case GgufValueType::UINT32: case GgufValueType::UINT64:
      return v.u;
    case GgufValueType::INT8: case GgufValueType::INT16: case GgufValueType::INT32: case GgufValueType::INT64:
      return v.i;
    case GgufValueType::FLOAT32: case GgufValueType::FLOAT64:
      return v.f;
    case GgufValueType::BOOL:
      return v.u != 0;
    case GgufValueType::STRING:
      return v.s;
    case GgufValueType::ARRAY: {
      json a = json::array();
      if (!verbose && v.array.size() > 5) return a;  // Ollama elides long arrays (vocabularies) unless verbose
      for (const auto& e : v.array) a.push_back(gguf_value_json(e, verbose));
      return a;
    }
  }
  return nullptr;
}

std::string param_line_value(const json& v) { return v.is_string() ? json(v.get<std::string>()).dump() : v.dump(); }

// The streaming and whole-response shapes of one API.
struct Output {
  virtual ~Output() = default;
  virtual const char* content_type() const = 0;
  virtual std::string chunk(const std::string& text) = 0;
  virtual std::string last_chunks(const GenerateStats& st, double load_s, double total_s) = 0;
  virtual std::string stream_error(const std::string& msg) = 0;
  virtual json whole(const std::string& text, const GenerateStats& st, double load_s, double total_s) = 0;
};

std::string done_reason(const GenerateStats& st) { return st.done_reason == "cancel" ? "" : st.done_reason; }

void add_timings(json& j, const GenerateStats& st, double load_s, double total_s, int truncated) {
  j["done"] = true;
  if (!done_reason(st).empty()) j["done_reason"] = done_reason(st);
  auto put = [&](const char* k, int64_t v) {
    if (v != 0) j[k] = v;  // Go's omitempty
  };
  put("total_duration", to_ns(total_s));
  put("load_duration", to_ns(load_s));
  put("prompt_eval_count", st.prompt_tokens);
  put("prompt_eval_duration", to_ns(st.prompt_s));
  put("eval_count", st.gen_tokens);
  put("eval_duration", to_ns(st.gen_s));
  if (truncated > 0) j["prompt_truncated"] = truncated;  // ours: how much of the prompt was cut to fit
}

struct OllamaGenerateOutput : Output {
  std::string model;
  bool with_context = false;
  std::vector<int32_t> prompt;
  int truncated = 0;
  const char* content_type() const override { return "application/x-ndjson"; }
  json head() const { return json{{"model", model}, {"created_at", rfc3339(SysClock::now())}}; }
  std::string chunk(const std::string& text) override {
    json j = head();
    j["response"] = text;
    j["done"] = false;
    return dump(j) + "\n";
  }
  json final_object(const std::string& text, const GenerateStats& st, double load_s, double total_s) {
    json j = head();
    j["response"] = text;
    add_timings(j, st, load_s, total_s, truncated);
    if (with_context) {
      std::vector<int32_t> ctx = prompt;
      ctx.insert(ctx.end(), st.generated.begin(), st.generated.end());
      j["context"] = ctx;
    }
    return j;
  }
  std::string last_chunks(const GenerateStats& st, double load_s, double total_s) override {
    return dump(final_object("", st, load_s, total_s)) + "\n";
  }
  std::string stream_error(const std::string& msg) override { return dump(json{{"error", msg}}) + "\n"; }
  json whole(const std::string& text, const GenerateStats& st, double load_s, double total_s) override {
    return final_object(text, st, load_s, total_s);
  }
};

struct OllamaChatOutput : Output {
  std::string model;
  int truncated = 0;
  const char* content_type() const override { return "application/x-ndjson"; }
  json object(const std::string& text) const {
    return json{{"model", model}, {"created_at", rfc3339(SysClock::now())},
                {"message", {{"role", "assistant"}, {"content", text}}}};
  }
  std::string chunk(const std::string& text) override {
    json j = object(text);
    j["done"] = false;
    return dump(j) + "\n";
  }
  std::string last_chunks(const GenerateStats& st, double load_s, double total_s) override {
    json j = object("");
    add_timings(j, st, load_s, total_s, truncated);
    return dump(j) + "\n";
  }
  std::string stream_error(const std::string& msg) override { return dump(json{{"error", msg}}) + "\n"; }
  json whole(const std::string& text, const GenerateStats& st, double load_s, double total_s) override {
    json j = object(text);
    add_timings(j, st, load_s, total_s, truncated);
    return j;
  }
};

json usage_json(const GenerateStats& st) {
  return json{{"prompt_tokens", st.prompt_tokens}, {"completion_tokens", st.gen_tokens},
              {"total_tokens", st.prompt_tokens + st.gen_tokens}};
}

json finish_reason(const GenerateStats& st) {
  const std::string r = done_reason(st);
  return r.empty() ? json(nullptr) : json(r);
}

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

struct OpenAIChatOutput : Output {
  std::string model, id;
  bool chat = true;  // false: /v1/completions
  bool include_usage = false;
  int64_t created = 0;
  const char* content_type() const override { return "text/event-stream"; }
  json head(bool chunked) const {
    return json{{"id", id},
                {"object", chat ? (chunked ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
                {"created", chunked ? static_cast<int64_t>(std::time(nullptr)) : created},
                {"model", model},
                {"system_fingerprint", "fp_ollama"}};
  }
  json choice(const std::string& text, const json& reason) const {
    if (chat) return json{{"index", 0}, {"delta", {{"role", "assistant"}, {"content", text}}}, {"finish_reason", reason}};
    return json{{"index", 0}, {"text", text}, {"finish_reason", reason}};
  }
  std::string chunk(const std::string& text) override {
    json j = head(true);
    j["choices"] = json::array({choice(text, nullptr)});
    return sse(j);
  }
  std::string last_chunks(const GenerateStats& st, double, double) override {
    json j = head(true);
    j["choices"] = json::array({choice("", finish_reason(st))});
    std::string out = sse(j);
    if (include_usage) {
      json u = head(true);
      u["choices"] = json::array();
      u["usage"] = usage_json(st);
      out += sse(u);
    }
    return out + "data: [DONE]\n\n";
  }
  std::string stream_error(const std::string& msg) override {
    return sse(json{{"error", {{"message", msg}, {"type", "api_error"}, {"param", nullptr}, {"code", nullptr}}}}) +
           "data: [DONE]\n\n";
  }
  json whole(const std::string& text, const GenerateStats& st, double, double) override {
    json j = head(false);
    if (chat)
      j["choices"] = json::array(
          {json{{"index", 0}, {"message", {{"role", "assistant"}, {"content", text}}}, {"finish_reason", finish_reason(st)}}});
    else
      j["choices"] = json::array({json{{"index", 0}, {"text", text}, {"finish_reason", finish_reason(st)}, {"logprobs", nullptr}}});
    j["usage"] = usage_json(st);
    return j;
  }
};

// A generation in flight: the model lease keeps the model loaded until the response is written.
struct Generation {
  std::unique_ptr<ModelManager::Lease> lease;
  std::shared_ptr<Job> job;
  std::shared_ptr<Output> out;
  double load_s = 0;
  Clock::time_point t0;
  int truncated = 0;
};

struct Metrics {
  std::mutex mu;
  std::map<std::pair<std::string, int>, uint64_t> requests;
  std::map<std::string, double> seconds;
  uint64_t tokens_generated = 0, prompt_tokens = 0;
  double eval_seconds = 0;
  double last_tokens_per_second = 0;
};

struct RequestLog {
  Clock::time_point t0;
  int tokens = 0;
};

}  // namespace

ServerConfig ServerConfig::from_environment() {
  ServerConfig c;
  const ListenAddress a = listen_address_from(std::getenv("G3N_HOST"), std::getenv("OLLAMA_HOST"));
  c.host = a.host;
  c.port = a.port;
  c.store = store::StoreConfig::from_environment();
  c.sched.num_parallel = env_int("G3N_NUM_PARALLEL", "OLLAMA_NUM_PARALLEL", 2, 1);
  c.sched.max_queue = env_int("G3N_MAX_QUEUE", nullptr, 16, 0);
  c.num_ctx = std::clamp(env_int("G3N_CONTEXT_LENGTH", "OLLAMA_CONTEXT_LENGTH", kDefaultContext, kMinContext), kMinContext, kMaxContext);
  const std::string ka = env_or("G3N_KEEP_ALIVE", "OLLAMA_KEEP_ALIVE");
  if (!ka.empty()) {
    try {
      // Integer seconds or a Go duration, like OLLAMA_KEEP_ALIVE.
      json v = ka.find_first_not_of("-0123456789.") == std::string::npos ? json(std::stod(ka)) : json(ka);
      c.keep_alive = parse_keep_alive(v);
    } catch (...) {
      std::fprintf(stderr, "warning: invalid keep-alive '%s', using 5m\n", ka.c_str());
    }
  }
  return c;
}

struct Server::Impl {
  ServerConfig cfg;
  ModelManager models;
  httplib::Server http;
  Metrics metrics;
  std::mutex log_mu;
  std::map<const httplib::Request*, RequestLog> logs;  // keyed by the request object while it is served
  std::atomic<bool> stopping{false};
  std::thread thread;
  int port = 0;
  std::mt19937_64 rng{std::random_device{}()};
  std::mutex rng_mu;

  explicit Impl(ServerConfig c) : cfg(std::move(c)), models(cfg.store, cfg.sched, cfg.keep_alive) { routes(); }

  void note_tokens(const httplib::Request& req, int n) {
    std::lock_guard lk(log_mu);
    if (auto it = logs.find(&req); it != logs.end()) it->second.tokens = n;
  }

  uint64_t random_u64() {
    std::lock_guard lk(rng_mu);
    return rng();
  }

  // ---- generation plumbing ----

  // The parameters a request starts from: the table's defaults with the server's num_ctx and threads,
  // then the model's params layer (a bad value there is skipped with a warning).
  Parameters base_parameters(const LoadedModel& m) const {
    Parameters p = default_parameters();
    p.engine.num_ctx = cfg.num_ctx;
    p.engine.num_thread = cfg.num_threads;
    apply_parameters(p, parse_parameters(m.resolved.params, {}, [&](const std::string&, const std::string& msg) {
      std::fprintf(stderr, "warning: %s: model parameter ignored: %s\n", m.name.c_str(), msg.c_str());
    }));
    return p;
  }

  // The base overlaid by the request's options. num_ctx is per sequence and always honoured; threads and
  // batch size belong to the model's one engine, shared by every request, so a request may only repeat
  // them: a different value is a 400 that says so.
  Parameters request_parameters(const LoadedModel& m, const ParamList& req) const {
    Parameters p = base_parameters(m);
    for (const auto& [spec, v] : req) {
      if (spec->target != ParamTarget::Engine || spec->name == "num_ctx") continue;
      const int64_t want = std::get<int64_t>(v), have = std::get<int64_t>(spec->get(p));
      if (want != have && !(spec->name == "num_thread" && want == 0))
        throw HttpError(400, "option \"" + std::string(spec->name) + "\" is " + std::to_string(want) + " but model '" + m.name +
                                 "' runs with " + std::to_string(have) + " (set when the server starts, or in the model's parameters); "
                                 "its engine is shared by all requests");
    }
    apply_parameters(p, req);
    return p;
  }

  ContextParams context_params(const LoadedModel& m, const Parameters& par) const {
    ContextParams p;
    p.n_ctx = par.engine.num_ctx;
    const int model_max = m.model->config().context_length;
    if (model_max > 0 && p.n_ctx > model_max) {
      std::fprintf(stderr, "warning: %s: num_ctx %d is over the model's trained context; using %d\n", m.name.c_str(), p.n_ctx, model_max);
      p.n_ctx = model_max;
    }
    p.n_threads = par.engine.num_thread;
    p.n_batch = par.engine.num_batch;
    p.kv_type = KvType::F16;
    return p;
  }

  std::shared_ptr<Generation> submit(std::unique_ptr<ModelManager::Lease> lease, double load_s, Clock::time_point t0,
                                     BuiltPrompt prompt, const Parameters& ro, std::shared_ptr<const JsonSchema> schema,
                                     std::shared_ptr<Output> out) {
    auto g = std::make_shared<Generation>();
    g->job = std::make_shared<Job>();
    g->job->prompt = std::move(prompt.tokens);
    g->job->sampling = ro.sampling;
    g->job->ctx_params = context_params(**lease, ro);
    g->job->schema = std::move(schema);
    g->truncated = static_cast<int>(prompt.dropped_tokens + prompt.dropped_turns);
    if (g->truncated > 0)
      std::fprintf(stderr, "warning: prompt truncated to fit num_ctx %d: dropped %zu oldest message(s) and %zu token(s)\n",
                   g->job->ctx_params.n_ctx, prompt.dropped_turns, prompt.dropped_tokens);
    if (!(*lease)->sched->submit(g->job))
      throw HttpError(503, "server busy, please try again.  maximum pending requests exceeded");
    g->lease = std::move(lease);
    g->out = std::move(out);
    g->load_s = load_s;
    g->t0 = t0;
    return g;
  }

  void record_generation(const GenerateStats& st) {
    std::lock_guard lk(metrics.mu);
    metrics.tokens_generated += static_cast<uint64_t>(st.gen_tokens);
    metrics.prompt_tokens += static_cast<uint64_t>(st.prompt_tokens);
    metrics.eval_seconds += st.gen_s;
    if (st.gen_tokens > 1 && st.gen_s > 0) metrics.last_tokens_per_second = (st.gen_tokens - 1) / st.gen_s;
  }

  // A client went away mid-answer: stop its generation, wait for the scheduler to let go of it, and
  // account for what was generated.
  void cancel_and_wait(const httplib::Request& req, Generation& g) {
    g.job->cancel.store(true);
    std::string ignored;
    while (!g.job->wait(ignored, std::chrono::milliseconds(100))) {
    }
    record_generation(g.job->stats());
    note_tokens(req, g.job->stats().gen_tokens);
  }

  // Answers with the generation: streamed chunks, or one object when !stream. `openai` selects the error shape.
  void respond(const httplib::Request& req, httplib::Response& res, std::shared_ptr<Generation> g, bool stream, bool openai) {
    if (g->truncated > 0) res.set_header("X-G3n-Prompt-Truncated", std::to_string(g->truncated));
    const httplib::Request* reqp = &req;
    if (!stream) {
      // Short generations are answered as a plain JSON body with their real status. One still running
      // after cfg.sync_answer switches to a chunked 200 body: it writes a space (insignificant before a JSON
      // value) every probe_every, and a failed write means the client hung up, which cancels it.
      const auto probe_every = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(400), cfg.sync_answer);
      auto text = std::make_shared<std::string>();
      const auto sync_until = Clock::now() + cfg.sync_answer;
      bool done = false;
      while (!done && Clock::now() < sync_until) {
        std::string piece;
        done = g->job->wait(piece, std::chrono::milliseconds(100));
        *text += piece;
        if (!done && stopping.load()) g->job->cancel.store(true);
      }
      if (done) {
        const GenerateStats& st = g->job->stats();
        record_generation(st);
        note_tokens(req, st.gen_tokens);
        if (!g->job->error().empty()) {
          if (openai) set_openai_error(res, 500, g->job->error());
          else set_error(res, 500, g->job->error());
          return;
        }
        const double total = std::chrono::duration<double>(Clock::now() - g->t0).count();
        set_json(res, 200, g->out->whole(*text, st, g->load_s, total));
        return;
      }
      res.set_chunked_content_provider(
          kJsonType,
          [this, g, reqp, openai, text, probe_every](size_t, httplib::DataSink& sink) {
            auto probed = Clock::now();
            for (;;) {
              std::string piece;
              const bool finished = g->job->wait(piece, std::chrono::milliseconds(100));
              *text += piece;
              if (finished) break;
              if (stopping.load()) g->job->cancel.store(true);
              if (Clock::now() - probed >= probe_every) {
                probed = Clock::now();
                if (!sink.write(" ", 1)) {  // the client went away: stop generating for it
                  cancel_and_wait(*reqp, *g);
                  return false;
                }
              }
            }
            const GenerateStats& st = g->job->stats();
            record_generation(st);
            note_tokens(*reqp, st.gen_tokens);
            std::string body;
            if (!g->job->error().empty()) {  // the status is already 200: the error travels in the body
              body = dump(openai ? openai_error_body(500, g->job->error()) : json{{"error", g->job->error()}});
            } else {
              const double total = std::chrono::duration<double>(Clock::now() - g->t0).count();
              body = dump(g->out->whole(*text, st, g->load_s, total));
            }
            sink.write(body.data(), body.size());
            sink.done();
            return true;
          },
          [g](bool) { g->job->cancel.store(true); });  // response destroyed: nothing more is wanted
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        g->out->content_type(),
        [this, g, reqp](size_t, httplib::DataSink& sink) {
          for (;;) {
            std::string piece;
            const bool done = g->job->wait(piece, std::chrono::milliseconds(100));
            if (!piece.empty()) {
              const std::string c = g->out->chunk(piece);
              if (!sink.write(c.data(), c.size())) {  // the client went away: stop generating for it
                cancel_and_wait(*reqp, *g);
                return false;
              }
            } else if (!done && (!sink.is_writable() || stopping.load())) {
              cancel_and_wait(*reqp, *g);
              return false;
            }
            if (done) break;
          }
          const GenerateStats& st = g->job->stats();
          record_generation(st);
          note_tokens(*reqp, st.gen_tokens);
          const double total = std::chrono::duration<double>(Clock::now() - g->t0).count();
          const std::string tail =
              g->job->error().empty() ? g->out->last_chunks(st, g->load_s, total) : g->out->stream_error(g->job->error());
          sink.write(tail.data(), tail.size());
          sink.done();
          return true;
        },
        [g](bool) { g->job->cancel.store(true); });  // response destroyed: nothing more is wanted
  }

  // ---- Ollama API ----

  void generate(const httplib::Request& req, httplib::Response& res) {
    const auto t0 = Clock::now();
    const json body = parse_body(req);
    const std::string model = require_model(body);
    const std::string prompt = get_string(body, "prompt").value_or("");
    const auto system = get_string(body, "system");
    const auto suffix = get_string(body, "suffix");
    const auto tmpl = get_string(body, "template");
    const bool raw = get_bool(body, "raw").value_or(false);
    const bool stream = get_bool(body, "stream").value_or(true);
    const bool truncate = get_bool(body, "truncate").value_or(true);
    reject_images(body.value("images", json()));
    std::vector<int32_t> context;
    if (auto it = body.find("context"); it != body.end() && !it->is_null()) {
      if (!it->is_array()) throw HttpError(400, "invalid type for \"context\": expected an array of token ids");
      for (const auto& t : *it) {
        if (!t.is_number_integer()) throw HttpError(400, "invalid type for \"context\": expected an array of token ids");
        context.push_back(t.get<int32_t>());
      }
    }
    if (raw && (system || tmpl || !context.empty())) throw HttpError(400, "raw mode does not support template, system, or context");
    if (suffix && !suffix->empty()) throw HttpError(400, "\"" + model + "\" does not support insert");
    if (get_bool(body, "think").value_or(false)) throw HttpError(400, "\"" + model + "\" does not support thinking");
    auto schema = parse_format(body.value("format", json()));
    const ParamList options = parse_request_options(body.value("options", json()));
    double load_s = 0;
    auto lease = models.acquire(model, body.value("keep_alive", json()), &load_s);
    LoadedModel& m = **lease;
    const Parameters ro = request_parameters(m, options);
    if (prompt.empty() && context.empty()) {  // a load request, or an unload one with keep_alive 0
      const bool unload = asks_unload(body);
      set_json(res, 200, json{{"model", model}, {"created_at", rfc3339(SysClock::now())}, {"response", ""}, {"done", true},
                              {"done_reason", unload ? "unload" : "load"}});
      return;
    }
    for (int32_t t : context)
      if (t < 0 || t >= m.tok->n_vocab()) throw HttpError(400, "invalid token id in context: " + std::to_string(t));
    const ContextParams cp = context_params(m, ro);
    const std::optional<std::string> sys = system ? system : m.resolved.system;
    BuiltPrompt bp = build_generate_prompt(prompt, sys, raw, context, *m.tok, cp.n_ctx, truncate);
    auto out = std::make_shared<OllamaGenerateOutput>();
    out->model = model;
    out->with_context = !raw;
    out->prompt = bp.tokens;
    out->truncated = static_cast<int>(bp.dropped_tokens);
    auto g = submit(std::move(lease), load_s, t0, std::move(bp), ro, std::move(schema), out);
    respond(req, res, g, stream, false);
  }

  static std::vector<InMessage> ollama_messages(const json& body) {
    std::vector<InMessage> out;
    auto it = body.find("messages");
    if (it == body.end() || it->is_null()) return out;
    if (!it->is_array()) throw HttpError(400, "invalid type for \"messages\": expected an array");
    for (const auto& m : *it) {
      if (!m.is_object()) throw HttpError(400, "invalid message: expected an object");
      std::string role = get_string(m, "role").value_or("");
      std::transform(role.begin(), role.end(), role.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (role != "system" && role != "user" && role != "assistant" && role != "tool")
        throw HttpError(400, "invalid message role: \"" + role + "\"");
      InMessage im{role, get_string(m, "content").value_or("")};
      reject_images(m.value("images", json()));
      if (auto tc = m.find("tool_calls"); tc != m.end() && tc->is_array() && !tc->empty()) {
        // No tool format in Gemma: earlier calls are shown as the JSON the model was asked to write.
        for (const auto& c : *tc) {
          const json f = c.value("function", json::object());
          im.content += (im.content.empty() ? "" : "\n") +
                        dump(json{{"name", f.value("name", "")}, {"arguments", f.value("arguments", json::object())}});
        }
      }
      if (role == "tool") {
        const std::string name = m.value("tool_name", m.value("name", std::string()));
        im.content = "Result of tool " + (name.empty() ? std::string("call") : "\"" + name + "\"") + ":\n" + im.content;
      }
      out.push_back(std::move(im));
    }
    return out;
  }

  void chat(const httplib::Request& req, httplib::Response& res) {
    const auto t0 = Clock::now();
    const json body = parse_body(req);
    const std::string model = require_model(body);
    const bool stream = get_bool(body, "stream").value_or(true);
    const bool truncate = get_bool(body, "truncate").value_or(true);
    const std::vector<InMessage> messages = ollama_messages(body);
    const json tools = body.value("tools", json());
    if (!tools.is_null() && !tools.is_array()) throw HttpError(400, "invalid type for \"tools\": expected an array");
    if (get_bool(body, "think").value_or(false)) throw HttpError(400, "\"" + model + "\" does not support thinking");
    auto schema = parse_format(body.value("format", json()));
    const ParamList options = parse_request_options(body.value("options", json()));
    double load_s = 0;
    auto lease = models.acquire(model, body.value("keep_alive", json()), &load_s);
    LoadedModel& m = **lease;
    const Parameters ro = request_parameters(m, options);
    if (messages.empty()) {
      const bool unload = asks_unload(body);
      set_json(res, 200, json{{"model", model}, {"created_at", rfc3339(SysClock::now())},
                              {"message", {{"role", "assistant"}, {"content", ""}}}, {"done", true},
                              {"done_reason", unload ? "unload" : "load"}});
      return;
    }
    const ContextParams cp = context_params(m, ro);
    BuiltPrompt bp = build_chat_prompt(messages, m.resolved.system, tools, *m.tok, cp.n_ctx, truncate);
    auto out = std::make_shared<OllamaChatOutput>();
    out->model = model;
    out->truncated = static_cast<int>(bp.dropped_tokens + bp.dropped_turns);
    auto g = submit(std::move(lease), load_s, t0, std::move(bp), ro, std::move(schema), out);
    respond(req, res, g, stream, false);
  }

  json details_json(const store::ResolvedModel* r, const fs::path& gguf) const {
    json d{{"parent_model", ""}, {"format", "gguf"}, {"family", ""}, {"families", nullptr}, {"parameter_size", ""},
           {"quantization_level", ""}};
    if (r) {
      auto s = [&](const char* k) { return r->config.contains(k) && r->config[k].is_string() ? r->config[k].get<std::string>() : std::string(); };
      d["family"] = s("model_family");
      if (r->config.contains("model_families") && r->config["model_families"].is_array()) d["families"] = r->config["model_families"];
      d["parameter_size"] = s("model_type");
      d["quantization_level"] = s("file_type");
      if (const auto* layer = r->manifest.find_layer(store::media::kModel)) d["parent_model"] = layer->from;
    }
    if (d["family"] == "" || d["parameter_size"] == "" || d["quantization_level"] == "") {
      if (auto sum = store::summarize_gguf(gguf)) {
        if (d["family"] == "") d["family"] = sum->architecture;
        if (d["parameter_size"] == "" && sum->parameter_count) d["parameter_size"] = store::human_parameter_count(sum->parameter_count);
        if (d["quantization_level"] == "") d["quantization_level"] = sum->quantization;
      }
    }
    if (d["families"].is_null() && d["family"] != "") d["families"] = json::array({d["family"]});
    return d;
  }

  void tags(const httplib::Request&, httplib::Response& res) {
    store::ModelStore st(cfg.store);
    json models_json = json::array();
    for (const auto& e : st.list()) {
      try {
        const store::ResolvedModel r = st.resolve(e.name);
        models_json.push_back(json{{"name", e.name.display()},
                                   {"model", e.name.display()},
                                   {"modified_at", rfc3339(to_sys(e.modified))},
                                   {"size", e.size},
                                   {"digest", store::sha256_file_hex(r.manifest_path)},
                                   {"details", details_json(&r, r.model_path)}});
      } catch (const std::exception& ex) {  // an incomplete model is left out, as Ollama does
        std::fprintf(stderr, "warning: %s: %s\n", e.name.display().c_str(), ex.what());
      }
    }
    set_json(res, 200, json{{"models", models_json}});
  }

  void show(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    const std::string name = require_model(body);
    const bool verbose = get_bool(body, "verbose").value_or(false);
    const registry::ResolveResult r = models.resolve(name);
    const store::ResolvedModel* rm = r.model ? &*r.model : nullptr;
    json j;
    std::string params;
    for (auto it = r.params.begin(); it != r.params.end(); ++it) {
      auto line = [&](const json& v) {
        char key[64];
        std::snprintf(key, sizeof key, "%-30s ", it.key().c_str());
        params += key + param_line_value(v) + "\n";
      };
      if (it->is_array()) for (const auto& v : *it) line(v);
      else line(*it);
    }
    if (!params.empty()) params.pop_back();
    std::string license;
    for (const auto& l : r.licenses) license += (license.empty() ? "" : "\n") + l;
    std::string mf = "# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM " +
                     (rm ? rm->name.display() : name) + "\n\nFROM " + r.gguf_path.string() + "\n";
    if (r.template_text) mf += "TEMPLATE \"\"\"" + *r.template_text + "\"\"\"\n";
    const std::optional<std::string> system = get_string(body, "system") ? get_string(body, "system") : r.system;
    if (system) mf += "SYSTEM \"\"\"" + *system + "\"\"\"\n";
    for (auto it = r.params.begin(); it != r.params.end(); ++it) {
      auto line = [&](const json& v) { mf += "PARAMETER " + it.key() + " " + (v.is_string() ? v.get<std::string>() : v.dump()) + "\n"; };
      if (it->is_array()) for (const auto& v : *it) line(v);
      else line(*it);
    }
    for (const auto& l : r.licenses) mf += "LICENSE \"\"\"" + l + "\"\"\"\n";
    if (!license.empty()) j["license"] = license;
    j["modelfile"] = mf;
    if (!params.empty()) j["parameters"] = params;
    j["template"] = r.template_text.value_or("{{ .Prompt }}");
    if (system && !system->empty()) j["system"] = *system;
    j["details"] = details_json(rm, r.gguf_path);
    if (!r.messages.empty()) j["messages"] = r.messages;
    j["capabilities"] = json::array({"completion"});
    std::error_code ec;
    const auto mtime = rm ? fs::last_write_time(rm->manifest_path, ec) : fs::last_write_time(r.gguf_path, ec);
    if (!ec) j["modified_at"] = rfc3339(to_sys(mtime));
    try {
      const GgufFile f = GgufFile::open(r.gguf_path.string());
      json info = json::object();
      for (const auto& kv : f.metadata()) {
        if (kv.key == "general.name" || kv.key == "tokenizer.chat_template") continue;
        info[kv.key] = gguf_value_json(kv.value, verbose);
      }
      int64_t params_count = 0;
      json tensors = json::array();
      for (const auto& t : f.tensors()) {
        params_count += t.n_elements();
        if (verbose) tensors.push_back(json{{"name", t.name}, {"type", std::string(ggml_type_traits(t.type).name)}, {"shape", t.ne}});
      }
      if (!info.contains("general.parameter_count")) info["general.parameter_count"] = params_count;
      j["model_info"] = info;
      if (verbose) j["tensors"] = tensors;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "warning: %s: cannot read GGUF metadata: %s\n", name.c_str(), e.what());
    }
    set_json(res, 200, j);
  }

  void pull(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    const std::string name = require_model(body);
    const bool stream = get_bool(body, "stream").value_or(true);
    const bool insecure = get_bool(body, "insecure").value_or(false);
    store::ModelName mn;
    if (!store::try_parse_model_name(name, &mn)) throw HttpError(400, "invalid model name");
    auto progress_json = [](const registry::PullProgress& p) {
      json j{{"status", p.status}};
      if (!p.digest.empty()) j["digest"] = p.digest;
      if (p.total) j["total"] = p.total;
      if (p.completed) j["completed"] = p.completed;
      return j;
    };
    if (!stream) {
      try {
        store::ModelStore st(cfg.store);
        registry::RegistryOptions ro;
        ro.insecure = insecure;
        ro.cancelled = [this] { return stopping.load(); };
        registry::RegistryClient(st, ro).pull(mn, {});
        set_json(res, 200, json{{"status", "success"}});
      } catch (const std::exception& e) {
        set_error(res, 500, e.what());
      }
      return;
    }
    res.set_chunked_content_provider("application/x-ndjson", [this, mn, insecure, progress_json](size_t, httplib::DataSink& sink) {
      bool gone = false;
      auto write = [&](const json& j) {
        if (gone) return;
        const std::string line = dump(j) + "\n";
        if (!sink.write(line.data(), line.size())) gone = true;
      };
      try {
        store::ModelStore st(cfg.store);
        registry::RegistryOptions ro;
        ro.insecure = insecure;
        ro.cancelled = [&] { return gone || stopping.load(); };
        registry::RegistryClient(st, ro).pull(mn, [&](const registry::PullProgress& p) { write(progress_json(p)); });
      } catch (const std::exception& e) {
        write(json{{"error", e.what()}});  // in-band, as Ollama does once the stream has started
      }
      if (gone) return false;
      sink.done();
      return true;
    });
  }

  void remove(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    const std::string name = require_model(body);
    store::ModelName mn;
    if (!store::try_parse_model_name(name, &mn)) throw HttpError(400, "name \"" + name + "\" is invalid");
    store::ModelStore st(cfg.store);
    const auto found = st.find_manifest(mn);
    if (!found || found->from_ollama) throw HttpError(404, "model '" + name + "' not found");
    models.unload(name);
    st.remove(mn);
    res.status = 200;
  }

  void copy(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    const std::string src = get_string(body, "source").value_or("");
    const std::string dst = get_string(body, "destination").value_or("");
    store::ModelName s, d;
    if (!store::try_parse_model_name(src, &s)) throw HttpError(400, "source \"" + src + "\" is invalid");
    if (!store::try_parse_model_name(dst, &d)) throw HttpError(400, "destination \"" + dst + "\" is invalid");
    store::ModelStore st(cfg.store);
    if (!st.find_manifest(s)) throw HttpError(404, "model \"" + src + "\" not found");
    st.copy(s, d);
    res.status = 200;
  }

  void ps(const httplib::Request&, httplib::Response& res) {
    json list = json::array();
    std::vector<std::pair<SysClock::time_point, json>> rows;
    for (const auto& m : models.loaded()) {
      const SysClock::time_point exp = models.expires_at(*m);
      std::string digest;
      if (m->resolved.model) {
        try { digest = store::sha256_file_hex(m->resolved.model->manifest_path); } catch (...) {}
      }
      const int64_t size = m->file_size + static_cast<int64_t>(m->sched->kv_bytes());
      rows.emplace_back(exp, json{{"name", m->name}, {"model", m->name}, {"size", size}, {"digest", digest},
                                  {"details", details_json(m->resolved.model ? &*m->resolved.model : nullptr, m->resolved.gguf_path)},
                                  {"expires_at", rfc3339(exp)}, {"size_vram", 0}, {"context_length", cfg.num_ctx}});
    }
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (auto& r : rows) list.push_back(std::move(r.second));
    set_json(res, 200, json{{"models", list}});
  }

  // ---- OpenAI API ----

  // The OpenAI fields as Ollama options, checked by the same table.
  static ParamList openai_options(const json& body) {
    json o = json::object();
    o["temperature"] = body.contains("temperature") && !body["temperature"].is_null() ? body["temperature"] : json(1.0);
    o["top_p"] = body.contains("top_p") && !body["top_p"].is_null() ? body["top_p"] : json(1.0);
    for (const char* k : {"seed", "frequency_penalty", "presence_penalty", "stop"})
      if (body.contains(k) && !body[k].is_null()) o[k] = body[k];
    for (const char* k : {"max_tokens", "max_completion_tokens"})
      if (body.contains(k) && !body[k].is_null()) o["num_predict"] = body[k];
    return parse_request_options(o);
  }

  static std::shared_ptr<const JsonSchema> openai_format(const json& body) {
    const json rf = body.value("response_format", json());
    if (rf.is_null()) return nullptr;
    if (!rf.is_object()) throw HttpError(400, "invalid response_format: expected an object");
    const std::string type = rf.value("type", std::string("text"));
    if (type == "text") return nullptr;
    if (type == "json_object") return JsonSchema::any_object();
    if (type == "json_schema") {
      const json js = rf.value("json_schema", json());
      if (!js.is_object() || !js.contains("schema") || !js["schema"].is_object())
        throw HttpError(400, "invalid response_format: json_schema.schema must be an object");
      return parse_format(js["schema"]);
    }
    throw HttpError(400, "invalid response_format type: \"" + type + "\"");
  }

  static std::vector<InMessage> openai_messages(const json& body) {
    auto it = body.find("messages");
    if (it == body.end() || !it->is_array()) throw HttpError(400, "invalid type for \"messages\": expected an array");
    if (it->empty()) throw HttpError(400, "[] is too short - 'messages'");
    std::vector<InMessage> out;
    std::map<std::string, std::string> call_names;  // tool_call_id -> function name
    for (const auto& m : *it) {
      if (!m.is_object()) throw HttpError(400, "invalid message: expected an object");
      std::string role = get_string(m, "role").value_or("");
      if (role == "developer") role = "system";
      if (role != "system" && role != "user" && role != "assistant" && role != "tool")
        throw HttpError(400, "invalid message role: \"" + role + "\"");
      std::string content;
      const json c = m.value("content", json());
      if (c.is_string()) content = c.get<std::string>();
      else if (c.is_array()) {
        for (const auto& part : c) {
          const std::string type = part.is_object() ? part.value("type", std::string()) : std::string();
          if (type == "text") content += (content.empty() ? "" : "\n") + part.value("text", std::string());
          else if (type == "image_url") throw HttpError(400, "images are not supported: g3n serves Gemma 3n's text model only");
          else throw HttpError(400, "invalid message content part type: \"" + type + "\"");
        }
      } else if (!c.is_null()) throw HttpError(400, "invalid message content: expected a string or an array of parts");
      if (auto tc = m.find("tool_calls"); tc != m.end() && tc->is_array()) {
        for (const auto& call : *tc) {
          const json f = call.value("function", json::object());
          json args = json::object();
          if (f.contains("arguments") && f["arguments"].is_string()) {
            try { args = json::parse(f["arguments"].get<std::string>()); } catch (...) { throw HttpError(400, "invalid tool call arguments"); }
          }
          call_names[call.value("id", std::string())] = f.value("name", std::string());
          content += (content.empty() ? "" : "\n") + dump(json{{"name", f.value("name", "")}, {"arguments", args}});
        }
      } else if (c.is_null() && role != "assistant") {
        throw HttpError(400, "invalid message content: null is only allowed with tool_calls");
      }
      if (role == "tool") {
        std::string name = m.value("name", std::string());
        if (name.empty()) name = call_names[m.value("tool_call_id", std::string())];
        content = "Result of tool " + (name.empty() ? std::string("call") : "\"" + name + "\"") + ":\n" + content;
      }
      out.push_back({role, content});
    }
    return out;
  }

  std::string openai_id(const char* prefix) { return std::string(prefix) + std::to_string(random_u64() % 1000000); }

  void openai_chat(const httplib::Request& req, httplib::Response& res) {
    const auto t0 = Clock::now();
    const json body = parse_body(req);
    const std::string model = get_string(body, "model").value_or("");
    if (model.empty()) throw HttpError(400, "model is required");
    const std::vector<InMessage> messages = openai_messages(body);
    const bool stream = get_bool(body, "stream").value_or(false);
    auto schema = openai_format(body);
    const json tools = body.value("tools", json());
    const ParamList options = openai_options(body);
    double load_s = 0;
    auto lease = models.acquire(model, body.value("keep_alive", json()), &load_s);
    LoadedModel& m = **lease;
    const Parameters ro = request_parameters(m, options);
    const ContextParams cp = context_params(m, ro);
    BuiltPrompt bp = build_chat_prompt(messages, m.resolved.system, tools.is_array() ? tools : json(), *m.tok, cp.n_ctx, true);
    auto out = openai_output(body, model, /*chat=*/true);
    auto g = submit(std::move(lease), load_s, t0, std::move(bp), ro, std::move(schema), out);
    respond(req, res, g, stream, true);
  }

  // The response writer shared by /v1/chat/completions and /v1/completions.
  std::shared_ptr<OpenAIChatOutput> openai_output(const json& body, const std::string& model, bool chat) {
    auto out = std::make_shared<OpenAIChatOutput>();
    out->chat = chat;
    out->model = model;
    out->id = openai_id(chat ? "chatcmpl-" : "cmpl-");
    out->created = static_cast<int64_t>(std::time(nullptr));
    out->include_usage = body.contains("stream_options") && body["stream_options"].is_object() &&
                         body["stream_options"].value("include_usage", false);
    return out;
  }

  void openai_completions(const httplib::Request& req, httplib::Response& res) {
    const auto t0 = Clock::now();
    const json body = parse_body(req);
    const std::string model = get_string(body, "model").value_or("");
    if (model.empty()) throw HttpError(400, "model is required");
    std::string prompt;
    const json p = body.value("prompt", json());
    if (p.is_string()) prompt = p.get<std::string>();
    else if (p.is_array() && p.size() == 1 && p[0].is_string()) prompt = p[0].get<std::string>();
    else throw HttpError(400, "invalid type for \"prompt\": expected a string");
    if (body.contains("suffix") && body["suffix"].is_string() && !body["suffix"].get<std::string>().empty())
      throw HttpError(400, "\"" + model + "\" does not support insert");
    if (body.contains("stop") && body["stop"].is_array())
      for (const auto& s : body["stop"])
        if (!s.is_string()) throw HttpError(400, "invalid type for \"stop\": expected strings");
    const bool stream = get_bool(body, "stream").value_or(false);
    auto schema = openai_format(body);
    const ParamList options = openai_options(body);
    double load_s = 0;
    auto lease = models.acquire(model, body.value("keep_alive", json()), &load_s);
    LoadedModel& m = **lease;
    const Parameters ro = request_parameters(m, options);
    const ContextParams cp = context_params(m, ro);
    BuiltPrompt bp = build_generate_prompt(prompt, m.resolved.system, false, {}, *m.tok, cp.n_ctx, true);
    auto out = openai_output(body, model, /*chat=*/false);
    auto g = submit(std::move(lease), load_s, t0, std::move(bp), ro, std::move(schema), out);
    respond(req, res, g, stream, true);
  }

  void openai_models(const httplib::Request& req, httplib::Response& res) {
    store::ModelStore st(cfg.store);
    json data = json::array();
    const std::string wanted = req.matches.size() > 1 ? std::string(req.matches[1]) : std::string();
    for (const auto& e : st.list()) {
      json m{{"id", e.name.display()}, {"object", "model"},
             {"created", std::chrono::duration_cast<std::chrono::seconds>(to_sys(e.modified).time_since_epoch()).count()},
             {"owned_by", e.name.ns}};
      if (!wanted.empty()) {
        store::ModelName w;
        if (store::try_parse_model_name(wanted, &w) && w.same_as(e.name)) {
          m["id"] = wanted;
          set_json(res, 200, m);
          return;
        }
        continue;
      }
      data.push_back(m);
    }
    if (!wanted.empty()) throw HttpError(404, "model '" + wanted + "' not found");
    set_json(res, 200, json{{"object", "list"}, {"data", data}});
  }

  std::string metrics_text() {
    std::string o;
    char buf[1024];
    {
      std::lock_guard lk(metrics.mu);
      o += "# HELP g3n_requests_total HTTP requests by path and status.\n# TYPE g3n_requests_total counter\n";
      for (const auto& [k, n] : metrics.requests) {
        std::snprintf(buf, sizeof buf, "g3n_requests_total{path=\"%s\",status=\"%d\"} %llu\n", k.first.c_str(), k.second,
                      static_cast<unsigned long long>(n));
        o += buf;
      }
      o += "# HELP g3n_request_duration_seconds_total Time spent serving requests, by path.\n"
           "# TYPE g3n_request_duration_seconds_total counter\n";
      for (const auto& [k, s] : metrics.seconds) {
        std::snprintf(buf, sizeof buf, "g3n_request_duration_seconds_total{path=\"%s\"} %.6f\n", k.c_str(), s);
        o += buf;
      }
      std::snprintf(buf, sizeof buf,
                    "# HELP g3n_tokens_generated_total Tokens sampled for all requests.\n# TYPE g3n_tokens_generated_total counter\n"
                    "g3n_tokens_generated_total %llu\n"
                    "# HELP g3n_prompt_tokens_total Prompt tokens of all requests.\n# TYPE g3n_prompt_tokens_total counter\n"
                    "g3n_prompt_tokens_total %llu\n",
                    static_cast<unsigned long long>(metrics.tokens_generated), static_cast<unsigned long long>(metrics.prompt_tokens));
      o += buf;
      std::snprintf(buf, sizeof buf,
                    "# HELP g3n_eval_seconds_total Time spent generating tokens, summed over requests.\n"
                    "# TYPE g3n_eval_seconds_total counter\ng3n_eval_seconds_total %.6f\n"
                    "# HELP g3n_tokens_per_second Generation rate of the last finished request.\n"
                    "# TYPE g3n_tokens_per_second gauge\ng3n_tokens_per_second %.3f\n",
                    metrics.eval_seconds, metrics.last_tokens_per_second);
      o += buf;
    }
    std::snprintf(buf, sizeof buf,
                  "# HELP g3n_queue_depth Requests waiting for a slot.\n# TYPE g3n_queue_depth gauge\ng3n_queue_depth %d\n"
                  "# HELP g3n_active_requests Requests generating now.\n# TYPE g3n_active_requests gauge\ng3n_active_requests %d\n"
                  "# HELP g3n_loaded_models Models in memory.\n# TYPE g3n_loaded_models gauge\ng3n_loaded_models %zu\n",
                  models.queued(), models.active(), models.loaded().size());
    o += buf;
    return o;
  }

  // ---- routing ----

  static const std::set<std::string>& known_paths() {
    static const std::set<std::string> k = {"/", "/api/generate", "/api/chat", "/api/tags", "/api/show", "/api/pull",
                                            "/api/delete", "/api/copy", "/api/ps", "/api/version", "/v1/chat/completions",
                                            "/v1/completions", "/v1/models", "/metrics"};
    return k;
  }

  static std::string metric_path(const std::string& path) {
    if (known_paths().count(path)) return path;
    if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{model}";
    return "other";
  }

  using Handler = void (Impl::*)(const httplib::Request&, httplib::Response&);

  // Every handler runs inside this: errors become JSON with the right status, never a crash.
  httplib::Server::Handler wrap(Handler h, bool openai) {
    return [this, h, openai](const httplib::Request& req, httplib::Response& res) {
      auto fail = [&](int status, const std::string& msg) {
        if (openai) set_openai_error(res, status, msg);
        else set_error(res, status, msg);
      };
      try {
        (this->*h)(req, res);
      } catch (const HttpError& e) {
        fail(e.status(), e.what());
      } catch (const ModelNotFound& e) {
        fail(404, e.what());
      } catch (const store::NameError& e) {
        fail(400, e.what());
      } catch (const store::StoreError& e) {
        fail(500, e.what());
      } catch (const std::bad_alloc&) {
        fail(500, "out of memory");
      } catch (const std::exception& e) {
        fail(500, e.what());
      }
    };
  }

  void routes() {
    http.set_payload_max_length(cfg.max_body_bytes);
    const size_t threads = static_cast<size_t>(std::max(32, cfg.sched.num_parallel + cfg.sched.max_queue + 16));
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lk(log_mu);
        logs[&req] = RequestLog{Clock::now(), 0};
      }
      if (req.method == "OPTIONS") {  // CORS preflight
        res.set_header("Access-Control-Allow-Origin", req.get_header_value("Origin").empty() ? "*" : req.get_header_value("Origin"));
        res.set_header("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS");
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type, User-Agent, Accept, X-Requested-With, OpenAI-Beta, x-stainless-arch, x-stainless-async, x-stainless-custom-poll-interval, x-stainless-helper-method, x-stainless-lang, x-stainless-os, x-stainless-package-version, x-stainless-poll-helper, x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout");
        res.status = 204;
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty() || res.is_chunked_content_provider_) return;  // a handler already answered
      if (res.status == 404 && known_paths().count(req.path)) {
        res.status = 405;
        set_error(res, 405, "method " + req.method + " not allowed for " + req.path);
      } else if (res.status == 404) {
        res.set_content("404 page not found", "text/plain");
      } else if (res.status == 413) {
        set_error(res, 413, "request body too large (limit " + std::to_string(cfg.max_body_bytes >> 20) + " MiB)");
      } else {
        set_error(res, res.status, "request failed with status " + std::to_string(res.status));
      }
    });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        set_error(res, 500, e.what());
        return;
      } catch (...) {
      }
      set_error(res, 500, "internal error");
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      RequestLog rl{Clock::now(), 0};
      {
        std::lock_guard lk(log_mu);
        if (auto it = logs.find(&req); it != logs.end()) {
          rl = it->second;
          logs.erase(it);
        }
      }
      const double secs = std::chrono::duration<double>(Clock::now() - rl.t0).count();
      const std::string path = metric_path(req.path);
      {
        std::lock_guard lk(metrics.mu);
        ++metrics.requests[{path, res.status}];
        metrics.seconds[path] += secs;
      }
      if (cfg.log_requests)
        std::fprintf(stderr, "[g3n] %s %s %d tokens=%d %.3fs\n", req.method.c_str(), req.path.c_str(), res.status, rl.tokens, secs);
    });

    auto running = [](const httplib::Request&, httplib::Response& res) { res.set_content("Ollama is running", "text/plain; charset=utf-8"); };
    http.Get("/", running);
    http.Get("/api/version", [](const httplib::Request&, httplib::Response& res) { set_json(res, 200, json{{"version", kVersion}}); });
    http.Post("/api/generate", wrap(&Impl::generate, false));
    http.Post("/api/chat", wrap(&Impl::chat, false));
    http.Get("/api/tags", wrap(&Impl::tags, false));
    http.Post("/api/show", wrap(&Impl::show, false));
    http.Post("/api/pull", wrap(&Impl::pull, false));
    http.Delete("/api/delete", wrap(&Impl::remove, false));
    http.Post("/api/copy", wrap(&Impl::copy, false));
    http.Get("/api/ps", wrap(&Impl::ps, false));
    http.Post("/v1/chat/completions", wrap(&Impl::openai_chat, true));
    http.Post("/v1/completions", wrap(&Impl::openai_completions, true));
    http.Get("/v1/models", wrap(&Impl::openai_models, true));
    http.Get(R"(/v1/models/(.+))", wrap(&Impl::openai_models, true));
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
    });
  }
};

Server::Server(ServerConfig cfg) : impl_(std::make_unique<Impl>(std::move(cfg))) {
  // A client that disconnects mid-stream must cost an error code, not the process.
  ::signal(SIGPIPE, SIG_IGN);
}

Server::~Server() { stop(); }

int Server::bind() {
  Impl& s = *impl_;
  if (s.cfg.port == 0) {
    s.port = s.http.bind_to_any_port(s.cfg.host);
    if (s.port <= 0) throw std::runtime_error("cannot listen on " + s.cfg.host);
  } else {
    if (!s.http.bind_to_port(s.cfg.host, s.cfg.port))
      throw std::runtime_error("cannot listen on " + s.cfg.host + ":" + std::to_string(s.cfg.port) + " (is another server running?)");
    s.port = s.cfg.port;
  }
  return s.port;
}

void Server::serve() { impl_->http.listen_after_bind(); }

int Server::start() {
  const int port = bind();
  impl_->thread = std::thread([this] { serve(); });
  // httplib's stop() is a no-op until the accept loop runs: wait for it so a quick stop() cannot be lost.
  while (!impl_->http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return port;
}

void Server::stop() {
  if (!impl_) return;
  impl_->stopping.store(true);
  impl_->http.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace g3n::server
