// The server suites' shared fixture: `g3n serve` in process on a random loopback port, with a store of
// its own holding the tiny fixture model as "tiny", and the helpers every suite uses to talk to it.
#pragma once
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/http.h"
#include "server/server.h"
#include "store/model_store.h"
#include "store/modelfile.h"

namespace g3n::test {

inline const std::string kTinyModel = std::string(G3N_FIXTURES_DIR) + "/gemma3n-tiny/models/gemma3n-tiny-q4_k_m.gguf";

// What a suite's server starts with (ServerTest::setup()).
struct ServerSetup {
  int parallel = 2;   // G3N_NUM_PARALLEL
  int queue = 16;     // G3N_MAX_QUEUE
  int num_ctx = 512;
  std::chrono::milliseconds sync_answer{1500};
  size_t max_body_bytes = 32u << 20;
  std::function<void(const std::atomic<bool>&)> before_image_encode;
  std::string transcribe_model;
  // The Modelfile fields "tiny" is made with (none: the fixture as it is).
  nlohmann::json params = nlohmann::json::object();
  std::optional<std::string> system;
};

class ServerTest : public ::testing::Test {
 protected:
  // The suite's server; SetUp starts it with this.
  virtual ServerSetup setup() const { return {}; }
  void SetUp() override { start(setup()); }
  void TearDown() override { stop(); }

  // Stops the running server, if any, and starts one on a new store holding "tiny".
  void start(const ServerSetup& s) {
    stop();
    std::random_device rd;
    root_ = std::filesystem::temp_directory_path() / ("g3n-server-test-" + std::to_string(rd()));
    std::filesystem::create_directories(root_);
    server::ServerConfig cfg;
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.store = test_store().config();
    cfg.sched.num_parallel = s.parallel;
    cfg.sched.max_queue = s.queue;
    cfg.num_ctx = s.num_ctx;
    cfg.num_threads = 1;
    cfg.log_requests = false;
    cfg.sync_answer = s.sync_answer;
    cfg.max_body_bytes = s.max_body_bytes;
    cfg.before_image_encode = s.before_image_encode;
    cfg.transcribe_model = s.transcribe_model;
    store::Modelfile mf;
    mf.from = kTinyModel;
    mf.params = s.params;
    mf.system = s.system;
    add_model("tiny", mf);
    srv_ = std::make_unique<server::Server>(cfg);
    port_ = srv_->start();
  }
  // Stops the server and removes its store.
  void stop() {
    srv_.reset();
    std::error_code ec;
    if (!root_.empty()) std::filesystem::remove_all(root_, ec);
    root_.clear();
  }

  // The server's store, for tests that add models while it runs.
  store::ModelStore test_store() const {
    store::StoreConfig sc;
    sc.root = root_;
    sc.ollama_root.reset();
    return store::ModelStore(sc);
  }
  void add_model(const std::string& name, const store::Modelfile& mf) const {
    store::ModelStore st = test_store();
    store::create_model(st, store::parse_model_name(name), mf, std::filesystem::current_path(), [](const std::string&) {});
  }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120, 0);
    c.set_write_timeout(120, 0);
    return c;
  }
  // POST a JSON body; the status and the answer parsed (discarded when it is not JSON; status 0: no answer).
  std::pair<int, nlohmann::json> post(const std::string& path, const nlohmann::json& body) const {
    auto [status, text] = post_raw(path, body.dump());
    return {status, nlohmann::json::parse(text, nullptr, false)};
  }
  // POST a JSON body; the status and the answer's text (NDJSON or SSE when streamed).
  std::pair<int, std::string> post_text(const std::string& path, const nlohmann::json& body) const { return post_raw(path, body.dump()); }
  // POST any body as application/json.
  std::pair<int, std::string> post_raw(const std::string& path, const std::string& body) const {
    auto r = client().Post(path.c_str(), body, "application/json");
    if (!r) return {0, ""};
    return {r->status, r->body};
  }
  std::pair<int, nlohmann::json> get(const std::string& path) const {
    auto r = client().Get(path.c_str());
    if (!r) return {0, nullptr};
    return {r->status, nlohmann::json::parse(r->body, nullptr, false)};
  }
  // The objects of an NDJSON body, or of an SSE body's data lines ([DONE] left out).
  static std::vector<nlohmann::json> lines(const std::string& text) {
    std::vector<nlohmann::json> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("data: ", 0) == 0) line = line.substr(6);
      if (line.empty() || line == "[DONE]") continue;
      out.push_back(nlohmann::json::parse(line));
    }
    return out;
  }
  // A socket connected to the server, for what a client library does not do (hanging up mid-request); -1
  // when it cannot connect. The caller closes it.
  int connect_raw() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }
  // A /metrics value: the line that starts with `name` (labels included, as written); -1 when absent.
  double metric(const std::string& name) const {
    auto r = client().Get("/metrics");
    std::istringstream in(r ? r->body : "");
    for (std::string line; std::getline(in, line);)
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    return -1;
  }

  std::filesystem::path root_;
  std::unique_ptr<server::Server> srv_;
  int port_ = 0;
};

}  // namespace g3n::test
