// `g3n run` and `g3n serve` are two clients of one engine, one generation loop and one parameter set:
// for the same model and prompt, greedy answers are identical (chat and one-shot prompt paths).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "cli_util.h"
#include "golden_util.h"
#include "server/http.h"  // httplib with the definitions every user of the library must share
#include "server/server.h"
#include "store/model_name.h"
#include "store/model_store.h"
#include "store/modelfile.h"

namespace g3n {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

TEST(RunServeParity, GreedyAnswersAreIdentical) {
  const fs::path root = fs::path(G3N_BINARY_DIR) / ("parity-store-" + std::to_string(std::random_device{}()));
  fs::create_directories(root);
  server::ServerConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.store.root = root;
  cfg.store.ollama_root.reset();
  cfg.log_requests = false;
  {
    store::ModelStore st(cfg.store);
    store::Modelfile mf;
    mf.from = test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf";
    store::create_model(st, store::parse_model_name("tiny"), mf, fs::current_path(), [](const std::string&) {});
  }
  auto srv = std::make_unique<server::Server>(cfg);
  const int port = srv->start();
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(120, 0);

  const char* prompts[] = {"Hello world", "What is the capital of France?", "Write three words."};
  for (const char* prompt : prompts) {
    SCOPED_TRACE(prompt);
    const json body = {{"model", "tiny"},
                       {"messages", json::array({{{"role", "user"}, {"content", prompt}}})},
                       {"stream", false},
                       {"options", {{"temperature", 0}, {"num_predict", 40}}}};
    auto r = client.Post("/api/chat", body.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    const std::string served = json::parse(r->body)["message"]["content"].get<std::string>();

    int status = -1;
    std::string ran = test::run_capture("G3N_MODELS=" + root.string() + " " + test::kG3n + " run tiny '" + prompt +
                                            "' -p temperature=0 -p num_predict=40 2>/dev/null",
                                        status);
    ASSERT_EQ(status, 0);
    // The CLI ends a printed answer with a newline when the answer itself does not.
    if (!ran.empty() && ran.back() == '\n' && (served.empty() || served.back() != '\n')) ran.pop_back();
    EXPECT_EQ(ran, served);
    EXPECT_FALSE(served.empty());
  }
  srv.reset();
  std::error_code ec;
  fs::remove_all(root, ec);
}

}  // namespace
}  // namespace g3n
