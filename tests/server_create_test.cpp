// Making models over HTTP: POST/HEAD /api/blobs/:digest and POST /api/create, in process over real HTTP
// on a random loopback port, each test with its own store. Uploads stream to disk (a body far over the
// in-memory limit goes through without the process growing by its size); a failed upload or create
// leaves the store as it was.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "server/create_request.h"
#include "server/options.h"
#include "server/server.h"
#include "server_util.h"
#include "store/file_util.h"
#include "store/model_store.h"
#include "store/modelfile.h"
#include "tools/hf_convert.h"
#include "tools/hf_test_checkpoint.h"
#include "tools/random_mmproj.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace g3n;

namespace {

const std::string kFixtures = G3N_FIXTURES_DIR;
const std::string kModel = test::kTinyModel;
const std::string kModelF16 = kFixtures + "/gemma3n-tiny/models/gemma3n-tiny-f16.gguf";
const std::string kMmproj = kFixtures + "/gemma3n-vision-tiny/models/gemma3n-vision-tiny-mmproj-f16.gguf";
const std::string kAudioMmproj = kFixtures + "/gemma3n-audio-tiny/models/gemma3n-audio-tiny-mmproj-f16.gguf";

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string digest_of(std::string_view data) { return "sha256:" + store::sha256_hex(data); }

// Peak resident memory of this process (VmHWM), in bytes.
int64_t peak_rss() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}

// "tiny" with a params layer and a system prompt (what `from` inherits); a small body limit, so that uploads
// far over it show they never go to memory.
class CreateFixture : public test::ServerTest {
 protected:
  test::ServerSetup setup() const override {
    test::ServerSetup s;
    s.max_body_bytes = 1u << 20;
    s.params = json{{"temperature", 0.1}};
    s.system = "You are terse.";
    return s;
  }
  // Every file under the store (names relative to it): what a failed request must leave unchanged.
  // The store's files now. The server may remove a temporary file while this walks (an interrupted upload
  // being cleaned up): a file that vanishes is skipped, and paths are made relative lexically (fs::relative
  // asks the file system, and threw for such a file when the machine was loaded).
  std::set<std::string> store_files() const {
    std::set<std::string> out;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_regular_file(ec) && !ec) out.insert(it->path().lexically_relative(root_).string());
    return out;
  }
  int head_blob(const std::string& digest) const {
    auto r = client().Head(("/api/blobs/" + digest).c_str());
    return r ? r->status : 0;
  }
  std::pair<int, std::string> upload(const std::string& digest, const std::string& data) const {
    auto r = client().Post(("/api/blobs/" + digest).c_str(), data, "application/octet-stream");
    if (!r) return {0, ""};
    return {r->status, r->body};
  }
  // Uploads a file as its own digest (201, or 200 when the store has it: the fixture model is "tiny"'s
  // layer); returns the digest.
  std::string upload_file(const std::string& path) const {
    const std::string data = read_all(path);
    const std::string d = digest_of(data);
    const int status = upload(d, data).first;
    EXPECT_TRUE(status == 201 || status == 200) << status;
    EXPECT_EQ(head_blob(d), 200);
    return d;
  }
  // A checkpoint directory's files uploaded as blobs: `files` for /api/create, as Ollama's client sends them.
  json upload_checkpoint(const fs::path& dir) const {
    json files = json::object();
    for (const auto& e : fs::directory_iterator(dir)) files[e.path().filename().string()] = upload_file(e.path().string());
    return files;
  }
  // A refused create, whole and streamed: its status, its message, no file of the store changed, no
  // staging left, and no server path in the message.
  void expect_refused(const std::string& what, const json& body, int status, const std::string& message) const {
    const auto before = store_files();
    for (bool stream : {false, true}) {
      json b = body;
      b["stream"] = stream;
      auto [s, out] = post("/api/create", b);
      EXPECT_EQ(s, status) << what << ": " << out;
      ASSERT_TRUE(out.is_object() && out.contains("error")) << what << ": " << out;
      const std::string e = out["error"];
      EXPECT_NE(e.find(message), std::string::npos) << what << ": " << e;
      EXPECT_EQ(e.find(root_.string()), std::string::npos) << what << ": " << e;
    }
    EXPECT_EQ(store_files(), before) << what;
    std::error_code ec;
    EXPECT_TRUE(!fs::exists(root_ / "tmp", ec) || fs::is_empty(root_ / "tmp", ec)) << what;
  }
  // POST /api/create with stream false.
  std::pair<int, json> create(json body) const {
    body["stream"] = false;
    return post("/api/create", body);
  }
  // The manifest of a store model.
  store::Manifest manifest(const std::string& name) const {
    return *test_store().read_manifest(store::parse_model_name(name));
  }

};

using ServerBlobs = CreateFixture;
using ServerCreate = CreateFixture;

TEST_F(ServerBlobs, UploadThenHead) {
  const std::string data = "hello, blob";
  const std::string d = digest_of(data);
  EXPECT_EQ(head_blob(d), 404);
  auto [s, body] = upload(d, data);
  EXPECT_EQ(s, 201) << body;
  EXPECT_EQ(head_blob(d), 200);
  EXPECT_EQ(read_all(test_store().blob_path(d)), data);
  // Already there: 200, the body is not needed (and the connection stays usable).
  auto c = client();
  auto again = c.Post(("/api/blobs/" + d).c_str(), data, "application/octet-stream");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
  auto after = c.Get("/api/version");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
  // The other spelling of a digest, and upper-case hex, name the same blob.
  std::string hex = d.substr(7);
  for (char& ch : hex) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  EXPECT_EQ(head_blob("sha256-" + hex), 200);
  // A blob route answers HEAD and POST only.
  auto g = c.Get(("/api/blobs/" + d).c_str());
  ASSERT_TRUE(g);
  EXPECT_EQ(g->status, 405);
}

TEST_F(ServerBlobs, DigestMismatchLeavesNothing) {
  const auto before = store_files();
  const std::string d = digest_of("what was promised");
  auto [s, body] = upload(d, "something else");
  EXPECT_EQ(s, 400);
  EXPECT_NE(body.find("digest mismatch, expected \\\"" + d + "\\\", got \\\"" + digest_of("something else") + "\\\""), std::string::npos) << body;
  EXPECT_EQ(head_blob(d), 404);
  EXPECT_EQ(store_files(), before);
}

TEST_F(ServerBlobs, BadDigests) {
  for (const std::string& bad : std::vector<std::string>{"sha256:abc", "md5:0123", "sha256:" + std::string(64, 'g'), "..%2F..%2Fetc%2Fpasswd", "sha256:" + std::string(63, 'a') + "/"}) {
    auto h = client().Head(("/api/blobs/" + bad).c_str());
    ASSERT_TRUE(h);
    EXPECT_EQ(h->status, 400) << bad;
    auto [s, body] = upload(bad, "x");
    EXPECT_EQ(s, 400) << bad;
    EXPECT_NE(body.find("invalid digest format"), std::string::npos) << body;
  }
  EXPECT_FALSE(fs::exists(root_ / "blobs" / "sha256-abc"));
}

TEST_F(ServerBlobs, InterruptedUploadLeavesNothing) {
  const auto before = store_files();
  const std::string d = digest_of(std::string(100000, 'x'));
  const int fd = connect_raw();
  ASSERT_GE(fd, 0);
  const std::string head = "POST /api/blobs/" + d + " HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n";
  const std::string part(40000, 'x');
  ASSERT_EQ(::send(fd, head.data(), head.size(), 0), ssize_t(head.size()));
  ASSERT_EQ(::send(fd, part.data(), part.size(), 0), ssize_t(part.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ::close(fd);
  // The server notices the closed connection and drops the temporary file.
  for (int i = 0; i < 100 && store_files() != before; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(store_files(), before);
  EXPECT_EQ(head_blob(d), 404);
}

// A body 96 times the in-memory limit, generated as it is sent, with a length and chunked: it reaches
// the disk whole and verified while the process's peak memory grows by far less than its size.
TEST_F(ServerBlobs, LargeUploadStreamsToDisk) {
  const size_t size = 96u << 20;
  std::string block(1 << 20, '\0');
  std::mt19937 rng(7);
  for (char& ch : block) ch = char(rng());
  store::Sha256 h;
  for (size_t off = 0; off < size; off += block.size()) h.update(block.data(), block.size());
  const std::string d = "sha256:" + h.hex();
  const int64_t rss0 = peak_rss();
  auto c = client();
  auto provider = [&](size_t offset, size_t length, httplib::DataSink& sink) {
    const size_t at = offset % block.size();
    const size_t n = std::min(length, block.size() - at);
    return sink.write(block.data() + at, n);
  };
  auto r = c.Post(("/api/blobs/" + d).c_str(), size, provider, "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(fs::file_size(test_store().blob_path(d)), size);
  const int64_t grew = peak_rss() - rss0;
  EXPECT_LT(grew, int64_t(size / 4)) << "peak RSS grew by " << grew << " bytes for a " << size << "-byte upload";
  // Chunked (no length): the same blob again under a fresh store entry.
  fs::remove(test_store().blob_path(d));
  size_t sent = 0;
  auto chunked = [&](size_t, httplib::DataSink& sink) {
    if (sent == size) {
      sink.done();
      return true;
    }
    sent += block.size();
    return sink.write(block.data(), block.size());
  };
  auto r2 = c.Post(("/api/blobs/" + d).c_str(), chunked, "application/octet-stream");
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 201) << r2->body;
  EXPECT_EQ(fs::file_size(test_store().blob_path(d)), size);
  EXPECT_LT(peak_rss() - rss0, int64_t(size / 4));
}

// The other routes keep the in-memory limit, with or without a length, and the connection stays usable.
TEST_F(ServerBlobs, OtherRoutesKeepTheBodyLimit) {
  auto c = client();
  const std::string big(2u << 20, ' ');
  auto r = c.Post("/api/generate", big, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(r->body.find("request body too large"), std::string::npos) << r->body;
  size_t sent = 0;
  auto chunked = [&](size_t, httplib::DataSink& sink) {
    if (sent >= big.size()) {
      sink.done();
      return true;
    }
    sent += 65536;
    return sink.write(big.data(), 65536);
  };
  auto r2 = c.Post("/api/chat", chunked, "application/json");
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 413);
  auto ok = c.Post("/api/show", json{{"model", "tiny"}}.dump(), "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  // A body sent where no route takes it: 404 or 405, and the connection still works.
  auto none = c.Post("/no/such/path", big, "application/json");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 404);
  auto wrong = c.Put("/api/tags", "{}", "application/json");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 405);
  auto v = c.Get("/api/version");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->status, 200);
}

TEST_F(ServerCreate, FromFilesWithProjector) {
  const std::string dm = upload_file(kModel);
  const std::string dp = upload_file(kMmproj);
  auto [s, body] = create({{"model", "seeing"}, {"files", {{"mmproj.gguf", dp}, {"model.gguf", dm}}}});
  ASSERT_EQ(s, 200) << body;
  EXPECT_EQ(body, json({{"status", "success"}}));
  const store::Manifest m = manifest("seeing");
  ASSERT_NE(m.find_layer(store::media::kModel), nullptr);
  EXPECT_EQ(m.find_layer(store::media::kModel)->digest, dm);
  ASSERT_NE(m.find_layer(store::media::kProjector), nullptr);
  EXPECT_EQ(m.find_layer(store::media::kProjector)->digest, dp);
  EXPECT_EQ(m.layers[0].media_type, store::media::kModel);  // the projector right after the model
  EXPECT_EQ(m.layers[1].media_type, store::media::kProjector);
  auto [s2, show] = post("/api/show", {{"model", "seeing"}});
  ASSERT_EQ(s2, 200);
  EXPECT_NE(std::find(show["capabilities"].begin(), show["capabilities"].end(), "vision"), show["capabilities"].end()) << show["capabilities"];
  EXPECT_EQ(show["projector_info"]["general.architecture"], "clip");
  // And it runs.
  auto [s3, gen] = post("/api/generate", {{"model", "seeing"}, {"prompt", "Hi"}, {"stream", false}, {"options", {{"num_predict", 2}, {"temperature", 0}}}});
  EXPECT_EQ(s3, 200) << gen;
  EXPECT_EQ(gen["eval_count"], 2);
  // A store model plus an uploaded projector: the parent's layers, the projector added after its model layer.
  auto [s4, out4] = create({{"model", "tiny-seeing"}, {"from", "tiny"}, {"files", {{"mmproj.gguf", dp}}}});
  ASSERT_EQ(s4, 200) << out4;
  const store::Manifest m2 = manifest("tiny-seeing");
  EXPECT_EQ(m2.layers[0].digest, dm);
  EXPECT_EQ(m2.layers[1].digest, dp);
  EXPECT_EQ(post("/api/show", {{"model", "tiny-seeing"}}).second["system"], "You are terse.");
}

TEST_F(ServerCreate, FromModelWithFieldsStreamed) {
  const json req = {{"model", "made:v1"},
                    {"from", "tiny"},
                    {"system", "Talk like a pirate."},
                    {"template", "{{ .Prompt }}"},
                    {"parameters", {{"temperature", 0.5}, {"top_k", 7}, {"stop", {"<a>", "<b>"}}}},
                    {"messages", {{{"role", "user"}, {"content", "Ahoy?"}}, {{"role", "assistant"}, {"content", "Arr."}}}},
                    {"license", {"MIT", "Apache-2.0"}}};
  auto r = client().Post("/api/create", req.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/x-ndjson");
  std::vector<std::string> statuses;
  std::istringstream in(r->body);
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line);
    ASSERT_TRUE(j.contains("status")) << line;
    EXPECT_EQ(j.size(), 1u) << line;
    statuses.push_back(j["status"]);
  }
  ASSERT_GE(statuses.size(), 3u);
  EXPECT_EQ(statuses.back(), "success");
  EXPECT_EQ(statuses[statuses.size() - 2], "writing manifest");
  const store::Manifest parent = manifest("tiny");
  EXPECT_NE(std::find(statuses.begin(), statuses.end(), "using existing layer " + parent.find_layer(store::media::kModel)->digest), statuses.end());
  // The model layer is the parent's, marked as inherited; every field is a layer.
  const store::Manifest m = manifest("made:v1");
  EXPECT_EQ(m.find_layer(store::media::kModel)->digest, parent.find_layer(store::media::kModel)->digest);
  EXPECT_EQ(m.find_layer(store::media::kModel)->from, "tiny:latest");
  auto [s, show] = post("/api/show", {{"model", "made:v1"}});
  ASSERT_EQ(s, 200);
  EXPECT_EQ(show["system"], "Talk like a pirate.");
  EXPECT_EQ(show["template"], "{{ .Prompt }}");
  EXPECT_EQ(show["license"], "MIT\nApache-2.0");
  EXPECT_EQ(show["messages"], req["messages"]);
  const std::string params = show["parameters"];
  EXPECT_NE(params.find("temperature                    0.5"), std::string::npos) << params;
  EXPECT_NE(params.find("top_k                          7"), std::string::npos) << params;
  EXPECT_NE(params.find("stop                           \"<a>\""), std::string::npos) << params;
  EXPECT_NE(params.find("stop                           \"<b>\""), std::string::npos) << params;
  const store::ResolvedModel rm = test_store().resolve(store::parse_model_name("made:v1"));
  EXPECT_EQ(rm.params["top_k"], 7);
  EXPECT_EQ(rm.params["stop"], json::array({"<a>", "<b>"}));
}

TEST_F(ServerCreate, ReplacingAModelServesTheNewOne) {
  ASSERT_EQ(create({{"model", "swap"}, {"from", "tiny"}, {"system", "first"}}).first, 200);
  auto [s1, g1] = post("/api/generate", {{"model", "swap"}, {"prompt", "Hi"}, {"stream", false}, {"options", {{"num_predict", 1}}}});
  ASSERT_EQ(s1, 200) << g1;
  auto loaded = [&] {
    auto r = client().Get("/api/ps");
    return r && r->body.find("swap:latest") != std::string::npos;
  };
  EXPECT_TRUE(loaded());
  // The loaded model is let go, so the next request loads what the name now means.
  ASSERT_EQ(create({{"model", "swap"}, {"from", "tiny"}, {"system", "second"}}).first, 200);
  EXPECT_FALSE(loaded());
  EXPECT_EQ(post("/api/show", {{"model", "swap"}}).second["system"], "second");
}

// quantize: the F16 fixture, uploaded, becomes a Q4_K_M model layer whose tensors are llama.cpp's (the
// Q4_K_M fixture's types and bytes), streamed with Ollama's progress line; the source blob stays as it was.
TEST_F(ServerCreate, QuantizeFromF16) {
  const std::string d16 = upload_file(kModelF16);
  json req = {{"model", "small"}, {"files", {{"model.gguf", d16}}}, {"quantize", "q4_K_M"}, {"system", "Be brief."}};
  auto r = client().Post("/api/create", req.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->body.find("{\"status\":\"quantizing F16 model to Q4_K_M\"}"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("{\"status\":\"success\"}"), std::string::npos) << r->body;
  const store::Manifest m = manifest("small");
  const std::string dq = m.find_layer(store::media::kModel)->digest;
  EXPECT_NE(dq, d16);
  EXPECT_NE(r->body.find("creating new layer " + dq), std::string::npos) << r->body;
  EXPECT_EQ(digest_of(read_all(test_store().blob_path(d16))), d16);
  const GgufFile got = GgufFile::open(test_store().blob_path(dq).string());
  const GgufFile want = GgufFile::open(kModel);
  EXPECT_EQ(got.get_int("general.file_type"), 15);
  ASSERT_EQ(got.tensors().size(), want.tensors().size());
  for (const auto& w : want.tensors()) {
    const auto* found = got.find_tensor(w.name);
    ASSERT_NE(found, nullptr) << w.name;
    const auto& g = *found;
    EXPECT_EQ(g.type, w.type) << w.name;
    ASSERT_EQ(g.nbytes, w.nbytes) << w.name;
    EXPECT_EQ(std::memcmp(got.tensor_data(g), want.tensor_data(w), w.nbytes), 0) << w.name;
  }
  auto [s, show] = post("/api/show", {{"model", "small"}});
  EXPECT_EQ(show["details"]["quantization_level"], "Q4_K_M");
  EXPECT_EQ(show["system"], "Be brief.");
  // From a store model too (any case of the type), inheriting the rest.
  auto [s2, out] = create({{"model", "small8"}, {"from", "small"}, {"quantize", "Q8_0"}});
  EXPECT_EQ(s2, 400) << out;  // "small" is quantized now
  ASSERT_EQ(create({{"model", "f16"}, {"files", {{"model.gguf", d16}}}, {"system", "kept"}}).first, 200);
  auto [s3, out3] = create({{"model", "f16:q8"}, {"from", "f16"}, {"quantize", "Q8_0"}});
  ASSERT_EQ(s3, 200) << out3;
  const store::Manifest m8 = manifest("f16:q8");
  EXPECT_EQ(GgufFile::open(test_store().blob_path(m8.find_layer(store::media::kModel)->digest).string()).get_int("general.file_type"), 7);
  EXPECT_EQ(post("/api/show", {{"model", "f16:q8"}}).second["system"], "kept");
  EXPECT_EQ(m8.layers.front().media_type, store::media::kModel);
}

// A tiny Hugging Face checkpoint (tools/hf_test_checkpoint.h) written once per test process from the F16
// fixture, with both towers or none, F16 tensors in two shards; removed at exit.
const fs::path& checkpoint_dir(bool towers) {
  struct Dir {
    fs::path path;
    ~Dir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  };
  static Dir dirs[2];
  Dir& d = dirs[towers];
  if (d.path.empty()) {
    d.path = fs::temp_directory_path() / ("g3n-create-ckpt-" + std::to_string(getpid()) + (towers ? "-towers" : "-text"));
    fs::remove_all(d.path);
    HfTestCheckpointOptions o;
    o.dtype = "F16";
    if (towers) o.mmproj_from = {kMmproj, kAudioMmproj};
    write_hf_test_checkpoint(GgufFile::open(kModelF16), d.path.string(), o);
  }
  return d.path;
}

// The staging directories under the store's scratch area (what a finished or refused create must not leave).
std::vector<fs::path> staging_dirs(const fs::path& root) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(root / "tmp", ec), end; !ec && it != end; it.increment(ec)) out.push_back(it->path());
  return out;
}

// A safetensors checkpoint uploaded file by file becomes a model: converted in Ollama's layout (the same
// bytes `convert_hf_checkpoint` writes), F16 when no `quantize` is given, the towers its projector layer;
// streamed with Ollama's "converting model" status and byte counts; nothing in the store until the manifest,
// the blobs staged by hard link, the staging gone afterwards; the model answers, an image too.
TEST_F(ServerCreate, FromSafetensorsCheckpoint) {
  const fs::path ckpt = checkpoint_dir(true);
  const json files = upload_checkpoint(ckpt);
  ASSERT_TRUE(files.contains("model.safetensors.index.json") && files.contains("tokenizer.json")) << files;
  json req = {{"model", "converted"}, {"files", files}, {"system", "From safetensors."}};
  std::string body;
  bool checked_midway = false;
  httplib::Request hr;
  hr.method = "POST";
  hr.path = "/api/create";
  hr.headers = {{"Content-Type", "application/json"}};
  hr.body = req.dump();
  hr.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
    body.append(d, n);
    if (!checked_midway && body.find("converting model") != std::string::npos) {
      checked_midway = true;
      // Converting: no model by that name yet, and the staged shards are the blobs themselves (links).
      EXPECT_FALSE(test_store().find_manifest(store::parse_model_name("converted")));
      const auto dirs = staging_dirs(root_);
      EXPECT_EQ(dirs.size(), 1u);
      if (dirs.size() == 1) {
        const fs::path staged = dirs[0] / "checkpoint" / "model-00001-of-00002.safetensors";
        const fs::path blob = test_store().blob_path(files["model-00001-of-00002.safetensors"].get<std::string>());
        EXPECT_TRUE(fs::equivalent(staged, blob)) << staged;
      }
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err;
  auto c = client();
  ASSERT_TRUE(c.send(hr, res, err));
  ASSERT_EQ(res.status, 200) << body;
  EXPECT_TRUE(checked_midway) << body;
  std::vector<json> lines;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(json::parse(line));
  ASSERT_GE(lines.size(), 4u) << body;
  EXPECT_EQ(lines.front(), json({{"status", "converting model"}})) << body;
  bool counted = false;
  for (const json& l : lines)
    if (l.contains("total")) {
      counted = true;
      EXPECT_EQ(l["status"], "converting model") << l;
      EXPECT_LE(l["completed"].get<uint64_t>(), l["total"].get<uint64_t>()) << l;
    }
  EXPECT_TRUE(counted) << body;  // the last count (done == total) is always sent
  EXPECT_EQ(lines.back(), json({{"status", "success"}})) << body;
  EXPECT_TRUE(staging_dirs(root_).empty());

  const store::Manifest m = manifest("converted");
  const store::Descriptor* model = m.find_layer(store::media::kModel);
  const store::Descriptor* proj = m.find_layer(store::media::kProjector);
  ASSERT_TRUE(model && proj);
  EXPECT_NE(body.find("creating new layer " + model->digest), std::string::npos) << body;
  // The converter's own output for the same checkpoint and options, byte for byte.
  const fs::path direct = root_.parent_path() / (root_.filename().string() + "-direct");
  HfConvertOptions opt;
  opt.target = QuantTarget::F16;
  opt.layout = GgufLayout::Ollama;
  opt.name = "converted";
  const HfConvertReport want = convert_hf_checkpoint(ckpt.string(), direct, opt);
  EXPECT_EQ(model->digest, "sha256:" + store::sha256_file_hex(want.text_gguf));
  EXPECT_EQ(proj->digest, "sha256:" + store::sha256_file_hex(want.mmproj_gguf));
  fs::remove_all(direct);

  auto [s, show] = post("/api/show", {{"model", "converted"}});
  ASSERT_EQ(s, 200) << show;
  EXPECT_EQ(show["model_info"]["general.architecture"], "gemma3n");
  EXPECT_EQ(show["details"]["quantization_level"], "F16");
  EXPECT_EQ(show["system"], "From safetensors.");
  EXPECT_NE(std::find(show["capabilities"].begin(), show["capabilities"].end(), "vision"), show["capabilities"].end()) << show;
  auto [sg, g] = post("/api/generate", {{"model", "converted"}, {"prompt", "Hello"}, {"stream", false}, {"options", {{"num_predict", 2}}}});
  ASSERT_EQ(sg, 200) << g;
  EXPECT_EQ(g["eval_count"], 2);
}

// `quantize` is the type the checkpoint is converted to (here Q8_0, any case); a checkpoint without towers
// makes a model without a projector; not streamed, the answer is {"status": "success"}.
TEST_F(ServerCreate, FromSafetensorsCheckpointQuantized) {
  const json files = upload_checkpoint(checkpoint_dir(false));
  auto [s, out] = create({{"model", "converted:q8"}, {"files", files}, {"quantize", "Q8_0"}});
  ASSERT_EQ(s, 200) << out;
  EXPECT_EQ(out, json({{"status", "success"}}));
  const store::Manifest m = manifest("converted:q8");
  ASSERT_TRUE(m.find_layer(store::media::kModel));
  EXPECT_FALSE(m.find_layer(store::media::kProjector));
  const GgufFile f = GgufFile::open(test_store().blob_path(m.find_layer(store::media::kModel)->digest).string());
  EXPECT_EQ(f.get_int("general.file_type"), 7);
  EXPECT_EQ(post("/api/show", {{"model", "converted:q8"}}).second["details"]["quantization_level"], "Q8_0");
  EXPECT_TRUE(staging_dirs(root_).empty());
}

// A checkpoint with something missing or broken: 400 naming the file (as uploaded, never a server path),
// whole or streamed, and the store, blobs included, exactly as before, no staging left.
TEST_F(ServerCreate, CheckpointErrorsNameTheFile) {
  const fs::path ckpt = checkpoint_dir(false);
  const json files = upload_checkpoint(ckpt);
  const std::string dm = upload_file(kModel);
  // A shard cut short, uploaded as itself.
  const std::string shard2 = read_all(ckpt / "model-00002-of-00002.safetensors");
  const std::string cut = shard2.substr(0, shard2.size() / 2);
  ASSERT_EQ(upload(digest_of(cut), cut).first, 201);
  const std::string not_gemma = R"({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})";
  ASSERT_EQ(upload(digest_of(not_gemma), not_gemma).first, 201);
  auto without = [&](const std::string& name) {
    json f = files;
    f.erase(name);
    return f;
  };
  auto with = [&](const std::string& name, const std::string& digest) {
    json f = files;
    f[name] = digest;
    return f;
  };
  struct Case {
    const char* what;
    json body;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"no config.json", {{"model", "x"}, {"files", without("config.json")}}, "config.json is missing"},
      {"no tokenizer.json", {{"model", "x"}, {"files", without("tokenizer.json")}}, "tokenizer.json is missing"},
      {"a shard missing", {{"model", "x"}, {"files", without("model-00002-of-00002.safetensors")}},
       "model-00002-of-00002.safetensors: missing (named by model.safetensors.index.json)"},
      {"a shard cut short", {{"model", "x"}, {"files", with("model-00002-of-00002.safetensors", digest_of(cut))}}, "model-00002-of-00002.safetensors"},
      {"not Gemma 3n", {{"model", "x"}, {"files", with("config.json", digest_of(not_gemma))}}, "config.json: model_type 'llama'"},
      {"a GGUF mixed in", {{"model", "x"}, {"files", with("mmproj.gguf", dm)}}, "file \"mmproj.gguf\" is a GGUF file"},
      {"from and a checkpoint", {{"model", "x"}, {"from", "tiny"}, {"files", files}}, "'from' cannot be combined with a safetensors checkpoint"},
      {"unknown quantize type", {{"model", "x"}, {"files", files}, {"quantize", "q2_k"}}, "unsupported quantization type \"q2_k\""},
  };
  for (const auto& c : cases) expect_refused(c.what, c.body, 400, c.message);
}

// A server starting on a store removes the staging directories of servers no longer running (a kill -9
// mid-conversion) and leaves its own process's alone.
TEST_F(ServerCreate, StartRemovesStaleStaging) {
  fs::create_directories(root_ / "tmp");
  const fs::path stale = root_ / "tmp" / "create-999999999-abcdef";  // above any pid Linux gives
  const fs::path mine = root_ / "tmp" / ("create-" + std::to_string(getpid()) + "-abcdef");
  fs::create_directories(stale / "checkpoint");
  fs::create_directories(mine);
  server::ServerConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.store = test_store().config();
  cfg.log_requests = false;
  server::Server other(cfg);
  other.bind();
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(mine));
}

// Every refusal: its status and message, and the store exactly as before.
TEST_F(ServerCreate, ErrorsLeaveTheStoreAsItWas) {
  const std::string dm = upload_file(kModel);
  const std::string dp = upload_file(kMmproj);
  const std::string absent = digest_of("never uploaded");
  const std::string text = "not a model";
  const std::string dt = digest_of(text);
  ASSERT_EQ(upload(dt, text).first, 201);
  // A safetensors file: 8-byte header length, then its JSON header.
  std::string st_header = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  std::string st(8, '\0');
  for (int i = 0; i < 8; ++i) st[size_t(i)] = char((st_header.size() >> (8 * i)) & 0xff);
  st += st_header + std::string(4, '\0');
  const std::string ds = digest_of(st);
  ASSERT_EQ(upload(ds, st).first, 201);
  // A GGUF by its magic only: refused when made, not stored to fail every load.
  const std::string bogus("GGUF\x03\0\0\0garbage", 15);
  const std::string db = digest_of(bogus);
  ASSERT_EQ(upload(db, bogus).first, 201);
  // A projector made for a model of another width.
  const fs::path other = root_.parent_path() / (root_.filename().string() + "-narrow-mmproj.gguf");
  auto spec = *random_mmproj_preset("tiny");
  spec.text_width = 128;
  write_random_mmproj(spec, other.string(), 1);
  const std::string dn = upload_file(other.string());
  fs::remove(other);

  struct Case {
    const char* what;
    json body;
    int status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"no model", {{"from", "tiny"}}, 400, "model is required"},
      {"bad name", {{"model", "a b"}, {"from", "tiny"}}, 400, "invalid model name"},
      {"neither from nor files", {{"model", "x"}}, 400, "neither 'from' or 'files' was specified"},
      {"path as from", {{"model", "x"}, {"from", kModel}}, 404, "model '" + kModel + "' not found"},
      {"relative path as from", {{"model", "x"}, {"from", "./model.gguf"}}, 404, "not found"},
      {"absent from", {{"model", "x"}, {"from", "nope"}}, 404, "model 'nope' not found"},
      {"missing blob", {{"model", "x"}, {"files", {{"model.gguf", absent}}}}, 400, absent},
      {"absolute file name", {{"model", "x"}, {"files", {{"/etc/model.gguf", dm}}}}, 400, "file path must be relative"},
      {"escaping file name", {{"model", "x"}, {"files", {{"../model.gguf", dm}}}}, 400, "file path must be relative"},
      {"bad digest", {{"model", "x"}, {"files", {{"model.gguf", "sha256:12"}}}}, 400, "invalid digest format"},
      {"adapters", {{"model", "x"}, {"from", "tiny"}, {"adapters", {{"lora.gguf", dm}}}}, 400, "adapters are not supported"},
      {"a GGUF named as a shard", {{"model", "x"}, {"files", {{"model.safetensors", dm}}}}, 400, "file \"model.safetensors\" is a GGUF file"},
      {"a checkpoint by content, no tokenizer", {{"model", "x"}, {"files", {{"weights", ds}, {"config.json", dt}}}}, 400, "tokenizer.json is missing"},
      {"not a GGUF", {{"model", "x"}, {"files", {{"model.gguf", dm}, {"notes.txt", dt}}}}, 400, "file \"notes.txt\" is not a GGUF file"},
      {"a GGUF by its magic only", {{"model", "x"}, {"files", {{"model.gguf", db}}}}, 400, "model.gguf: not a valid GGUF file"},
      {"two models", {{"model", "x"}, {"files", {{"a.gguf", dm}, {"b.gguf", dm}}}}, 400, "a second model"},
      {"from and a model file", {{"model", "x"}, {"from", "tiny"}, {"files", {{"a.gguf", dm}}}}, 400, "a second model"},
      {"two projectors", {{"model", "x"}, {"files", {{"a.gguf", dm}, {"p.gguf", dp}, {"q.gguf", dn}}}}, 400, "a second projector"},
      {"projector only", {{"model", "x"}, {"files", {{"p.gguf", dp}}}}, 400, "the text model is missing"},
      {"projector of another width", {{"model", "x"}, {"files", {{"a.gguf", dm}, {"p.gguf", dn}}}}, 400, "but the model's n_embd is 256"},
      {"unknown parameter", {{"model", "x"}, {"from", "tiny"}, {"parameters", {{"warp", 9}}}}, 400, "unknown parameter 'warp'"},
      {"parameter of the wrong type", {{"model", "x"}, {"from", "tiny"}, {"parameters", {{"top_k", "many"}}}}, 400, "top_k"},
      {"a slice file as the size", {{"model", "x"}, {"from", "tiny"}, {"parameters", {{"matformer", "/etc/s.json"}}}}, 400, "not a file"},
      {"a slice CSV row as the size", {{"model", "x"}, {"from", "tiny"}, {"parameters", {{"matformer", "/tmp/m.csv:E2B"}}}}, 400, "not a file"},
      {"an unknown size", {{"model", "x"}, {"from", "tiny"}, {"parameters", {{"matformer", "huge"}}}}, 400, "a preset"},
      {"a slice file as the draft", {{"model", "x"}, {"from", "tiny"}, {"parameters", {{"draft", "/etc/s.json"}}}}, 400, "not a file"},
      {"bad message role", {{"model", "x"}, {"from", "tiny"}, {"messages", {{{"role", "wizard"}, {"content", "x"}}}}}, 400, "wizard"},
      {"files not an object", {{"model", "x"}, {"files", {dm}}}, 400, "files"},
      {"quantize an already quantized model", {{"model", "x"}, {"from", "tiny"}, {"quantize", "q8_0"}}, 400, "quantization is only supported for F16 and F32 models"},
      {"quantize to an unknown type", {{"model", "x"}, {"from", "tiny"}, {"quantize", "q3_xl"}}, 400, "unsupported quantization type \"q3_xl\""},
  };
  for (const auto& c : cases) expect_refused(c.what, c.body, c.status, c.message);
  EXPECT_FALSE(test_store().find_manifest(store::parse_model_name("x")));
}

// parse_create on values of every JSON type in every field, and on random byte flips of a full request:
// it answers HttpError(400) or a request, never anything else.
TEST(CreateRequestParse, EveryFieldOfEveryType) {
  const json full = {{"model", "m"}, {"from", "tiny"}, {"files", {{"a.gguf", "sha256:" + std::string(64, 'a')}}},
                     {"template", "t"}, {"system", "s"}, {"parameters", {{"top_k", 3}, {"stop", {"x"}}}},
                     {"messages", {{{"role", "user"}, {"content", "c"}}}}, {"license", "l"}, {"quantize", "q8_0"}, {"stream", false}};
  const server::CreateRequest r = server::parse_create(full);
  EXPECT_EQ(r.name.display(), "m:latest");
  EXPECT_EQ(r.files.size(), 1u);
  EXPECT_EQ(r.fields.params["top_k"], 3);
  EXPECT_FALSE(r.stream);
  const std::vector<json> values = {nullptr, true, 7, -1.5, "", "x", json::array(), json::array({1, "a", nullptr}), json::object(),
                                    json{{"k", json::array({json::object()})}}};
  for (auto it = full.begin(); it != full.end(); ++it) {
    const std::string key = it.key();
    for (const json& v : values) {
      json b = full;
      b[key] = v;
      try {
        server::parse_create(b);
      } catch (const server::HttpError& e) {
        EXPECT_EQ(e.status(), 400) << key << " = " << v.dump();
      }
    }
  }
  std::mt19937 rng(3);
  const std::string text = full.dump();
  for (int i = 0; i < 2000; ++i) {
    std::string t = text;
    for (int k = 0; k < 3; ++k) t[rng() % t.size()] = char(rng());
    const json b = json::parse(t, nullptr, false);
    if (b.is_discarded() || !b.is_object()) continue;
    try {
      server::parse_create(b);
    } catch (const server::HttpError& e) {
      EXPECT_EQ(e.status(), 400);
    }
  }
}

}  // namespace
