// libFuzzer target for the HTTP API: arbitrary requests (method, path, headers, JSON or multipart bodies)
// through the server's route table and handlers in-process (Server::handle), against a store in a temp
// dir holding the tiny fixture model three ways, loaded once: "tiny" (text), "seeing" (with the vision
// projector) and "hearing" (with the audio projector; also the /v1/audio model).
// Input framing, like HTTP/1.1 without the version:
//   METHOD PATH\n  then "Name: value\n" headers, an empty line, then the body. The body may end with
//   multipart parts, each "\n--part\n" + name "\n" filename "\n" content type "\n" content (they replace
//   the body, as a parsed form does). The header "X-Fuzz-Drop: N" makes the client hang up after N chunks
//   of a streamed answer (and report itself gone from then on).
// What the harness changes, so that each input runs fast and the state stays the same: a JSON-object
// body gets a small num_predict / max_tokens (n at most 2, num_ctx at most 1024), its keep_alive (parsed
// first, as the server would) becomes forever, and any model the input deleted or copied is put back or
// removed afterwards. /api/pull is only parsed (parse_pull): it would reach for the network.
// Properties checked (a failure is a bug): no crash or sanitizer report; every status is 100..599; a
// whole JSON answer is valid JSON; every line of an NDJSON stream and every SSE "data:" is valid JSON.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "http_fuzz_request.h"
#include "server/http_types.h"
#include "server/options.h"
#include "server/requests.h"
#include "server/server.h"
#include "store/file_util.h"
#include "store/model_store.h"
#include "store/modelfile.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace g3n;

namespace {

struct Harness {
  fs::path root;
  std::unique_ptr<server::Server> server;
  std::map<fs::path, std::string> manifests;  // the store's manifests as created: restored after each input
};

Harness* h = nullptr;

std::string fixtures() {
  const char* dir = std::getenv("G3N_FIXTURES_DIR");
  return dir && *dir ? dir : "../shared/fixtures";
}

void create(store::ModelStore& st, const char* name, const std::string& projector) {
  store::Modelfile mf;
  mf.from = fixtures() + "/gemma3n-tiny/models/gemma3n-tiny-q4_k_m.gguf";
  if (!projector.empty()) mf.extra_from.push_back(projector);
  mf.params = json{{"stop", json::array({"<end_of_turn>"})}};
  mf.system = "You are terse.";
  store::create_model(st, store::parse_model_name(name), mf, fs::current_path(), [](const std::string&) {});
}

std::map<fs::path, std::string> read_manifests(const fs::path& dir) {
  std::map<fs::path, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec)) out[it->path()] = store::read_file(it->path());
  return out;
}

// Puts back a deleted model and removes copies, so every input meets the same store.
void restore_store() {
  const fs::path dir = h->root / "manifests";
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec) && !h->manifests.count(it->path())) fs::remove(it->path(), ec);
  for (const auto& [path, bytes] : h->manifests) {
    if (fs::exists(path, ec)) continue;
    fs::create_directories(path.parent_path(), ec);
    std::ofstream(path, std::ios::binary) << bytes;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  h = new Harness;
  h->root = fs::temp_directory_path() / ("g3n-http-fuzz-" + std::to_string(getpid()));
  fs::create_directories(h->root);
  server::ServerConfig cfg;
  cfg.port = 0;
  cfg.store.root = h->root;
  cfg.store.ollama_root.reset();
  cfg.store.prune = false;  // a deleted model's blobs stay for restore_store
  cfg.sched.num_parallel = 2;
  cfg.sched.max_queue = 4;
  cfg.keep_alive.reset();  // loaded once, never unloaded
  cfg.num_ctx = 512;  // room for an image (258 rows) or a 30 s audio block (190) beside the text
  cfg.num_threads = 1;
  cfg.log_requests = false;
  cfg.sync_answer = std::chrono::seconds(60);  // whole answers are whole bodies
  cfg.transcribe_model = "hearing";
  store::ModelStore st(cfg.store);
  create(st, "tiny", "");
  create(st, "seeing", fixtures() + "/gemma3n-vision-tiny/models/gemma3n-vision-tiny-mmproj-f16.gguf");
  create(st, "hearing", fixtures() + "/gemma3n-audio-tiny/models/gemma3n-audio-tiny-mmproj-f16.gguf");
  h->manifests = read_manifests(h->root / "manifests");
  h->server = std::make_unique<server::Server>(cfg);
  for (const char* m : {"tiny", "seeing", "hearing"}) {  // load each model now, not in the first timed input
    server::HttpRequest req;
    req.method = "POST";
    req.path = "/api/generate";
    req.body = json{{"model", m}, {"prompt", "Hi"}, {"stream", false}, {"options", {{"num_predict", 1}}}}.dump();
    const server::HttpResponse res = h->server->handle(req);
    if (res.status != 200) {
      std::fprintf(stderr, "http_fuzz: warm-up of %s failed: %d %s\n", m, res.status, res.body.c_str());
      std::abort();
    }
  }
  std::atexit([] {
    h->server.reset();
    std::error_code ec;
    fs::remove_all(h->root, ec);
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  long drop = -1;
  server::HttpRequest req = http_fuzz::frame(std::string_view(reinterpret_cast<const char*>(data), size), drop);
  json body = json::parse(req.body, nullptr, false);
  if (body.is_object()) {
    http_fuzz::bound(body, req.path);
    req.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  if (req.path == "/api/pull") {
    try {
      (void)server::parse_pull(server::parse_json_body(req.body));
    } catch (const std::exception&) {
    }
    return 0;
  }
  auto sink = std::make_shared<http_fuzz::Sink>(drop);
  req.client_gone = [sink] { return sink->gone(); };
  server::HttpResponse res = h->server->handle(std::move(req));
  if (res.status < 100 || res.status > 599) __builtin_trap();
  std::string text = res.body;
  if (res.stream) {
    res.stream(*sink);
    text = sink->text;
  }
  if (res.on_close) res.on_close();
  if (std::getenv("G3N_FUZZ_VERBOSE"))  // replaying by hand: what each input was answered
    std::fprintf(stderr, "http_fuzz: %d %s\n", res.status, text.substr(0, 300).c_str());
  const std::string& ct = res.content_type;
  if (ct.rfind("application/json", 0) == 0 && !text.empty() && !sink->gone() && !json::accept(text)) __builtin_trap();
  if (ct.rfind("application/x-ndjson", 0) == 0 && !http_fuzz::valid_lines(text, false)) __builtin_trap();
  if (ct.rfind("text/event-stream", 0) == 0 && !http_fuzz::valid_lines(text, true)) __builtin_trap();
  restore_store();
  return 0;
}
