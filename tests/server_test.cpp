// g3n serve, in process: every endpoint over real HTTP on a random loopback port, on the tiny fixture
// model (its vocabulary is tiny and its weights random, so texts are gibberish; shapes, counts,
// determinism and grammar validity are what is checked).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat.h"
#include "chat/image_prompt.h"
#include "gguf/gguf.h"
#include "media/image.h"
#include "runtime/memory_estimate.h"
#include "runtime/parameters.h"
#include "tokenizer/tokenizer.h"
#include "tools/random_model.h"
#include "vision/mmproj.h"
#include "server/http.h"
#include "sampling/json_constraint.h"
#include "server/http_server.h"
#include "server/options.h"
#include "server/prompt.h"
#include "server/requests.h"
#include "server/server.h"
#include "server_util.h"
#include "store/model_store.h"
#include "store/modelfile.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace g3n;

namespace {

const std::string kModel = test::kTinyModel;

// "tiny" with a params layer (a stop string, temperature 0.1) and a system prompt. start() restarts the
// server (on a new store) with other scheduler limits; image_hook_ and transcribe_model_ are read then.
class ServerFixture : public test::ServerTest {
 protected:
  test::ServerSetup setup() const override {
    test::ServerSetup s;
    s.params = json{{"stop", json::array({"<end_of_turn>"})}, {"temperature", 0.1}};
    s.system = "You are terse.";
    s.before_image_encode = image_hook_;
    s.transcribe_model = transcribe_model_;
    return s;
  }
  void start(int parallel = 2, int queue = 16, std::chrono::milliseconds sync_answer = std::chrono::milliseconds(1500)) {
    test::ServerSetup s = setup();
    s.parallel = parallel;
    s.queue = queue;
    s.sync_answer = sync_answer;
    ServerTest::start(s);
  }
  // "plain": the fixture's weights without a params layer, system prompt or stop strings.
  void add_plain_model() const {
    store::Modelfile mf;
    mf.from = kModel;
    add_model("plain", mf);
  }
  // POST whose response body is read as it arrives; the receiver returning false hangs up.
  void post_streaming(const json& body, const std::function<bool()>& on_chunk) const {
    auto c = client();
    httplib::Request req;
    req.method = "POST";
    req.path = "/api/generate";
    req.headers = {{"Content-Type", "application/json"}};
    req.body = body.dump();
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return on_chunk(); };
    httplib::Response res;
    httplib::Error err;
    c.send(req, res, err);
  }

  std::function<void(const std::atomic<bool>&)> image_hook_;  // ServerConfig::before_image_encode
  std::string transcribe_model_;                               // ServerConfig::transcribe_model
};

json greedy(int n) { return json{{"temperature", 0}, {"num_predict", n}}; }

using ServerBasic = ServerFixture;
using ServerGenerate = ServerFixture;
using ServerChat = ServerFixture;
using ServerOpenAI = ServerFixture;
using ServerErrors = ServerFixture;
using ServerStructured = ServerFixture;
using ServerConcurrency = ServerFixture;

TEST_F(ServerBasic, RootVersionAndHead) {
  auto c = client();
  auto r = c.Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "Ollama is running");
  auto h = c.Head("/");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto [s, v] = get("/api/version");
  EXPECT_EQ(s, 200);
  EXPECT_TRUE(v["version"].is_string());
}

TEST_F(ServerBasic, TagsShowCopyDeleteAndModels) {
  auto [s, tags] = get("/api/tags");
  ASSERT_EQ(s, 200);
  ASSERT_EQ(tags["models"].size(), 1u);
  EXPECT_EQ(tags["models"][0]["name"], "tiny:latest");
  EXPECT_EQ(tags["models"][0]["digest"].get<std::string>().size(), 64u);
  EXPECT_EQ(tags["models"][0]["details"]["family"], "gemma3n");
  EXPECT_EQ(tags["models"][0]["details"]["quantization_level"], "Q4_K_M");

  auto [s2, show] = post("/api/show", {{"model", "tiny"}});
  ASSERT_EQ(s2, 200) << show.dump();
  EXPECT_EQ(show["model_info"]["general.architecture"], "gemma3n");
  EXPECT_EQ(show["system"], "You are terse.");
  EXPECT_NE(show["parameters"].get<std::string>().find("stop"), std::string::npos);
  EXPECT_EQ(show["capabilities"], json::array({"completion", "tools", "embedding"}));
  EXPECT_EQ(show["details"]["format"], "gguf");

  EXPECT_EQ(post("/api/copy", {{"source", "tiny"}, {"destination", "tiny2"}}).first, 200);
  EXPECT_EQ(get("/api/tags").second["models"].size(), 2u);
  EXPECT_EQ(post("/api/copy", {{"source", "nope"}, {"destination", "x"}}).first, 404);
  auto [s4, models] = get("/v1/models");
  EXPECT_EQ(s4, 200);
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"].size(), 2u);
  EXPECT_EQ(get("/v1/models/tiny2").first, 200);
  EXPECT_EQ(get("/v1/models/absent").first, 404);

  auto c = client();
  auto d = c.Delete("/api/delete", json{{"model", "tiny2"}}.dump(), "application/json");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 200);
  auto d2 = c.Delete("/api/delete", json{{"model", "tiny2"}}.dump(), "application/json");
  ASSERT_TRUE(d2);
  EXPECT_EQ(d2->status, 404);
  EXPECT_EQ(get("/api/tags").second["models"].size(), 1u);
}

TEST_F(ServerBasic, ShowReportsVisionAndProjectorInfo) {
  const std::string proj = std::string(G3N_FIXTURES_DIR) + "/gemma3n-vision-tiny/models/gemma3n-vision-tiny-mmproj-f16.gguf";
  store::ModelStore st = test_store();
  store::Modelfile mf;
  mf.from = kModel;
  mf.extra_from = {proj};
  const store::Manifest m =
      store::create_model(st, store::parse_model_name("seeing"), mf, fs::current_path(), [](const std::string&) {});
  auto [s, show] = post("/api/show", {{"model", "seeing"}});
  ASSERT_EQ(s, 200) << show.dump();
  EXPECT_EQ(show["capabilities"], json::array({"completion", "vision", "tools", "embedding"}));
  EXPECT_EQ(show["model_info"]["general.architecture"], "gemma3n");
  const json& p = show["projector_info"];
  EXPECT_EQ(p["general.architecture"], "clip");
  EXPECT_EQ(p["clip.vision.projector_type"], "gemma3nv");
  EXPECT_EQ(p["clip.vision.image_size"], 512);
  EXPECT_EQ(p["clip.vision.embedding_length"], 256);
  EXPECT_EQ(p["clip.vision.projection_dim"], 256);
  int64_t n = 0;
  const GgufFile file = GgufFile::open(proj);  // named: the loop must not outlive a temporary file
  for (const auto& t : file.tensors()) n += t.n_elements();
  EXPECT_EQ(p["general.parameter_count"], n);
  EXPECT_EQ(show["details"]["families"], json::array({"gemma3n", "clip"}));
  const std::string blob = st.blob_path(m.find_layer(store::media::kProjector)->digest).string();
  EXPECT_NE(show["modelfile"].get<std::string>().find("\nFROM " + blob + "\n"), std::string::npos);
  // A model without a projector: completion only, no projector_info.
  auto [s2, plain] = post("/api/show", {{"model", "tiny"}});
  EXPECT_EQ(plain["capabilities"], json::array({"completion", "tools", "embedding"}));
  EXPECT_FALSE(plain.contains("projector_info"));
}

TEST_F(ServerBasic, PsKeepAliveAndMetrics) {
  EXPECT_EQ(get("/api/ps").second["models"].size(), 0u);
  auto [s, r] = post("/api/generate", {{"model", "tiny"}});  // empty prompt: just load
  EXPECT_EQ(s, 200);
  EXPECT_EQ(r["done_reason"], "load");
  auto ps = get("/api/ps").second;
  ASSERT_EQ(ps["models"].size(), 1u);
  EXPECT_EQ(ps["models"][0]["name"], "tiny:latest");
  EXPECT_TRUE(ps["models"][0]["expires_at"].is_string());
  auto [s2, r2] = post("/api/generate", {{"model", "tiny"}, {"keep_alive", 0}});
  EXPECT_EQ(r2["done_reason"], "unload");
  EXPECT_EQ(get("/api/ps").second["models"].size(), 0u);
  // Unloading a model that is not loaded loads nothing (it answered only after a whole load): a model whose
  // file no longer loads answers the unload; a missing one is a 404.
  {
    store::Modelfile mf;
    mf.from = std::string(G3N_FIXTURES_DIR) + "/gemma3n-tiny/models/gemma3n-tiny-q8_0.gguf";
    add_model("broken", mf);
    fs::resize_file(test_store().resolve(store::parse_model_name("broken")).model_path, 64);
  }
  EXPECT_EQ(post("/api/generate", {{"model", "broken"}, {"keep_alive", 0}}).second["done_reason"], "unload");
  EXPECT_EQ(post("/api/chat", {{"model", "broken"}, {"keep_alive", 0}}).second["done_reason"], "unload");
  EXPECT_EQ(post("/api/generate", {{"model", "broken"}}).first, 500);  // a load: the file is cut
  EXPECT_EQ(post("/api/generate", {{"model", "nope"}, {"keep_alive", 0}}).first, 404);
  EXPECT_EQ(post("/api/generate", {{"model", "tiny"}, {"keep_alive", "bogus"}}).first, 400);

  post("/api/generate", {{"model", "tiny"}, {"prompt", "hi"}, {"stream", false}, {"options", greedy(3)}});
  EXPECT_GE(metric("g3n_tokens_generated_total"), 1);
  EXPECT_EQ(metric("g3n_queue_depth"), 0);
  auto c = client();
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("g3n_requests_total{path=\"/api/generate\",status=\"200\"}"), std::string::npos);
}

TEST_F(ServerGenerate, NonStreamingHasRealTimings) {
  auto [s, r] = post("/api/generate", {{"model", "tiny"}, {"prompt", "Hello"}, {"stream", false}, {"options", greedy(6)}});
  ASSERT_EQ(s, 200) << r.dump();
  EXPECT_EQ(r["model"], "tiny");
  EXPECT_TRUE(r["done"].get<bool>());
  EXPECT_EQ(r["done_reason"], "length");
  EXPECT_EQ(r["eval_count"], 6);
  EXPECT_GT(r["prompt_eval_count"].get<int>(), 3);
  for (const char* k : {"total_duration", "load_duration", "prompt_eval_duration", "eval_duration"}) EXPECT_GT(r[k].get<int64_t>(), 0) << k;
  EXPECT_GE(r["total_duration"].get<int64_t>(), r["eval_duration"].get<int64_t>());
  EXPECT_TRUE(r["context"].is_array());
  EXPECT_TRUE(r["created_at"].get<std::string>().ends_with("Z"));
}

TEST_F(ServerGenerate, StreamingMatchesNonStreaming) {
  add_plain_model();
  const json req = {{"model", "plain"}, {"prompt", "Hello"}, {"options", greedy(8)}};
  auto [s, text] = post_raw("/api/generate", req.dump());
  ASSERT_EQ(s, 200);
  auto lines = ServerTest::lines(text);
  ASSERT_GE(lines.size(), 2u);
  std::string streamed;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    EXPECT_FALSE(lines[i]["done"].get<bool>());
    streamed += lines[i]["response"].get<std::string>();
  }
  EXPECT_TRUE(lines.back()["done"].get<bool>());
  EXPECT_EQ(lines.back()["eval_count"], 8);
  json whole = req;
  whole["stream"] = false;
  auto [s2, r2] = post("/api/generate", whole);
  EXPECT_EQ(r2["response"].get<std::string>(), streamed);
}

TEST_F(ServerGenerate, DefaultsComeFromTheParameterTable) {
  // The fixture path has no params layer, so a request without options samples with the table's
  // defaults: spelling every default out must give the same seeded answer.
  json spelled = {{"seed", 42}, {"num_predict", 12}};
  for (const ParamSpec& s : parameter_table())
    if (s.target == ParamTarget::Sampling && !spelled.contains(std::string(s.name))) spelled[std::string(s.name)] = parameter_json(s.def);
  add_plain_model();
  auto [s1, a] = post("/api/generate", {{"model", "plain"}, {"prompt", "Hello"}, {"stream", false}, {"options", {{"seed", 42}, {"num_predict", 12}}}});
  auto [s2, b] = post("/api/generate", {{"model", "plain"}, {"prompt", "Hello"}, {"stream", false}, {"options", spelled}});
  ASSERT_EQ(s1, 200);
  ASSERT_EQ(s2, 200);
  EXPECT_EQ(a["response"], b["response"]);
  EXPECT_EQ(a["eval_count"], b["eval_count"]);
}

TEST_F(ServerGenerate, DeeplyNestedJsonIsA400AndTheServerLivesOn) {
  // Parsing is iterative but copying and dumping a value recurse: 300,000 nested arrays anywhere in a body (a
  // format's enum, an option, a tool call's arguments string) once took the whole server down.
  const std::string deep = std::string(300000, '[') + std::string(300000, ']');
  const std::string args = json(deep).dump();  // the same nesting inside a JSON string
  const std::vector<std::pair<std::string, std::string>> bodies = {
      {"/api/generate", R"({"model": "tiny", "prompt": "x", "stream": false, "format": {"enum": [)" + deep + "]}}"},
      {"/api/generate", R"({"model": "tiny", "prompt": "x", "stream": false, "options": {"stop": )" + deep + "}}"},
      {"/api/chat", R"({"model": "tiny", "stream": false, "messages": [{"role": "user", "content": )" + deep + "}]}"},
      {"/v1/chat/completions", R"({"model": "tiny", "messages": [{"role": "assistant", "content": "", "tool_calls": [{"id": "c1", )"
                               R"("type": "function", "function": {"name": "f", "arguments": )" + args + "}}]}, {\"role\": \"user\", \"content\": \"x\"}]}"},
  };
  for (const auto& [path, body] : bodies) {
    auto [status, text] = post_raw(path, body);
    EXPECT_EQ(status, 400) << path << ": " << text.substr(0, 200);
    EXPECT_NE(text.find("nested"), std::string::npos) << text.substr(0, 200);
  }
  // Nesting a schema or a request really uses still works, and the server answers.
  json opts = greedy(2);
  EXPECT_EQ(post("/api/generate", {{"model", "tiny"}, {"prompt", "x"}, {"stream", false}, {"options", opts}}).first, 200);
}

// Fields of the wrong type are the request's fault: 400 with the reason, not a 500 carrying a library's text.
TEST_F(ServerGenerate, WrongFieldTypesAre400) {
  const std::vector<std::pair<std::string, json>> bodies = {
      {"/api/chat", {{"model", "tiny"}, {"stream", false}, {"messages", {{{"role", "tool"}, {"content", "x"}, {"tool_name", 5}}}}}},
      {"/v1/chat/completions", {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", {{{"type", 5}, {"text", "x"}}}}}}}}},
      {"/v1/chat/completions", {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}, {"response_format", {{"type", 3}}}}},
      {"/v1/chat/completions", {{"model", "tiny"}, {"stream", true}, {"messages", {{{"role", "user"}, {"content", "x"}}}}, {"stream_options", {{"include_usage", "yes"}}}}},
  };
  for (const auto& [path, body] : bodies) {
    auto [status, text] = post_raw(path, body.dump());
    EXPECT_EQ(status, 400) << path << " " << body.dump() << ": " << text;
    EXPECT_EQ(text.find("json.exception"), std::string::npos) << text;
  }
}

TEST_F(ServerGenerate, MatformerSliceComesFromTheModelParameters) {
  // A model whose Modelfile says PARAMETER matformer FILE.json loads that slice (README §9's s3 of the
  // fixture); a request may repeat the slice, another one is a 400 naming the loaded one.
  std::ifstream slices(std::string(G3N_FIXTURES_DIR) + "/gemma3n-tiny/golden/matformer/slices.json");
  const json doc = json::parse(slices);
  const fs::path slice = root_ / "s3.json";
  std::ofstream(slice) << json{{"kept_layers", doc["slices"][2]["kept_layers"]}, {"ffn_width", doc["slices"][2]["ffn_width"]}}.dump();
  {
    store::ModelStore st = test_store();
    store::Modelfile mf;
    mf.from = kModel;
    mf.params = json{{"matformer", slice.string()}};
    store::create_model(st, store::parse_model_name("tiny-s3"), mf, fs::current_path(), [](const std::string&) {});
  }
  json opts = greedy(2);
  EXPECT_EQ(post("/api/generate", {{"model", "tiny-s3"}, {"prompt", "x"}, {"stream", false}, {"options", opts}}).first, 200);
  opts["matformer"] = slice.string();
  EXPECT_EQ(post("/api/generate", {{"model", "tiny-s3"}, {"prompt", "x"}, {"stream", false}, {"options", opts}}).first, 200);
  opts["matformer"] = "";
  auto [s, r] = post("/api/generate", {{"model", "tiny-s3"}, {"prompt", "x"}, {"stream", false}, {"options", opts}});
  EXPECT_EQ(s, 400);
  EXPECT_NE(r["error"].get<std::string>().find("is loaded as slice '" + slice.string() + "'"), std::string::npos) << r;
  // Any other file is refused unread: an existing one, a missing one and a CSV row answer alike (no path on the
  // server is opened for a request, so none of its contents or existence shows in the error).
  const fs::path secret = root_ / "secret.csv";
  std::ofstream(secret) << "name,x\nTOPSECRET,1\n";
  for (const std::string& other : std::vector<std::string>{slice.string(), (root_ / "missing.json").string(), secret.string() + ":zz"}) {
    opts["matformer"] = other;
    auto [s2, r2] = post("/api/generate", {{"model", "tiny"}, {"prompt", "x"}, {"stream", false}, {"options", opts}});
    EXPECT_EQ(s2, 400) << other;
    EXPECT_NE(r2["error"].get<std::string>().find("not a file"), std::string::npos) << r2;
    EXPECT_EQ(r2["error"].get<std::string>().find("TOPSECRET"), std::string::npos) << r2;
  }
  opts["matformer"] = "e2.54b";  // a preset: checked against the loaded model, not read
  auto [s4, r4] = post("/api/generate", {{"model", "tiny"}, {"prompt", "x"}, {"stream", false}, {"options", opts}});
  EXPECT_EQ(s4, 400);
  EXPECT_EQ(r4["error"].get<std::string>().find("not a file"), std::string::npos) << r4;
  opts["matformer"] = "e2b";  // not a slice of this 25-layer model at all
  auto [s3, r3] = post("/api/generate", {{"model", "tiny"}, {"prompt", "x"}, {"stream", false}, {"options", opts}});
  EXPECT_EQ(s3, 400);
  EXPECT_NE(r3["error"].get<std::string>().find("35 layers"), std::string::npos) << r3;
}

TEST_F(ServerGenerate, SpeculationWithADraftModelOrASliceAnswersAsPlainGreedy) {
  // spec draft: another store model with the same vocabulary drafts (here "plain", the same weights); spec
  // self: a slice of the model's own file, a file only from the model's parameters (a request names presets).
  std::ifstream slices(std::string(G3N_FIXTURES_DIR) + "/gemma3n-tiny/golden/matformer/slices.json");
  const json doc = json::parse(slices);
  const fs::path slice = root_ / "s1.json";
  std::ofstream(slice) << json{{"kept_layers", doc["slices"][0]["kept_layers"]}, {"ffn_width", doc["slices"][0]["ffn_width"]}}.dump();
  add_plain_model();
  {
    store::ModelStore st = test_store();
    store::Modelfile mf;
    mf.from = kModel;
    mf.params = json{{"spec", "self"}, {"draft", slice.string()}, {"draft_max", 4}};
    store::create_model(st, store::parse_model_name("tiny-self"), mf, fs::current_path(), [](const std::string&) {});
  }
  const std::string prompt = "one two three four one two three four one two three";
  json opts = greedy(24);
  auto [s0, plain] = post("/api/generate", {{"model", "plain"}, {"prompt", prompt}, {"stream", false}, {"options", opts}});
  ASSERT_EQ(s0, 200) << plain;
  opts["spec"] = "draft";
  opts["draft"] = "plain";
  auto [s1, by_draft] = post("/api/generate", {{"model", "plain"}, {"prompt", prompt}, {"stream", false}, {"options", opts}});
  ASSERT_EQ(s1, 200) << by_draft;
  EXPECT_EQ(by_draft["response"], plain["response"]);
  // /api/ps counts the draft model's file with the model's.
  bool listed = false;
  const json ps = get("/api/ps").second;
  for (const auto& m : ps["models"]) {
    if (m["name"] != "plain:latest") continue;
    listed = true;
    EXPECT_GE(m["size"].get<int64_t>(), 2 * static_cast<int64_t>(fs::file_size(kModel))) << m;
  }
  EXPECT_TRUE(listed) << ps.dump();
  EXPECT_EQ(metric("g3n_spec_requests_total"), 1);
  const double drafted_by_draft = metric("g3n_spec_draft_tokens_total");
  EXPECT_GT(drafted_by_draft, 0);
  auto [s2, by_self] = post("/api/generate", {{"model", "tiny-self"}, {"prompt", prompt}, {"stream", false}, {"options", greedy(24)}});
  ASSERT_EQ(s2, 200) << by_self;
  EXPECT_EQ(by_self["response"], plain["response"]);
  EXPECT_EQ(metric("g3n_spec_requests_total"), 2);
  EXPECT_GT(metric("g3n_spec_draft_tokens_total"), drafted_by_draft);  // the slice drafted too
  // The errors are 400s that say why.
  const auto error_of = [&](const std::string& model, const json& o) {
    auto [s, r] = post("/api/generate", {{"model", model}, {"prompt", prompt}, {"stream", false}, {"options", o}});
    EXPECT_EQ(s, 400) << r;
    return r.value("error", std::string());
  };
  opts["draft"] = "no-such-model";
  EXPECT_NE(error_of("plain", opts).find("draft model 'no-such-model' not found"), std::string::npos);
  opts["draft"] = "";
  EXPECT_NE(error_of("plain", opts).find("needs a draft model"), std::string::npos);
  opts["spec"] = "self";
  opts["draft"] = slice.string();  // a path in a request: refused, never opened
  EXPECT_NE(error_of("plain", opts).find("is not a MatFormer preset"), std::string::npos);
  opts["draft"] = "e2b";  // a preset of a 35-layer E4B file; this one has 25
  EXPECT_NE(error_of("plain", opts).find("35 layers"), std::string::npos);
}

TEST_F(ServerGenerate, EngineOptionsAreHonouredOrRejected) {
  // The server runs with 1 thread: repeating it is fine, another value is a 400 that says why (the
  // engine is shared by every request); num_ctx is per request; num_batch bounds the rows per pass.
  json opts = greedy(2);
  opts["num_thread"] = 1;
  opts["num_batch"] = 128;
  opts["num_ctx"] = 256;
  EXPECT_EQ(post("/api/generate", {{"model", "tiny"}, {"prompt", "x"}, {"stream", false}, {"options", opts}}).first, 200);
  opts["num_thread"] = 3;
  auto [s, r] = post("/api/generate", {{"model", "tiny"}, {"prompt", "x"}, {"stream", false}, {"options", opts}});
  EXPECT_EQ(s, 400);
  EXPECT_NE(r["error"].get<std::string>().find("\"num_thread\" is 3 but model"), std::string::npos) << r;
  opts["num_thread"] = 0;  // "the default": accepted, the engine keeps its threads
  EXPECT_EQ(post("/api/generate", {{"model", "tiny"}, {"prompt", "x"}, {"stream", false}, {"options", opts}}).first, 200);
  // num_batch: the prompt is read in passes of at most that many rows (capped at the engine's 256), which
  // never changes the answer. A ~100-token prompt in passes of 7, 128 and Ollama's 512.
  std::string prompt;
  for (int i = 0; i < 12; ++i) prompt += "The quick brown fox jumps over the lazy dog. ";
  std::vector<std::string> answers;
  for (int batch : {7, 128, 512}) {
    opts["num_batch"] = batch;
    opts["num_predict"] = 12;
    std::tie(s, r) = post("/api/generate", {{"model", "tiny"}, {"prompt", prompt}, {"stream", false}, {"options", opts}});
    ASSERT_EQ(s, 200) << r;
    EXPECT_GT(r["prompt_eval_count"].get<int>(), 64);
    answers.push_back(r["response"].get<std::string>());
  }
  EXPECT_EQ(answers[0], answers[1]);
  EXPECT_EQ(answers[1], answers[2]);
  opts["num_batch"] = 0;
  std::tie(s, r) = post("/api/generate", {{"model", "tiny"}, {"prompt", "x"}, {"stream", false}, {"options", opts}});
  EXPECT_EQ(s, 400);
  EXPECT_NE(r["error"].get<std::string>().find("num_batch"), std::string::npos) << r;
  opts["num_batch"] = 128;
  opts["num_ctx"] = kMaxContext + 1;
  std::tie(s, r) = post("/api/generate", {{"model", "tiny"}, {"prompt", "x"}, {"stream", false}, {"options", opts}});
  EXPECT_EQ(s, 400);
  EXPECT_EQ(r["error"], "option \"num_ctx\" must be between 4 and 32768");
}

// Names only over HTTP: a path (existing file, existing GGUF, missing file) answers exactly as a missing
// model does, on every endpoint that takes a model, so the API is no file-existence oracle.
TEST_F(ServerGenerate, PathsAreNotModelNames) {
  const auto [s0, missing] = post("/api/show", {{"model", "no-such-model"}});
  ASSERT_EQ(s0, 404);
  for (const std::string& path : {std::string("/etc/passwd"), kModel, std::string("/nonexistent/x.gguf"), std::string("./tiny.gguf")}) {
    SCOPED_TRACE(path);
    const auto [s1, shown] = post("/api/show", {{"model", path}});
    EXPECT_EQ(s1, 404);
    EXPECT_EQ(shown["error"], "model '" + path + "' not found");
    const auto [s2, gen] = post("/api/generate", {{"model", path}, {"prompt", "x"}, {"stream", false}});
    EXPECT_EQ(s2, 404);
    EXPECT_EQ(gen["error"], "model '" + path + "' not found");
    const auto [s3, chat] = post("/v1/chat/completions", {{"model", path}, {"messages", json::array({{{"role", "user"}, {"content", "x"}}})}});
    EXPECT_EQ(s3, 404);
  }
  const auto [s4, ps] = get("/api/ps");
  ASSERT_EQ(s4, 200);
  EXPECT_TRUE(ps["models"].empty()) << ps;  // nothing was loaded from a path
}

TEST_F(ServerGenerate, RawAndContext) {
  auto [s, r] = post("/api/generate", {{"model", "tiny"}, {"prompt", "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"},
                                       {"raw", true}, {"stream", false}, {"options", greedy(4)}});
  ASSERT_EQ(s, 200);
  EXPECT_FALSE(r.contains("context"));
  EXPECT_EQ(post("/api/generate", {{"model", "tiny"}, {"prompt", "x"}, {"raw", true}, {"system", "s"}}).first, 400);
  auto [s2, r2] = post("/api/generate", {{"model", "tiny"}, {"prompt", "Hi"}, {"stream", false}, {"options", greedy(4)}});
  ASSERT_TRUE(r2["context"].is_array());
  auto [s3, r3] = post("/api/generate", {{"model", "tiny"}, {"prompt", "More"}, {"context", r2["context"]}, {"stream", false}, {"options", greedy(4)}});
  ASSERT_EQ(s3, 200) << r3.dump();
  EXPECT_GT(r3["prompt_eval_count"].get<int>(), r2["prompt_eval_count"].get<int>());
}

TEST_F(ServerGenerate, LongPromptIsTruncatedAndSaysSo) {
  std::string big;
  for (int i = 0; i < 400; ++i) big += "hello world ";
  auto [s, r] = post("/api/generate", {{"model", "tiny"}, {"prompt", big}, {"stream", false}, {"options", {{"num_ctx", 128}, {"num_predict", 2}, {"temperature", 0}}}});
  ASSERT_EQ(s, 200) << r.dump();
  EXPECT_GT(r["prompt_truncated"].get<int>(), 0);
  EXPECT_LT(r["prompt_eval_count"].get<int>(), 128);
  auto [s2, r2] = post("/api/generate", {{"model", "tiny"}, {"prompt", big}, {"truncate", false}, {"options", {{"num_ctx", 128}}}});
  EXPECT_EQ(s2, 400);
  EXPECT_NE(r2["error"].get<std::string>().find("context length"), std::string::npos);
}

TEST_F(ServerChat, ChatStreamsAndAccumulates) {
  json req = {{"model", "tiny"}, {"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}}},
              {"options", greedy(6)}, {"tools", json::array({{{"type", "function"}, {"function", {{"name", "get_time"}, {"parameters", {{"type", "object"}}}}}}})}};
  auto [s, text] = post_raw("/api/chat", req.dump());
  ASSERT_EQ(s, 200);
  auto lines = ServerTest::lines(text);
  ASSERT_GE(lines.size(), 2u);
  std::string streamed;
  for (const auto& l : lines) {
    EXPECT_EQ(l["message"]["role"], "assistant");
    streamed += l["message"]["content"].get<std::string>();
  }
  EXPECT_TRUE(lines.back()["done"].get<bool>());
  EXPECT_GT(lines.back()["eval_duration"].get<int64_t>(), 0);
  req["stream"] = false;
  auto [s2, r2] = post("/api/chat", req);
  ASSERT_EQ(s2, 200);
  EXPECT_EQ(r2["message"]["content"].get<std::string>(), streamed);

  // A second turn that continues the first; tool results and assistant history are accepted.
  req["messages"].push_back({{"role", "assistant"}, {"content", streamed}});
  req["messages"].push_back({{"role", "tool"}, {"content", "12:00"}, {"tool_name", "get_time"}});
  req["messages"].push_back({{"role", "user"}, {"content", "And now?"}});
  auto [s3, r3] = post("/api/chat", req);
  EXPECT_EQ(s3, 200) << r3.dump();
  EXPECT_EQ(r3["eval_count"], 6);

  auto [s4, r4] = post("/api/chat", {{"model", "tiny"}, {"messages", json::array()}});
  EXPECT_EQ(s4, 200);
  EXPECT_EQ(r4["done_reason"], "load");
}

TEST_F(ServerOpenAI, ChatCompletions) {
  auto [s, r] = post("/v1/chat/completions", {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 5}, {"temperature", 0}, {"seed", 1}});
  ASSERT_EQ(s, 200) << r.dump();
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["usage"]["completion_tokens"], 5);
  EXPECT_EQ(r["usage"]["total_tokens"], r["usage"]["prompt_tokens"].get<int>() + 5);

  auto [s2, text] = post_raw("/v1/chat/completions", json{{"model", "tiny"}, {"stream", true}, {"stream_options", {{"include_usage", true}}},
                                                          {"messages", {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Hi"}}}}}}},
                                                          {"max_tokens", 5}, {"temperature", 0}, {"seed", 1}}
                                                          .dump());
  ASSERT_EQ(s2, 200);
  std::string streamed;
  std::vector<json> events;
  std::istringstream in(text);
  bool done = false;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    ASSERT_EQ(line.rfind("data: ", 0), 0u) << line;
    if (line == "data: [DONE]") { done = true; continue; }
    events.push_back(json::parse(line.substr(6)));
  }
  EXPECT_TRUE(done);
  ASSERT_GE(events.size(), 3u);
  for (const auto& e : events)
    if (!e["choices"].empty()) streamed += e["choices"][0]["delta"]["content"].get<std::string>();
  EXPECT_EQ(events.back()["usage"]["completion_tokens"], 5);
  EXPECT_EQ(events[events.size() - 2]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(streamed, r["choices"][0]["message"]["content"].get<std::string>());
}

TEST_F(ServerOpenAI, CompletionsAndErrors) {
  auto [s, r] = post("/v1/completions", {{"model", "tiny"}, {"prompt", "Once"}, {"max_tokens", 4}, {"temperature", 0}});
  ASSERT_EQ(s, 200) << r.dump();
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_TRUE(r["choices"][0]["text"].is_string());
  EXPECT_EQ(r["usage"]["completion_tokens"], 4);
  auto [s2, e2] = post("/v1/chat/completions", {{"model", "absent"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}});
  EXPECT_EQ(s2, 404);
  EXPECT_EQ(e2["error"]["message"], "model 'absent' not found");
  auto [s3, e3] = post("/v1/chat/completions", {{"model", "tiny"}, {"messages", json::array()}});
  EXPECT_EQ(s3, 400);
  EXPECT_TRUE(e3["error"]["message"].is_string());
  EXPECT_EQ(post("/v1/chat/completions", {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}, {"response_format", {{"type", "bogus"}}}}).first, 400);
}

TEST_F(ServerErrors, BadRequestsGetJsonErrors) {
  auto check = [&](int want, int got, const std::string& body) {
    EXPECT_EQ(got, want) << body;
    auto j = json::parse(body, nullptr, false);
    EXPECT_TRUE(j.is_object() && j.contains("error")) << body;
  };
  auto [s1, b1] = post_raw("/api/generate", "{not json");
  check(400, s1, b1);
  auto [s2, b2] = post_raw("/api/generate", "");
  check(400, s2, b2);
  auto [s3, b3] = post_raw("/api/generate", R"({"model": 7, "prompt": "x"})");
  check(400, s3, b3);
  auto [s4, b4] = post_raw("/api/generate", R"({"model": "nope", "prompt": "x"})");
  check(404, s4, b4);
  EXPECT_EQ(json::parse(b4)["error"], "model 'nope' not found");
  auto [s5, b5] = post_raw("/api/generate", R"({"model": "tiny", "prompt": "x", "options": {"top_k": "many"}})");
  check(400, s5, b5);
  auto [s6, b6] = post_raw("/api/generate", R"({"model": "tiny", "prompt": "x", "options": {"num_ctx": 1}})");
  check(400, s6, b6);
  auto [s7, b7] = post_raw("/api/generate", R"({"model": "tiny", "prompt": "x", "images": ["aGVsbG8="]})");
  check(400, s7, b7);
  auto [s8, b8] = post_raw("/api/generate", R"({"model": "tiny", "prompt": "x", "suffix": "y"})");
  check(400, s8, b8);
  auto [s9, b9] = post_raw("/api/chat", R"({"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]})");
  check(400, s9, b9);
  auto [s10, b10] = post_raw("/api/chat", R"({"model": "tiny", "messages": "hi"})");
  check(400, s10, b10);
  auto [s11, b11] = post_raw("/api/generate", R"({"model": "tiny", "prompt": "x", "format": "yaml"})");
  check(400, s11, b11);
  auto [s12, b12] = post_raw("/api/generate", R"([1, 2])");
  check(400, s12, b12);
  auto [s13, b13] = post_raw("/api/pull", R"({"model": "bad name!"})");
  check(400, s13, b13);
  std::string huge(33u << 20, 'x');
  auto [s14, b14] = post_raw("/api/generate", huge);
  check(413, s14, b14);
  auto c = client();
  auto r = c.Get("/api/generate");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  auto r2 = c.Get("/no/such/path");
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 404);
  // The server is still fine.
  EXPECT_EQ(post("/api/generate", {{"model", "tiny"}, {"prompt", "x"}, {"stream", false}, {"options", greedy(1)}}).first, 200);
}

// ---- structured output ----

bool matches(const json& v, const json& schema) {
  if (schema.contains("enum")) {
    for (const auto& e : schema["enum"])
      if (e == v) return true;
    return false;
  }
  const std::string type = schema.value("type", "");
  if (type == "object") {
    if (!v.is_object()) return false;
    for (const auto& r : schema.value("required", json::array()))
      if (!v.contains(r.get<std::string>())) return false;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!schema["properties"].contains(it.key())) return false;
      if (!matches(*it, schema["properties"][it.key()])) return false;
    }
    return true;
  }
  if (type == "array") {
    if (!v.is_array()) return false;
    if (schema.contains("maxItems") && v.size() > schema["maxItems"].get<size_t>()) return false;
    if (schema.contains("minItems") && v.size() < schema["minItems"].get<size_t>()) return false;
    for (const auto& e : v)
      if (!matches(e, schema["items"])) return false;
    return true;
  }
  if (type == "string") {
    if (!v.is_string()) return false;
    size_t chars = 0;  // maxLength counts characters, not bytes
    for (unsigned char c : v.get<std::string>()) chars += (c & 0xC0) != 0x80;
    return !schema.contains("maxLength") || chars <= schema["maxLength"].get<size_t>();
  }
  if (type == "integer") return v.is_number_integer();
  if (type == "number") return v.is_number();
  if (type == "boolean") return v.is_boolean();
  return true;
}

const json kSchema = {
    {"type", "object"},
    {"properties",
     {{"name", {{"type", "string"}, {"maxLength", 12}}},
      {"age", {{"type", "integer"}}},
      {"score", {{"type", "number"}}},
      {"ok", {{"type", "boolean"}}},
      {"color", {{"enum", {"red", "green", "blue"}}}},
      {"tags", {{"type", "array"}, {"items", {{"type", "string"}, {"maxLength", 5}}}, {"maxItems", 3}}},
      {"pos", {{"type", "object"}, {"properties", {{"x", {{"type", "integer"}}}, {"y", {{"type", "integer"}}}}}, {"required", {"x", "y"}}}}}},
    {"required", {"name", "age", "ok", "color", "tags", "pos"}}};

TEST_F(ServerStructured, SchemaOutputIsValidJson) {
  for (int seed = 0; seed < 3; ++seed) {
    auto [s, r] = post("/api/chat", {{"model", "tiny"}, {"stream", false}, {"format", kSchema},
                                     {"messages", {{{"role", "user"}, {"content", "Describe a person."}}}},
                                     {"options", {{"num_predict", 300}, {"temperature", 0.8}, {"seed", seed}}}});
    ASSERT_EQ(s, 200) << r.dump();
    const std::string content = r["message"]["content"];
    json parsed = json::parse(content, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << content;
    EXPECT_TRUE(matches(parsed, kSchema)) << content;
    EXPECT_EQ(r["done_reason"], "stop");
  }
  // format "json": any object; greedy.
  auto [s2, r2] = post("/api/generate", {{"model", "tiny"}, {"prompt", "Return JSON"}, {"format", "json"}, {"stream", false}, {"options", greedy(200)}});
  ASSERT_EQ(s2, 200);
  if (r2["done_reason"] == "stop") {
    json p = json::parse(r2["response"].get<std::string>(), nullptr, false);
    EXPECT_TRUE(p.is_object()) << r2["response"];
  }
  // OpenAI response_format json_schema (seeded: unseeded sampling could spend the 300 tokens on whitespace,
  // which the schema allows, and stop at "length" with unfinished JSON, a correct but untestable answer).
  auto [s3, r3] = post("/v1/chat/completions", {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}, {"max_tokens", 300}, {"seed", 0},
                                                {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "p"}, {"schema", kSchema}}}}}});
  ASSERT_EQ(s3, 200) << r3.dump();
  ASSERT_EQ(r3["choices"][0]["finish_reason"], "stop") << r3.dump();
  json p3 = json::parse(r3["choices"][0]["message"]["content"].get<std::string>(), nullptr, false);
  ASSERT_FALSE(p3.is_discarded());
  EXPECT_TRUE(matches(p3, kSchema));
}

TEST(ServerJsonMatcher, AcceptsValidRejectsInvalid) {
  auto schema = JsonSchema::compile(kSchema);
  auto accepts = [&](const std::string& text) {
    JsonMatcher m(*schema);
    return m.feed(text) && m.complete();
  };
  EXPECT_TRUE(accepts(R"({"age":3,"color":"red","name":"al","ok":true,"pos":{"x":1,"y":-2},"tags":["a"]})"));
  EXPECT_TRUE(accepts(R"({"age": 3, "color": "blue", "name": "", "ok": false, "pos": {"x": 0, "y": 0}, "score": -1.5e3, "tags": []})"));
  EXPECT_FALSE(accepts(R"({"age":3.5,"color":"red","name":"al","ok":true,"pos":{"x":1,"y":2},"tags":[]})"));  // integer
  EXPECT_FALSE(accepts(R"({"age":3,"color":"pink","name":"al","ok":true,"pos":{"x":1,"y":2},"tags":[]})"));  // enum
  EXPECT_FALSE(accepts(R"({"age":3,"color":"red","ok":true,"pos":{"x":1,"y":2},"tags":[]})"));  // missing name
  EXPECT_FALSE(accepts(R"({"age":3,"color":"red","name":"abcdefghijklmn","ok":true,"pos":{"x":1,"y":2},"tags":[]})"));  // maxLength
  EXPECT_FALSE(accepts(R"({"age":3,"color":"red","name":"a","ok":true,"pos":{"x":1,"y":2},"tags":["a","b","c","d"]})"));  // maxItems
  auto any = JsonSchema::any_object();
  JsonMatcher m(*any);
  EXPECT_TRUE(m.feed(R"({"a": [1, 2.5, "x\n\u00e9", {"b": null}], "c": true})"));
  EXPECT_TRUE(m.complete());
  JsonMatcher bad(*any);
  EXPECT_FALSE(bad.feed(R"({"a": 01})"));
}

TEST(ServerHttp, OneRouteTableAnswers405And404AndLabelsMetrics) {
  // The wiring alone, on a toy table: what it answers is derived from the routes and nothing else.
  server::Metrics metrics;
  std::vector<server::Route> routes = {
      {server::Method::Get, "/hello", server::ErrorStyle::Ollama,
       [](const server::HttpRequest&, server::HttpResponse& r) {
         r.content_type = "text/plain";
         r.body = "hi";
       }},
      {server::Method::Post, "/v1/things/{id}", server::ErrorStyle::OpenAI,
       [](const server::HttpRequest& q, server::HttpResponse&) { throw server::HttpError(400, "no " + q.params.at(0)); }},
      {server::Method::Get, "/stream", server::ErrorStyle::Ollama,
       [](const server::HttpRequest&, server::HttpResponse& r) {
         r.content_type = "text/plain";
         r.stream = [](server::ChunkSink& sink) { return sink.write("a") && sink.write("b"); };
       }},
  };
  server::HttpServer http(routes, {}, metrics);
  const int port = http.bind("127.0.0.1", 0);
  ASSERT_GT(port, 0);
  std::thread t([&] { http.serve(); });
  while (!http.running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/hello");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hi");
  r = c.Post("/hello", "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(json::parse(r->body)["error"], "method POST not allowed for /hello");
  r = c.Get("/nope");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = c.Post("/v1/things/a/b", "{}", "application/json");  // a capture takes the rest of the path
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["message"], "no a/b");
  EXPECT_EQ(json::parse(r->body)["error"]["type"], "invalid_request_error");
  r = c.Get("/stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "ab");
  http.stop();
  t.join();
  const std::string text = metrics.text(0, 0, 0);
  EXPECT_NE(text.find("g3n_requests_total{path=\"/hello\",status=\"200\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("g3n_requests_total{path=\"/hello\",status=\"405\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("g3n_requests_total{path=\"/v1/things/{id}\",status=\"400\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("g3n_requests_total{path=\"other\",status=\"404\"} 1"), std::string::npos) << text;
}

TEST(ServerOptions, ParsesHostsDurationsAndOptions) {
  auto a = server::parse_listen_address("0.0.0.0");
  EXPECT_EQ(a.host, "0.0.0.0");
  EXPECT_EQ(a.port, 11434);
  a = server::parse_listen_address(":8080");
  EXPECT_EQ(a.host, "0.0.0.0");
  EXPECT_EQ(a.port, 8080);
  a = server::parse_listen_address("http://example.com:9000/base");
  EXPECT_EQ(a.host, "example.com");
  EXPECT_EQ(a.port, 9000);
  a = server::listen_address_from(nullptr, nullptr);
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 11434);
  EXPECT_EQ(server::listen_address_from("127.0.0.1:1", "127.0.0.1:2").port, 1);
  EXPECT_EQ(server::parse_go_duration("1h30m")->count(), 5400LL * 1000000000);
  EXPECT_EQ(server::parse_go_duration("300ms")->count(), 300LL * 1000000);
  EXPECT_FALSE(server::parse_go_duration("5"));
  EXPECT_FALSE(server::parse_keep_alive(json(-1)).has_value());  // forever
  EXPECT_EQ(server::parse_keep_alive(json("0"))->count(), 0);
  EXPECT_THROW(server::parse_keep_alive(json("soon")), server::HttpError);
  Parameters ro = default_parameters();
  apply_parameters(ro, server::parse_request_options(json{{"top_k", 5.0}, {"stop", "x"}, {"seed", 3}, {"mirostat", 1}, {"bogus", 2}}));
  EXPECT_EQ(ro.sampling.top_k, 5);
  EXPECT_EQ(ro.sampling.stop, std::vector<std::string>{"x"});
  EXPECT_EQ(ro.sampling.seed, 3u);
  try {
    server::parse_request_options(json{{"temperature", "hot"}});
    ADD_FAILURE() << "no error";
  } catch (const server::HttpError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_STREQ(e.what(), "option \"temperature\" must be of type float");
  }
}

// ---- concurrency, queueing, cancellation ----

TEST_F(ServerConcurrency, ParallelRequestsAreIsolatedAndDeterministic) {
  const std::vector<std::string> prompts = {"Hello", "The sky", "Once upon", "Numbers"};
  std::vector<std::string> alone;
  for (const auto& p : prompts)
    alone.push_back(post("/api/generate", {{"model", "tiny"}, {"prompt", p}, {"stream", false}, {"options", greedy(10)}}).second["response"]);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < 2; ++k) {
        const size_t i = static_cast<size_t>(t + k) % prompts.size();
        const bool stream = (t + k) % 2 == 0;
        auto [s, body] = post_raw("/api/generate", json{{"model", "tiny"}, {"prompt", prompts[i]}, {"stream", stream}, {"options", greedy(10)}}.dump());
        if (s != 200) {
          ++failures;
          std::printf("[parallel] status %d: %s\n", s, body.substr(0, 300).c_str());
          continue;
        }
        std::string text;
        if (stream) for (const auto& l : lines(body)) text += l["response"].get<std::string>();
        else text = json::parse(body)["response"];
        if (text != alone[i]) {
          ++failures;
          std::printf("[parallel] %s prompt %zu: got '%s' alone '%s'\n", stream ? "streamed" : "whole", i, text.c_str(), alone[i].c_str());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  // A request stays "active" until the server has finished its bookkeeping, which can be a moment after
  // the client has read the last byte of the body.
  for (int i = 0; i < 200 && metric("g3n_active_requests") != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(metric("g3n_active_requests"), 0);
}

TEST_F(ServerConcurrency, FullQueueAnswers503) {
  srv_.reset();
  start(/*parallel=*/1, /*queue=*/0);
  std::atomic<bool> first_started{false};
  std::thread long_one([&] {
    post_streaming(json{{"model", "tiny"}, {"prompt", "long"}, {"options", greedy(150)}}, [&] {
      first_started = true;
      return true;
    });
  });
  for (int i = 0; i < 2000 && !first_started; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(first_started.load());
  auto [s, r] = post("/api/generate", {{"model", "tiny"}, {"prompt", "x"}, {"stream", false}, {"options", greedy(2)}});
  EXPECT_EQ(s, 503);
  EXPECT_NE(r["error"].get<std::string>().find("server busy"), std::string::npos);
  long_one.join();
}

TEST_F(ServerConcurrency, ClientDisconnectCancelsGeneration) {
  {
    int chunks = 0;
    post_streaming(json{{"model", "tiny"}, {"prompt", "go on"}, {"options", greedy(400)}},
                   [&] { return ++chunks < 3; });  // hang up after a few tokens
  }
  // The slot frees well before 400 tokens could have been generated.
  for (int i = 0; i < 400 && metric("g3n_active_requests") != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(metric("g3n_active_requests"), 0);
  EXPECT_LT(metric("g3n_tokens_generated_total"), 400);
  // Still serving.
  EXPECT_EQ(post("/api/generate", {{"model", "tiny"}, {"prompt", "x"}, {"stream", false}, {"options", greedy(2)}}).first, 200);
}

// A long generation followed by a short request on the same slot (prefix reuse after the sliding
// rings have wrapped) must still answer 200.
TEST_F(ServerConcurrency, ShortRequestAfterLongGeneration) {
  auto [s1, r1] = post("/api/generate", {{"model", "tiny"}, {"prompt", "go on"}, {"stream", false}, {"options", greedy(400)}});
  ASSERT_EQ(s1, 200) << r1.dump();
  auto [s2, r2] = post("/api/generate", {{"model", "tiny"}, {"prompt", "x"}, {"stream", false}, {"options", greedy(2)}});
  EXPECT_EQ(s2, 200) << r2.dump();
  auto [s3, r3] = post("/api/generate", {{"model", "tiny"}, {"prompt", "go on"}, {"stream", false}, {"options", greedy(2)}});
  EXPECT_EQ(s3, 200) << r3.dump();
}

// Non-streamed requests: a long generation answers as a chunked body of spaces then the JSON object
// (which clients parse normally), and a client that hangs up mid-way cancels it.
TEST_F(ServerConcurrency, NonStreamedLongGenerationIsValidJsonAndCancelsOnDisconnect) {
  srv_.reset();
  start(/*parallel=*/2, /*queue=*/16, /*sync_answer=*/std::chrono::milliseconds(10));
  // Completes normally: leading spaces, then the usual object.
  auto [s, body] = post_raw("/api/generate", json{{"model", "tiny"}, {"prompt", "Hello there"}, {"stream", false}, {"options", greedy(60)}}.dump());
  ASSERT_EQ(s, 200);
  const json j = json::parse(body);
  EXPECT_EQ(j["done"], true);
  EXPECT_EQ(j["eval_count"], 60);
  const auto before = metric("g3n_tokens_generated_total");
  {
    // A raw socket: send the request, read the first bytes (headers, probing spaces), hang up.
    const int fd = connect_raw();
    ASSERT_GE(fd, 0);
    const std::string body = json{{"model", "tiny"}, {"prompt", "go on"}, {"stream", false}, {"options", greedy(400)}}.dump();
    const std::string req = "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body;
    ASSERT_EQ(send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
    char buf[256];
    ASSERT_GT(recv(fd, buf, sizeof buf, 0), 0);  // the 200 header of the chunked answer
    close(fd);
  }
  for (int i = 0; i < 400 && metric("g3n_active_requests") != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(metric("g3n_active_requests"), 0);
  EXPECT_LT(metric("g3n_tokens_generated_total") - before, 400);
  auto [s2, r2] = post("/api/generate", {{"model", "tiny"}, {"prompt", "x"}, {"stream", false}, {"options", greedy(2)}});
  EXPECT_EQ(s2, 200) << r2.dump();
}

}  // namespace

namespace {

long rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

class ServerLoad : public ServerFixture {
 protected:
  void SetUp() override { start(/*parallel=*/8, /*queue=*/64); }
};

// The issue's load test: 8 concurrent clients x 20 requests on loopback, all greedy; zero failures, every
// answer identical to the same request sent alone (batched decoding is batch-invariant), and server
// memory flat between the first and the last round.
TEST_F(ServerLoad, EightClientsTwentyRequestsEach) {
  const std::vector<std::string> prompts = {"Hello", "The sky is", "Once upon a time", "Numbers: 1 2 3",
                                            "Paris", "What is the capital of France?", "A B C", "Tell me"};
  std::vector<std::string> alone;
  for (const auto& p : prompts)
    alone.push_back(post("/api/generate", {{"model", "tiny"}, {"prompt", p}, {"stream", false}, {"options", greedy(12)}}).second["response"]);
  std::atomic<int> failures{0}, mismatches{0};
  long rss_after_first = 0;
  for (int round = 0; round < 20; ++round) {
    std::vector<std::thread> clients;
    for (int c = 0; c < 8; ++c) {
      clients.emplace_back([&, c, round] {
        const size_t i = static_cast<size_t>(c + round) % prompts.size();
        const bool stream = (c + round) % 2 == 0;
        auto [s, body] = post_raw("/api/generate", json{{"model", "tiny"}, {"prompt", prompts[i]}, {"stream", stream}, {"options", greedy(12)}}.dump());
        if (s != 200) { ++failures; return; }
        std::string text;
        if (stream) for (const auto& l : lines(body)) text += l["response"].get<std::string>();
        else text = json::parse(body)["response"];
        if (text != alone[i]) ++mismatches;
      });
    }
    for (auto& t : clients) t.join();
    if (round == 0) rss_after_first = rss_kb();
  }
  const long rss_last = rss_kb();
  std::printf("[load] 160 requests: %d failed, %d differed; RSS after round 1 %ld kB, after round 20 %ld kB\n",
              failures.load(), mismatches.load(), rss_after_first, rss_last);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_LE(rss_last - rss_after_first, 16 * 1024) << "server memory grew between the first and last round";
}


// ---- images ----

const std::string kVisionDir = std::string(G3N_FIXTURES_DIR) + "/gemma3n-vision-tiny";
const std::string kProjector = kVisionDir + "/models/gemma3n-vision-tiny-mmproj-f16.gguf";
const std::string kSceneJpg = kVisionDir + "/inputs/scene_640x480.jpg";
const std::string kGradientPng = kVisionDir + "/inputs/gradient_shapes_512x512.png";
constexpr int kImageRows = 258;  // <start_of_image>, 256 soft rows, the <end_of_image> row

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string b64(std::string_view bytes) {
  static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int k = 3; k >= 0; --k) out += abc[(v >> (6 * k)) & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint8_t(bytes[i]) << 16;
    out += abc[v >> 18];
    out += abc[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += abc[v >> 18];
    out += abc[(v >> 12) & 63];
    out += abc[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

uint32_t crc32(std::string_view data) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : data) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

// A PNG whose header claims width x height (no pixel data): the pixel limit must refuse it unread.
std::string png_header(uint32_t width, uint32_t height) {
  const auto be32 = [](uint32_t v) { return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; };
  const std::string ihdr = "IHDR" + be32(width) + be32(height) + std::string{8, 2, 0, 0, 0};
  return std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + ihdr + be32(crc32(ihdr)) + be32(0) + "IDAT" + be32(crc32("IDAT"));
}

// The rows a rendered prompt with n images takes (the layout's count, with stand-in rows).
size_t layout_rows(const std::string& rendered, size_t n_images) {
  const GgufFile file = GgufFile::open(kModel);
  const Tokenizer tok = Tokenizer::from_gguf(file);
  const std::vector<float> soft(kImageRows - 2, 0.0f);
  static const float end_row = 0.0f;
  const std::vector<chat::ImageRows> rows(n_images, chat::ImageRows{soft, std::span<const float>(&end_row, 1), 1});
  return chat::layout_image_prompt(tok, rendered, rows).size();
}

std::string user_prompt(const std::string& content) {
  const std::vector<chat::Message> msgs{{chat::Role::User, content}};
  return chat::format_gemma(msgs, true);
}

class ServerImages : public ServerFixture {
 protected:
  void SetUp() override {}  // each test starts the server, some with a hook first
  // "seeing": the fixture's text model with the tiny vision projector (no params, no system prompt).
  void add_seeing_model() const {
    store::ModelStore st = test_store();
    store::Modelfile mf;
    mf.from = kModel;
    mf.extra_from = {kProjector};
    store::create_model(st, store::parse_model_name("seeing"), mf, fs::current_path(), [](const std::string&) {});
  }
  void start_seeing(int parallel = 2) {
    start(parallel);
    add_seeing_model();
  }
  // Polls a counter until it reaches `want` (the server updates some after the client has its answer).
  double await_metric(const std::string& name, double want) const {
    double v = metric(name);
    for (int i = 0; i < 500 && v < want; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      v = metric(name);
    }
    return v;
  }
};

TEST_F(ServerImages, EveryApiTakesAnImageAsItsRows) {
  start_seeing();
  const std::string img = b64(file_bytes(kSceneJpg));
  const std::string question = "What is this?";
  const size_t want = layout_rows(user_prompt(chat::images_then_text(1, question)), 1);

  auto [s0, text] = post("/api/generate", {{"model", "seeing"}, {"prompt", question}, {"stream", false}, {"options", greedy(3)}});
  ASSERT_EQ(s0, 200) << text.dump();
  auto [s1, g] = post("/api/generate", {{"model", "seeing"}, {"prompt", question}, {"images", {img}}, {"stream", false}, {"options", greedy(3)}});
  ASSERT_EQ(s1, 200) << g.dump();
  EXPECT_EQ(g["eval_count"], 3);
  EXPECT_EQ(g["prompt_eval_count"], want);
  EXPECT_GE(g["prompt_eval_count"].get<int>() - text["prompt_eval_count"].get<int>(), kImageRows);
  EXPECT_FALSE(g.contains("context")) << "image rows are no token ids";
  EXPECT_EQ(metric("g3n_images_encoded_total"), 1);

  // The same image through /api/chat (images before the text) and /v1 (an image part, then a text part):
  // the same prompt, so the same rows and the same greedy answer; the image is not encoded again.
  auto [s2, c] = post("/api/chat", {{"model", "seeing"}, {"stream", false}, {"options", greedy(3)},
                                    {"messages", {{{"role", "user"}, {"content", question}, {"images", {img}}}}}});
  ASSERT_EQ(s2, 200) << c.dump();
  EXPECT_EQ(c["prompt_eval_count"], want);
  EXPECT_EQ(c["message"]["content"], g["response"]);
  const json parts = {{{"type", "image_url"}, {"image_url", {{"url", "data:image/jpeg;base64," + img}}}}, {{"type", "text"}, {"text", question}}};
  auto [s3, o] = post("/v1/chat/completions", {{"model", "seeing"}, {"max_tokens", 3}, {"temperature", 0},
                                               {"messages", {{{"role", "user"}, {"content", parts}}}}});
  ASSERT_EQ(s3, 200) << o.dump();
  EXPECT_EQ(o["usage"]["prompt_tokens"], want);
  EXPECT_EQ(o["choices"][0]["message"]["content"], g["response"]);
  // The whole prompt was this slot's last one: everything but the last row is reused.
  EXPECT_EQ(o["usage"]["prompt_tokens_details"]["cached_tokens"], want - 1);
  EXPECT_EQ(metric("g3n_images_encoded_total"), 1);
  EXPECT_EQ(metric("g3n_images_cached_total"), 2);

  // image_url as a plain string, after the text: another position, so other rows.
  const json after = {{{"type", "text"}, {"text", question}}, {{"type", "image_url"}, {"image_url", "data:image/jpeg;base64," + img}}};
  auto [s4, o2] = post("/v1/chat/completions", {{"model", "seeing"}, {"max_tokens", 2}, {"temperature", 0},
                                                {"messages", {{{"role", "user"}, {"content", after}}}}});
  ASSERT_EQ(s4, 200) << o2.dump();
  EXPECT_EQ(o2["usage"]["prompt_tokens"], layout_rows(user_prompt(question + std::string(chat::kImagePlaceholder)), 1));
  // After an earlier answer's context (its tokens first, then the new turn, no second BOS), and raw.
  auto [s6, cont] = post("/api/generate", {{"model", "seeing"}, {"prompt", question}, {"images", {img}}, {"context", text["context"]},
                                           {"stream", false}, {"options", greedy(1)}});
  ASSERT_EQ(s6, 200) << cont.dump();
  EXPECT_EQ(cont["prompt_eval_count"], text["context"].size() + want - 1);
  const std::string raw = "Look: " + std::string(chat::kImagePlaceholder) + " now";
  auto [s7, r7] = post("/api/generate", {{"model", "seeing"}, {"prompt", raw}, {"raw", true}, {"images", {img}}, {"stream", false}, {"options", greedy(1)}});
  ASSERT_EQ(s7, 200) << r7.dump();
  EXPECT_EQ(r7["prompt_eval_count"], layout_rows(raw, 1));
  // Streaming works the same way.
  auto [s5, body] = post_raw("/api/generate", json{{"model", "seeing"}, {"prompt", question}, {"images", {img}}, {"options", greedy(3)}}.dump());
  ASSERT_EQ(s5, 200);
  const auto lines = ServerTest::lines(body);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back()["prompt_eval_count"], want);
}

TEST_F(ServerImages, ContentPartsKeepTheirOrder) {
  const std::string img = "data:image/png;base64," + b64(file_bytes(kGradientPng));
  const json body = {{"model", "m"},
                     {"messages",
                      {{{"role", "user"},
                        {"content",
                         {{{"type", "text"}, {"text", "Compare"}}, {{"type", "image_url"}, {"image_url", {{"url", img}}}},
                          {{"type", "text"}, {"text", "with"}}, {{"type", "text"}, {"text", "this:"}},
                          {{"type", "image_url"}, {"image_url", img}}}}}}}};
  const server::OpenAIRequest r = server::parse_openai_chat(body);
  ASSERT_EQ(r.messages.size(), 1u);
  const std::string ph(chat::kImagePlaceholder);
  EXPECT_EQ(r.messages[0].content, "Compare" + ph + "with\nthis:" + ph);
  ASSERT_EQ(r.messages[0].media.size(), 2u);
  EXPECT_EQ(r.messages[0].media[0].where, "messages[0].content[1]");
  EXPECT_EQ(r.messages[0].media[1].where, "messages[0].content[4]");
  // Ollama's messages: images first, in array order.
  const server::ChatRequest c = server::parse_chat(
      {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", " Compare "}, {"images", {b64(file_bytes(kGradientPng)), b64(file_bytes(kSceneJpg))}}}}}});
  EXPECT_EQ(c.messages[0].content, ph + ph + "Compare");
  EXPECT_EQ(c.messages[0].media[1].bytes->size(), file_bytes(kSceneJpg).size());
  EXPECT_EQ(c.messages[0].media[1].where, "messages[0].images[1]");
}

// Prompt fitting counts an image as its rows and never cuts one: the oldest turns go whole, with their
// images; a prompt that still does not fit is a 400 that gives the numbers.
TEST_F(ServerImages, FittingDropsOldTurnsWholeAndNeverCutsAnImage) {
  const GgufFile file = GgufFile::open(kModel);
  const Tokenizer tok = Tokenizer::from_gguf(file);
  const auto image = [](const std::string& where) {
    return server::MediaInput{chat::MediaKind::Image, std::make_shared<const std::vector<uint8_t>>(), where, nullptr};
  };
  const std::string ph(chat::kImagePlaceholder);
  const server::MediaShape shape{kImageRows, kImageRows - 2, 0, 0};
  std::vector<server::InMessage> msgs = {{"user", ph + "first", {image("a")}}, {"assistant", "ok", {}}, {"user", ph + "second", {image("b")}}};
  server::BuiltPrompt all = server::build_chat_prompt(msgs, std::nullopt, nullptr, tok, 2048, true, shape);
  EXPECT_EQ(all.media.size(), 2u);
  EXPECT_EQ(all.dropped_turns, 0u);
  EXPECT_TRUE(all.rows.empty()) << "rows are laid out once the images are encoded";
  server::BuiltPrompt last = server::build_chat_prompt(msgs, std::nullopt, nullptr, tok, 540, true, shape);
  EXPECT_EQ(last.dropped_turns, 2u);
  ASSERT_EQ(last.media.size(), 1u);
  EXPECT_EQ(last.media[0].where, "b");
  EXPECT_EQ(last.text.find("first"), std::string::npos);
  EXPECT_NE(last.text.find(ph + "second"), std::string::npos);
  try {
    server::build_chat_prompt(msgs, std::nullopt, nullptr, tok, 540, /*truncate=*/false, shape);
    ADD_FAILURE() << "truncate false: expected a 400";
  } catch (const server::HttpError& e) {
    EXPECT_EQ(e.status(), 400);
  }
  // Two images in the last turn cannot be dropped: the numbers, not a cut.
  msgs = {{"user", ph + ph + "both", {image("a"), image("b")}}};
  try {
    server::build_chat_prompt(msgs, std::nullopt, nullptr, tok, 512, true, shape);
    ADD_FAILURE() << "expected a 400";
  } catch (const server::HttpError& e) {
    EXPECT_EQ(e.status(), 400);
    const std::string m = e.what();
    EXPECT_NE(m.find("2 image(s) of 258 rows each"), std::string::npos) << m;
    EXPECT_NE(m.find("but num_ctx is 512"), std::string::npos) << m;
  }
  // A text that spells the image marker would shift the images: refused.
  msgs = {{"user", ph + "see " + ph, {image("a")}}};
  EXPECT_THROW(server::build_chat_prompt(msgs, std::nullopt, nullptr, tok, 2048, true, shape), server::HttpError);
}

TEST_F(ServerImages, ErrorsAreClear400s) {
  start_seeing();
  const std::string jpg = file_bytes(kSceneJpg);
  const auto gen_error = [&](const std::string& model, const json& images, const json& options = greedy(1)) {
    auto [s, r] = post("/api/generate", {{"model", model}, {"prompt", "x"}, {"images", images}, {"stream", false}, {"options", options}});
    EXPECT_EQ(s, 400) << r.dump();
    return r.value("error", std::string());
  };
  const auto has = [](const std::string& msg, const std::string& part) {
    EXPECT_NE(msg.find(part), std::string::npos) << "'" << msg << "' lacks '" << part << "'";
  };
  has(gen_error("seeing", {"not-base64"}), "images[0]: not base64 (invalid character '-' at offset 3)");
  has(gen_error("seeing", {b64(jpg), "aGVsbG8gd29ybGQ="}), "invalid image in images[1]: image: unknown format");
  has(gen_error("seeing", {""}), "invalid image in images[0]: no data");
  has(gen_error("seeing", {7}), "invalid type for \"images[0]\"");
  has(gen_error("seeing", "abc"), "invalid type for \"images\"");
  has(gen_error("seeing", {b64(jpg.substr(0, jpg.size() / 2))}), "invalid image in images[0]: JPEG");
  has(gen_error("seeing", {b64(png_header(9000, 9000))}), "image too large in images[0]: 9000x9000 is 81000000 pixels");
  has(gen_error("tiny", {b64(jpg)}), "model has no vision projector");
  has(gen_error("seeing", {b64(jpg), b64(jpg)}, json{{"num_ctx", 512}}), "but num_ctx is 512");
  auto [s1, c] = post("/api/chat", {{"model", "seeing"}, {"messages", {{{"role", "user"}, {"content", "x"}, {"images", {"%%%"}}}}}});
  EXPECT_EQ(s1, 400);
  has(c["error"], "messages[0].images[0]: not base64");
  const auto openai_error = [&](const json& part) {
    auto [s, r] = post("/v1/chat/completions", {{"model", "seeing"}, {"messages", {{{"role", "user"}, {"content", {part}}}}}});
    EXPECT_EQ(s, 400) << r.dump();
    return r["error"].value("message", std::string());
  };
  has(openai_error({{"type", "image_url"}, {"image_url", {{"url", "https://example.com/cat.png"}}}}), "the server makes no outbound requests");
  has(openai_error({{"type", "image_url"}, {"image_url", "http://example.com/cat.png"}}), "the server makes no outbound requests");
  has(openai_error({{"type", "image_url"}, {"image_url", {{"url", "file:///etc/passwd"}}}}), "expected a data URL");
  has(openai_error({{"type", "image_url"}, {"image_url", {{"url", "data:image/png,hello"}}}}), "the data must be base64");
  has(openai_error({{"type", "image_url"}, {"image_url", {{"url", "data:text/plain;base64,aGVsbG8="}}}}), "is not an image");
  has(openai_error({{"type", "image_url"}, {"image_url", {{"detail", "high"}}}}), "invalid image_url in messages[0].content[0]");
  // Still serving, images included.
  auto [s2, ok] = post("/api/generate", {{"model", "seeing"}, {"prompt", "x"}, {"images", {b64(jpg)}}, {"stream", false}, {"options", greedy(1)}});
  EXPECT_EQ(s2, 200) << ok.dump();
}

// A projector whose text width is not the model's: `g3n create` refuses the pair, but one that reaches
// the store otherwise (another tool's manifest) is refused when the model loads: text still works,
// images get a 400 that says why.
TEST_F(ServerImages, MismatchedProjectorIsRefusedClearly) {
  start();
  RandomModelSpec spec;
  spec.n_embd = 128;
  spec.quant = "f16";  // k-quants need rows of 256
  const fs::path narrow = root_ / "narrow.gguf";
  write_random_gemma3n(spec, narrow.string(), 1);
  store::ModelStore st = test_store();
  store::Modelfile mf;
  mf.from = narrow.string();
  const store::ModelName name = store::parse_model_name("narrow");
  store::create_model(st, name, mf, fs::current_path(), [](const std::string&) {});
  store::Manifest manifest = *st.read_manifest(name);
  manifest.layers.push_back({std::string(store::media::kProjector), st.put_blob_file(kProjector),
                      static_cast<int64_t>(fs::file_size(kProjector)), ""});
  st.write_manifest(name, manifest);
  EXPECT_EQ(post("/api/generate", {{"model", "narrow"}, {"prompt", "x"}, {"stream", false}, {"options", greedy(1)}}).first, 200);
  auto [s, r] = post("/api/generate", {{"model", "narrow"}, {"prompt", "x"}, {"images", {b64(file_bytes(kSceneJpg))}}, {"stream", false}});
  EXPECT_EQ(s, 400) << r.dump();
  const std::string m = r["error"];
  EXPECT_NE(m.find("vision projector that cannot be used"), std::string::npos) << m;
  EXPECT_NE(m.find("text width is 256 but the model's embedding width is 128"), std::string::npos) << m;
}

// Encoding runs in the request's thread, not the scheduler's loop: while one request's image is held
// in its encode, another request generates to the end.
TEST_F(ServerImages, TextCompletesWhileAnImageEncodes) {
  std::mutex mu;
  std::condition_variable cv;
  bool encoding = false, release = false;
  image_hook_ = [&](const std::atomic<bool>&) {
    std::unique_lock lk(mu);
    encoding = true;
    cv.notify_all();
    cv.wait_for(lk, std::chrono::seconds(60), [&] { return release; });
  };
  start_seeing();
  std::pair<int, json> image_answer;
  std::thread image_request([&] {
    image_answer = post("/api/generate", {{"model", "seeing"}, {"prompt", "x"}, {"images", {b64(file_bytes(kSceneJpg))}},
                                          {"stream", false}, {"options", greedy(2)}});
  });
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(60), [&] { return encoding; }));
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto [s, text] = post("/api/generate", {{"model", "seeing"}, {"prompt", "Hello"}, {"stream", false}, {"options", greedy(8)}});
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  {
    std::lock_guard lk(mu);
    EXPECT_FALSE(release) << "the text request finished only after the encode was released";
    release = true;
  }
  cv.notify_all();
  image_request.join();
  EXPECT_EQ(s, 200) << text.dump();
  EXPECT_EQ(text["eval_count"], 8);
  EXPECT_LT(waited, 50.0);
  EXPECT_EQ(image_answer.first, 200) << image_answer.second.dump();
}

// A client that hangs up while its image encodes cancels the encode (the flag the tower polls between
// blocks is set), and nothing is generated for it.
TEST_F(ServerImages, DisconnectCancelsTheEncode) {
  std::atomic<int> saw_cancel{0};
  std::atomic<bool> hold{true};
  image_hook_ = [&](const std::atomic<bool>& cancel) {
    if (!hold.load()) return;
    for (int i = 0; i < 3000 && !cancel.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    saw_cancel = cancel.load() ? 1 : -1;
  };
  start_seeing();
  {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(1, 0);  // gives up (and closes the connection) while the image is "encoding"
    auto r = c.Post("/api/generate", json{{"model", "seeing"}, {"prompt", "x"}, {"images", {b64(file_bytes(kSceneJpg))}},
                                          {"options", greedy(50)}}.dump(), "application/json");
    EXPECT_FALSE(r);
  }
  EXPECT_EQ(await_metric("g3n_image_encodes_cancelled_total", 1), 1);
  EXPECT_EQ(saw_cancel.load(), 1);
  EXPECT_EQ(metric("g3n_images_encoded_total"), 0);
  EXPECT_EQ(metric("g3n_tokens_generated_total"), 0);
  hold = false;
  // The server goes on serving images (the cancelled image was never cached).
  auto [s, r] = post("/api/generate", {{"model", "seeing"}, {"prompt", "x"}, {"images", {b64(file_bytes(kSceneJpg))}},
                                       {"stream", false}, {"options", greedy(1)}});
  EXPECT_EQ(s, 200) << r.dump();
}

// A conversation that sends its image again in a later turn: the image is not encoded again, and the
// slot's cached rows (the image's included) are reused.
TEST_F(ServerImages, LaterTurnsReuseTheImageAndItsRows) {
  start_seeing(/*parallel=*/1);
  const std::string img = b64(file_bytes(kGradientPng));
  json messages = {{{"role", "user"}, {"content", "Describe it."}, {"images", {img}}}};
  auto [s1, r1] = post("/api/chat", {{"model", "seeing"}, {"messages", messages}, {"stream", false}, {"options", greedy(4)}});
  ASSERT_EQ(s1, 200) << r1.dump();
  const int first = r1["prompt_eval_count"];
  EXPECT_GT(first, kImageRows);
  EXPECT_EQ(metric("g3n_images_encoded_total"), 1);
  const double cached_before = metric("g3n_prompt_cached_tokens_total");
  messages.push_back(r1["message"]);
  messages.push_back({{"role", "user"}, {"content", "And the colours?"}});
  auto [s2, r2] = post("/api/chat", {{"model", "seeing"}, {"messages", messages}, {"stream", false}, {"options", greedy(4)}});
  ASSERT_EQ(s2, 200) << r2.dump();
  EXPECT_GT(r2["prompt_eval_count"].get<int>(), first);
  EXPECT_EQ(metric("g3n_images_encoded_total"), 1) << "the image was encoded again";
  EXPECT_EQ(metric("g3n_images_cached_total"), 1);
  // Every row of the first prompt, image included, came from the slot's cache (the answer's own
  // tokens may tokenize differently once they are text in the next prompt).
  EXPECT_GE(metric("g3n_prompt_cached_tokens_total") - cached_before, first);
}

TEST_F(ServerImages, PsAndTheEstimateCountTheProjector) {
  start_seeing();
  ASSERT_EQ(post("/api/generate", {{"model", "tiny"}}).first, 200);
  ASSERT_EQ(post("/api/generate", {{"model", "seeing"}}).first, 200);
  const Mmproj mm = load_mmproj(kProjector);
  const ProjectorEstimate est = estimate_projector_memory(mm);
  uint64_t tensor_bytes = 0;
  for (const auto& t : mm.file->tensors()) tensor_bytes += t.nbytes;
  EXPECT_GT(est.weights, tensor_bytes);  // plus the k x k kernels decoded to f32
  EXPECT_LT(est.weights, 2 * tensor_bytes + (1u << 20));
  // At least the input and the stem's output at 512 x 512; the largest map of the tiny tower is the
  // first block's 32-channel expansion at 128 x 128 next to its input and output.
  EXPECT_GE(est.activations, 4u * (3 * 512 * 512 + 8 * 256 * 256));
  EXPECT_LT(est.activations, 64u << 20);
  const json ps = get("/api/ps").second;
  int64_t tiny = 0, seeing = 0;
  for (const auto& m : ps["models"]) (m["name"] == "tiny:latest" ? tiny : seeing) = m["size"];
  EXPECT_EQ(seeing - tiny, static_cast<int64_t>(est.total()));
}

}  // namespace

namespace g3n {
namespace {

// Audio in every API: the audio fixture's tower (text width 256) on the tiny text model as "hearing".
const std::string kAudioDir = std::string(G3N_FIXTURES_DIR) + "/gemma3n-audio-tiny";
const std::string kAudioProjector = kAudioDir + "/models/gemma3n-audio-tiny-mmproj-f16.gguf";
const std::string kSpeechWav = kAudioDir + "/inputs/a_speech_16k_mono_s16.wav";  // 3.7 s: one block
const std::string kLongWav = kAudioDir + "/inputs/c_long_34s_16k_mono_s16.wav";   // 34 s: two blocks

class ServerAudio : public ServerFixture {
 protected:
  void SetUp() override {}
  void start_hearing() {
    transcribe_model_ = "hearing";
    start(2);
    store::ModelStore st = test_store();
    store::Modelfile mf;
    mf.from = kModel;
    mf.extra_from = {kAudioProjector};
    store::create_model(st, store::parse_model_name("hearing"), mf, fs::current_path(), [](const std::string&) {});
  }
  httplib::Result upload(const std::string& path, const std::string& wav, const std::string& model, const std::string& format = "") const {
    auto c = client();
    httplib::MultipartFormDataItems items = {{"file", wav, "speech.wav", "audio/wav"}, {"model", model, "", ""}};
    if (!format.empty()) items.push_back({"response_format", format, "", ""});
    return c.Post(path.c_str(), items);
  }
};

TEST_F(ServerAudio, EveryChatApiTakesAudioAsItsRows) {
  start_hearing();
  const std::string wav = b64(file_bytes(kSpeechWav));
  const std::string question = "What is said?";
  auto [s0, text] = post("/api/chat", {{"model", "hearing"}, {"stream", false}, {"options", greedy(3)},
                                       {"messages", {{{"role", "user"}, {"content", question}}}}});
  ASSERT_EQ(s0, 200) << text.dump();
  auto [s1, c] = post("/api/chat", {{"model", "hearing"}, {"stream", false}, {"options", greedy(3)},
                                    {"messages", {{{"role", "user"}, {"content", question}, {"audio", {wav}}}}}});
  ASSERT_EQ(s1, 200) << c.dump();
  // 188 soft rows, <start_of_audio> (as text in this vocabulary) and the <end_of_audio> row, "\n\n" around.
  EXPECT_GE(c["prompt_eval_count"].get<int>() - text["prompt_eval_count"].get<int>(), 190);
  EXPECT_EQ(metric("g3n_audio_encoded_total"), 1);
  // The same recording as an OpenAI input_audio part before the text: the same prompt, the same greedy
  // answer, and the encoder's cache answers.
  const json parts = {{{"type", "input_audio"}, {"input_audio", {{"data", wav}, {"format", "wav"}}}}, {{"type", "text"}, {"text", question}}};
  auto [s2, o] = post("/v1/chat/completions", {{"model", "hearing"}, {"max_tokens", 3}, {"temperature", 0},
                                               {"messages", {{{"role", "user"}, {"content", parts}}}}});
  ASSERT_EQ(s2, 200) << o.dump();
  EXPECT_EQ(o["usage"]["prompt_tokens"], c["prompt_eval_count"]);
  EXPECT_EQ(o["choices"][0]["message"]["content"], c["message"]["content"]);
  double cached = metric("g3n_audio_cached_total");
  for (int i = 0; i < 500 && cached < 1; ++i) {  // the server may count it after the client has its answer
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    cached = metric("g3n_audio_cached_total");
  }
  EXPECT_GE(cached, 1);
  // /api/generate: audio before the prompt's text, no `context` (vector rows are no token ids).
  auto [s3, g] = post("/api/generate", {{"model", "hearing"}, {"prompt", question}, {"audio", {wav}}, {"stream", false}, {"options", greedy(2)}});
  ASSERT_EQ(s3, 200) << g.dump();
  EXPECT_FALSE(g.contains("context"));
  // A 34 s recording is two 30 s blocks.
  auto [s4, l] = post("/api/generate", {{"model", "hearing"}, {"prompt", "x"}, {"audio", {b64(file_bytes(kLongWav))}}, {"stream", false},
                                        {"options", greedy(1)}});
  ASSERT_EQ(s4, 200) << l.dump();
  EXPECT_GE(l["prompt_eval_count"].get<int>(), 2 * 190);
  auto [s5, show] = post("/api/show", {{"model", "hearing"}});
  ASSERT_EQ(s5, 200);
  const auto caps = show["capabilities"].get<std::vector<std::string>>();
  EXPECT_NE(std::find(caps.begin(), caps.end(), "audio"), caps.end());
  EXPECT_EQ(std::find(caps.begin(), caps.end(), "vision"), caps.end());
}

TEST_F(ServerAudio, TranscriptionsChunkLongAudioAndAnswerEveryFormat) {
  start_hearing();
  const std::string wav = file_bytes(kLongWav);
  auto r = upload("/v1/audio/transcriptions", wav, "whisper-1", "verbose_json");  // mapped to "hearing"
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json v = json::parse(r->body);
  EXPECT_EQ(v["task"], "transcribe");
  EXPECT_NEAR(v["duration"].get<double>(), 34.0, 1e-6);
  ASSERT_EQ(v["segments"].size(), 2u);
  EXPECT_EQ(v["segments"][0]["start"], 0.0);
  EXPECT_EQ(v["segments"][1]["start"], 30.0);
  EXPECT_NEAR(v["segments"][1]["end"].get<double>(), 34.0, 1e-6);
  EXPECT_TRUE(v["text"].is_string());
  r = upload("/v1/audio/translations", file_bytes(kSpeechWav), "hearing", "json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(json::parse(r->body).contains("text"));
  r = upload("/v1/audio/transcriptions", wav, "hearing", "srt");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("1\n00:00:00,000 --> 00:00:30,000\n"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("2\n00:00:30,000 --> 00:00:34,000\n"), std::string::npos) << r->body;
  r = upload("/v1/audio/transcriptions", file_bytes(kSpeechWav), "hearing", "vtt");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body.rfind("WEBVTT\n\n00:00:00.000 --> 00:00:03.700\n", 0), 0u) << r->body;
  r = upload("/v1/audio/transcriptions", file_bytes(kSpeechWav), "hearing", "text");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/plain"), std::string::npos);
}

TEST_F(ServerAudio, ErrorsAreClear) {
  start_hearing();
  const std::string wav = b64(file_bytes(kSpeechWav));
  const auto chat_error = [&](const std::string& model, const json& audio, const json& options = greedy(1)) {
    auto [s, r] = post("/api/chat", {{"model", model}, {"stream", false}, {"options", options},
                                     {"messages", {{{"role", "user"}, {"content", "x"}, {"audio", audio}}}}});
    EXPECT_EQ(s, 400) << r.dump();
    return r.value("error", std::string());
  };
  const auto has = [](const std::string& msg, const std::string& part) {
    EXPECT_NE(msg.find(part), std::string::npos) << "'" << msg << "' lacks '" << part << "'";
  };
  has(chat_error("tiny", {wav}), "model has no audio encoder");
  has(chat_error("hearing", {"aGVsbG8gd29ybGQ="}), "invalid audio in messages[0].audio[0]");
  has(chat_error("hearing", {"%%%"}), "messages[0].audio[0]: not base64");
  has(chat_error("hearing", {b64(file_bytes(kLongWav))}, json{{"num_ctx", 300}, {"num_predict", 1}}), "seconds of audio");
  auto [s1, img] = post("/api/chat", {{"model", "hearing"}, {"messages", {{{"role", "user"}, {"content", "x"}, {"images", {b64(file_bytes(kSceneJpg))}}}}}});
  EXPECT_EQ(s1, 400);
  has(img.value("error", ""), "model has no vision projector");
  auto [s2, o] = post("/v1/chat/completions", {{"model", "hearing"}, {"messages", {{{"role", "user"}, {"content", {{{"type", "input_audio"}, {"input_audio", "x"}}}}}}}});
  EXPECT_EQ(s2, 400) << o.dump();
  auto r = upload("/v1/audio/transcriptions", file_bytes(kSpeechWav), "hearing", "xml");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = upload("/v1/audio/transcriptions", "not audio", "hearing");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("invalid audio in file"), std::string::npos) << r->body;
  r = upload("/v1/audio/transcriptions", file_bytes(kSpeechWav), "tiny");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("model has no audio encoder"), std::string::npos) << r->body;
  auto c = client();
  auto plain = c.Post("/v1/audio/transcriptions", "{}", "application/json");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->status, 400);
}

}  // namespace
// A `format` schema's properties come out in the order the request declares them (not sorted, as a parse
// into nlohmann::json would have them), in /api/generate, /api/chat and /v1/chat/completions.
TEST_F(ServerStructured, PropertiesInDeclaredOrder) {
  const std::string schema =
      R"({"type":"object","properties":{"zeta":{"type":"integer"},"alpha":{"type":"boolean"},"mid":{"type":"string","maxLength":3}},"required":["zeta","alpha","mid"]})";
  const std::string opts = R"("options":{"temperature":0,"num_predict":200},"stream":false)";
  auto in_order = [](const std::string& out) {
    const size_t z = out.find("\"zeta\""), a = out.find("\"alpha\""), m = out.find("\"mid\"");
    return z != std::string::npos && a != std::string::npos && m != std::string::npos && z < a && a < m;
  };
  auto [s1, g] = post_raw("/api/generate", R"({"model":"tiny","prompt":"A record:",)" + opts + R"(,"format":)" + schema + "}");
  ASSERT_EQ(s1, 200) << g;
  const std::string gen = json::parse(g)["response"];
  EXPECT_TRUE(in_order(gen)) << gen;
  EXPECT_TRUE(json::parse(gen, nullptr, false).is_object()) << gen;
  auto [s2, c] = post_raw("/api/chat", R"({"model":"tiny","messages":[{"role":"user","content":"A record:"}],)" + opts + R"(,"format":)" + schema + "}");
  ASSERT_EQ(s2, 200) << c;
  const std::string chat = json::parse(c)["message"]["content"];
  EXPECT_TRUE(in_order(chat)) << chat;
  auto [s3, o] = post_raw("/v1/chat/completions", R"({"model":"tiny","messages":[{"role":"user","content":"A record:"}],"temperature":0,"max_tokens":200,)"
                                                  R"("response_format":{"type":"json_schema","json_schema":{"name":"r","schema":)" + schema + "}}}");
  ASSERT_EQ(s3, 200) << o;
  const std::string oa = json::parse(o)["choices"][0]["message"]["content"];
  EXPECT_TRUE(in_order(oa)) << oa;
}

}  // namespace g3n
