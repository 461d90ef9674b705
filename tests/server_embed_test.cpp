// The embeddings endpoints (/api/embed, /api/embeddings, /v1/embeddings) over real HTTP on the tiny fixture
// model, checked against the final hidden rows the runtime gives for the same tokens on the same arithmetic
// path (the fast path, F16 KV cache, as the server's engine runs).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/base64.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "runtime/context.h"
#include "server_util.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace g3n;

namespace {

const std::string kModel = test::kTinyModel;

// Two slots, num_ctx 512: the inputs of a request take both side by side.
class EmbedServer : public test::ServerTest {};

// The mean of the final hidden rows for `text` (BOS first), computed here on the server's arithmetic path.
std::vector<double> reference_mean(const std::string& text, int n_ctx = 512) {
  static const auto model = Model::load(kModel);
  const GgufFile file = GgufFile::open(kModel);
  const Tokenizer tok = Tokenizer::from_gguf(file);
  std::vector<int32_t> tokens = tok.encode(text, true, true);
  if (static_cast<int>(tokens.size()) > n_ctx) tokens.resize(static_cast<size_t>(n_ctx));
  ContextParams p;
  p.n_ctx = n_ctx;
  p.kv_type = KvType::F16;
  p.n_threads = 1;
  p.exact = false;
  Context ctx(*model, p);
  ctx.eval(tokens, LogitsFor::None, LogitsFor::All);
  const int D = model->config().n_embd;
  std::vector<double> mean(static_cast<size_t>(D), 0.0);
  EXPECT_EQ(ctx.n_hidden_rows(), static_cast<int>(tokens.size()));
  for (int r = 0; r < ctx.n_hidden_rows(); ++r)
    for (int i = 0; i < D; ++i) mean[static_cast<size_t>(i)] += ctx.hidden(r)[static_cast<size_t>(i)];
  for (double& x : mean) x /= static_cast<double>(tokens.size());
  return mean;
}

std::vector<double> normalised(std::vector<double> v, size_t dims = 0) {
  if (dims > 0 && dims < v.size()) v.resize(dims);
  double ss = 0;
  for (double x : v) ss += x * x;
  for (double& x : v) x /= std::sqrt(ss);
  return v;
}

double max_diff(const json& got, const std::vector<double>& want) {
  EXPECT_TRUE(got.is_array());
  EXPECT_EQ(got.size(), want.size());
  double m = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) m = std::max(m, std::fabs(got[i].get<double>() - want[i]));
  return m;
}

double norm(const json& v) {
  double ss = 0;
  for (const auto& x : v) ss += x.get<double>() * x.get<double>();
  return std::sqrt(ss);
}

TEST_F(EmbedServer, ApiEmbedIsTheNormalisedMeanOfHiddenRows) {
  const std::string text = "The quick brown fox jumps over the lazy dog";
  auto [status, body] = post("/api/embed", {{"model", "tiny"}, {"input", text}});
  ASSERT_EQ(status, 200) << body.dump();
  EXPECT_EQ(body["model"], "tiny");
  ASSERT_EQ(body["embeddings"].size(), 1u);
  EXPECT_EQ(body["embeddings"][0].size(), 256u);
  EXPECT_LE(max_diff(body["embeddings"][0], normalised(reference_mean(text))), 1e-6);
  EXPECT_NEAR(norm(body["embeddings"][0]), 1.0, 1e-5);
  EXPECT_GT(body["prompt_eval_count"].get<int>(), 1);
  EXPECT_GE(body["total_duration"].get<int64_t>(), body["load_duration"].get<int64_t>());
}

TEST_F(EmbedServer, BatchingChangesNoVector) {
  const std::vector<std::string> inputs = {"hello", "a somewhat longer input with more words in it", "x", "hello"};
  auto [status, batch] = post("/api/embed", {{"model", "tiny"}, {"input", inputs}});
  ASSERT_EQ(status, 200) << batch.dump();
  ASSERT_EQ(batch["embeddings"].size(), inputs.size());
  int64_t tokens = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    SCOPED_TRACE(inputs[i]);
    auto [st1, one] = post("/api/embed", {{"model", "tiny"}, {"input", inputs[i]}});
    ASSERT_EQ(st1, 200);
    EXPECT_EQ(batch["embeddings"][i], one["embeddings"][0]);  // bit for bit
    EXPECT_LE(max_diff(batch["embeddings"][i], normalised(reference_mean(inputs[i]))), 1e-6);
    tokens += one["prompt_eval_count"].get<int64_t>();
  }
  EXPECT_EQ(batch["prompt_eval_count"].get<int64_t>(), tokens);
  EXPECT_NE(batch["embeddings"][0], batch["embeddings"][1]);
}

TEST_F(EmbedServer, DimensionsKeepsALeadingSliceRenormalised) {
  const std::string text = "dimensions";
  auto [status, body] = post("/api/embed", {{"model", "tiny"}, {"input", text}, {"dimensions", 32}});
  ASSERT_EQ(status, 200) << body.dump();
  ASSERT_EQ(body["embeddings"][0].size(), 32u);
  EXPECT_LE(max_diff(body["embeddings"][0], normalised(reference_mean(text), 32)), 1e-6);
  auto [st2, oa] = post("/v1/embeddings", {{"model", "tiny"}, {"input", text}, {"dimensions", 32}});
  ASSERT_EQ(st2, 200) << oa.dump();
  EXPECT_EQ(oa["data"][0]["embedding"], body["embeddings"][0]);
  for (const json& bad : {json(0), json(-3), json("8"), json(2.5)}) {
    auto [st, b] = post("/api/embed", {{"model", "tiny"}, {"input", text}, {"dimensions", bad}});
    EXPECT_EQ(st, 400) << bad.dump();
  }
}

TEST_F(EmbedServer, TruncateCutsToNumCtxOrRefuses) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "word ";
  const json opts{{"num_ctx", 16}};
  auto [status, body] = post("/api/embed", {{"model", "tiny"}, {"input", text}, {"options", opts}});
  ASSERT_EQ(status, 200) << body.dump();
  EXPECT_EQ(body["prompt_eval_count"], 16);
  EXPECT_LE(max_diff(body["embeddings"][0], normalised(reference_mean(text, 16))), 1e-6);
  auto [st2, err] = post("/api/embed", {{"model", "tiny"}, {"input", text}, {"options", opts}, {"truncate", false}});
  EXPECT_EQ(st2, 400);
  EXPECT_TRUE(err["error"].get<std::string>().find("context length") != std::string::npos) << err.dump();
}

TEST_F(EmbedServer, EmptyAndBadInputs) {
  for (const json& empty : {json::array(), json(""), json(nullptr)}) {
    json req{{"model", "tiny"}};
    if (!empty.is_null()) req["input"] = empty;
    auto [st, body] = post("/api/embed", req);
    EXPECT_EQ(st, 200) << req.dump();
    EXPECT_EQ(body["embeddings"], json::array());
  }
  for (const json& bad : {json(3), json({1, 2}), json::array({"ok", 7}), json::object()}) {
    auto [st, body] = post("/api/embed", {{"model", "tiny"}, {"input", bad}});
    EXPECT_EQ(st, 400) << bad.dump();
    EXPECT_TRUE(body.contains("error"));
    auto [st2, body2] = post("/v1/embeddings", {{"model", "tiny"}, {"input", bad}});
    EXPECT_EQ(st2, 400) << bad.dump();
    EXPECT_TRUE(body2["error"].is_object()) << body2.dump();
  }
  auto [st3, b3] = post("/v1/embeddings", {{"model", "tiny"}, {"input", json::array()}});
  EXPECT_EQ(st3, 400);
  auto [st4, b4] = post("/api/embed", {{"model", "nope"}, {"input", "x"}});
  EXPECT_EQ(st4, 404);
  // Every input becomes a job before any is embedded: more than 2048 strings in one request are refused.
  const json many(std::vector<std::string>(2049, "a"));
  for (const char* path : {"/api/embed", "/v1/embeddings"}) {
    auto [st5, b5] = post(path, {{"model", "tiny"}, {"input", many}});
    EXPECT_EQ(st5, 400) << path;
    EXPECT_NE(b5.dump().find("at most 2048"), std::string::npos) << b5.dump();
  }
}

TEST_F(EmbedServer, OlderEmbeddingsEndpointAnswersTheRawMean) {
  const std::string text = "raw mean";
  auto [status, body] = post("/api/embeddings", {{"model", "tiny"}, {"prompt", text}});
  ASSERT_EQ(status, 200) << body.dump();
  const std::vector<double> want = reference_mean(text);
  EXPECT_LE(max_diff(body["embedding"], want), 1e-6);
  EXPECT_GT(std::fabs(norm(body["embedding"]) - 1.0), 1e-3);  // not normalised
  auto [st2, empty] = post("/api/embeddings", {{"model", "tiny"}, {"prompt", ""}});
  EXPECT_EQ(st2, 200);
  EXPECT_EQ(empty["embedding"], json::array());
}

TEST_F(EmbedServer, OpenAIShapesAndBase64) {
  const std::vector<std::string> inputs = {"first", "second input"};
  auto [status, body] = post("/v1/embeddings", {{"model", "tiny"}, {"input", inputs}});
  ASSERT_EQ(status, 200) << body.dump();
  EXPECT_EQ(body["object"], "list");
  EXPECT_EQ(body["model"], "tiny");
  ASSERT_EQ(body["data"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(body["data"][i]["object"], "embedding");
    EXPECT_EQ(body["data"][i]["index"], i);
    EXPECT_LE(max_diff(body["data"][i]["embedding"], normalised(reference_mean(inputs[i]))), 1e-6);
  }
  EXPECT_GT(body["usage"]["prompt_tokens"].get<int>(), 2);
  EXPECT_EQ(body["usage"]["total_tokens"], body["usage"]["prompt_tokens"]);
  auto [st2, b64] = post("/v1/embeddings", {{"model", "tiny"}, {"input", inputs}, {"encoding_format", "base64"}});
  ASSERT_EQ(st2, 200) << b64.dump();
  for (size_t i = 0; i < 2; ++i) {
    const auto bytes = base64_decode(b64["data"][i]["embedding"].get<std::string>());
    ASSERT_TRUE(bytes);
    ASSERT_EQ(bytes->size(), 256u * 4);
    std::vector<float> v(256);
    std::memcpy(v.data(), bytes->data(), bytes->size());
    for (size_t k = 0; k < 256; ++k) EXPECT_EQ(v[k], body["data"][i]["embedding"][k].get<float>());
  }
  auto [st3, bad] = post("/v1/embeddings", {{"model", "tiny"}, {"input", "x"}, {"encoding_format", "hex"}});
  EXPECT_EQ(st3, 400);
}

// More inputs than the scheduler's queue holds: they go a window at a time, every one embedded, in order.
TEST_F(EmbedServer, MoreInputsThanTheQueueHolds) {
  std::vector<std::string> inputs;
  for (int i = 0; i < 40; ++i) inputs.push_back("input number " + std::to_string(i));
  const double before = metric("g3n_embed_inputs_total");
  auto [status, body] = post("/api/embed", {{"model", "tiny"}, {"input", inputs}});
  ASSERT_EQ(status, 200) << body.dump();
  ASSERT_EQ(body["embeddings"].size(), inputs.size());
  for (size_t i : {size_t(0), size_t(17), size_t(39)}) {
    auto [st, one] = post("/api/embed", {{"model", "tiny"}, {"input", inputs[i]}});
    ASSERT_EQ(st, 200);
    EXPECT_EQ(body["embeddings"][i], one["embeddings"][0]) << i;
  }
  EXPECT_EQ(metric("g3n_embed_inputs_total") - before, 40 + 3);
  EXPECT_EQ(metric("g3n_embed_cancelled_total"), 0);
}

// A client that hangs up while its inputs are embedded: the rest are not embedded (the request stops
// between inputs and between an input's batches), the request counts as cancelled with status 499, and
// the server goes on serving.
TEST_F(EmbedServer, ClientGoneCancelsTheRest) {
  std::string long_text;
  for (int i = 0; i < 120; ++i) long_text += "many words ";
  const json inputs = std::vector<std::string>(1000, long_text);
  const std::string body = json{{"model", "tiny"}, {"input", inputs}}.dump();
  const int fd = connect_raw();
  ASSERT_GE(fd, 0);
  const std::string req = "POST /api/embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
  for (size_t off = 0; off < req.size();) {
    const ssize_t n = ::send(fd, req.data() + off, req.size() - off, 0);
    ASSERT_GT(n, 0);
    off += size_t(n);
  }
  // Until the first inputs are embedded, then hang up.
  for (int i = 0; i < 600 && metric("g3n_embed_inputs_total") < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ::close(fd);
  for (int i = 0; i < 600 && metric("g3n_embed_cancelled_total") < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(metric("g3n_embed_cancelled_total"), 1);
  const double embedded = metric("g3n_embed_inputs_total");
  EXPECT_GE(embedded, 2);
  EXPECT_LT(embedded, 1000);
  // The status is counted once the handler has returned, a moment after the cancellation counter moved.
  const std::string status_499 = "g3n_requests_total{path=\"/api/embed\",status=\"499\"}";
  for (int i = 0; i < 100 && metric(status_499) < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(metric(status_499), 1);
  // Nothing more is embedded for it, and the next request is served.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(metric("g3n_embed_inputs_total"), embedded);
  auto [st, one] = post("/api/embed", {{"model", "tiny"}, {"input", "still serving"}});
  EXPECT_EQ(st, 200) << one.dump();
}

TEST(Base64, EncodeRoundTrips) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  const auto back = base64_decode(base64_encode(all));
  ASSERT_TRUE(back);
  EXPECT_EQ(std::string(back->begin(), back->end()), all);
}

}  // namespace
