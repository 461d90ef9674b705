// logprobs / top_logprobs, n > 1 choices and seeds over real HTTP on the tiny fixture: every API's shape,
// whole and streamed, the values against the model's own logits (a Context on the server's arithmetic: the
// fast path and an F16 cache), choice i of a seeded n > 1 request against a single request with seed + i,
// and the malformed requests.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "golden_util.h"
#include "model/model.h"
#include "runtime/context.h"
#include "server_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace g3n;

namespace {

const std::string kModel = test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf";

class LogprobsServer : public test::ServerTest {
 protected:
  // The tool prompt alone is some 500 of the tiny vocabulary's tokens; n = 3 needs more choices than the two
  // slots, so a later choice reuses a finished one's prefix.
  test::ServerSetup setup() const override {
    test::ServerSetup s;
    s.num_ctx = 2048;
    return s;
  }
  static json user(const std::string& text) { return json::array({{{"role", "user"}, {"content", text}}}); }
};

// An entry {"token", "logprob", "bytes"}: bytes are the token's UTF-8 bytes, logprob a log-probability.
void expect_entry(const json& e, bool bytes_required) {
  ASSERT_TRUE(e.contains("token") && e["token"].is_string()) << e;
  ASSERT_TRUE(e["logprob"].is_number()) << e;
  EXPECT_LE(e["logprob"].get<double>(), 1e-6) << e;
  if (bytes_required || e.contains("bytes")) {
    ASSERT_TRUE(e["bytes"].is_array()) << e;
    const std::string token = e["token"];
    std::string bytes;
    for (const json& b : e["bytes"]) bytes.push_back(static_cast<char>(b.get<int>()));
    if (token.find("\xEF\xBF\xBD") == std::string::npos) {
      EXPECT_EQ(bytes, token) << e;  // whole characters: the same text
    }
  }
}

// Checks entries of Ollama's / OpenAI chat's shape with `top` alternatives each, most likely first.
void expect_steps(const json& steps, size_t top, bool openai) {
  ASSERT_TRUE(steps.is_array()) << steps;
  for (const json& s : steps) {
    expect_entry(s, openai);
    if (top == 0 && !openai) {
      EXPECT_FALSE(s.contains("top_logprobs")) << s;  // Go's omitempty
      continue;
    }
    ASSERT_TRUE(s["top_logprobs"].is_array()) << s;
    ASSERT_EQ(s["top_logprobs"].size(), top) << s;
    for (size_t k = 0; k < top; ++k) {
      expect_entry(s["top_logprobs"][k], openai);
      if (k > 0) {
        EXPECT_GE(s["top_logprobs"][k - 1]["logprob"].get<double>(), s["top_logprobs"][k]["logprob"].get<double>());
      }
    }
    // The chosen token is at most as likely as the best one.
    EXPECT_LE(s["logprob"].get<double>(), s["top_logprobs"][0]["logprob"].get<double>() + 1e-6);
  }
}

// Concatenates the logprobs entries carried by streamed Ollama objects (at top level).
json ollama_streamed(const std::vector<json>& objs) {
  json all = json::array();
  for (const json& o : objs)
    if (o.contains("logprobs"))
      for (const json& e : o["logprobs"]) all.push_back(e);
  return all;
}

void expect_same_values(const json& a, const json& b) {
  ASSERT_EQ(a.size(), b.size()) << a << "\n" << b;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["token"], b[i]["token"]);
    EXPECT_NEAR(a[i]["logprob"].get<double>(), b[i]["logprob"].get<double>(), 1e-6);
  }
}

}  // namespace

// The values are the log-softmax of the model's raw logits: here sampled with a high temperature, a repeat
// penalty and top-k (which change what is drawn, not what is reported), checked against a Context that
// reads the same tokens on the server's arithmetic.
TEST_F(LogprobsServer, OllamaGenerateValuesAreTheModelsLogSoftmax) {
  const json body = {{"model", "tiny"}, {"prompt", "Hello world"}, {"stream", false}, {"logprobs", true},
                     {"top_logprobs", 4},
                     {"options", {{"temperature", 1.6}, {"repeat_penalty", 1.7}, {"top_k", 6}, {"seed", 3}, {"num_predict", 10}}}};
  auto [s, r] = post("/api/generate", body);
  ASSERT_EQ(s, 200) << r.dump();
  const json& lp = r["logprobs"];
  ASSERT_EQ(lp.size(), r["eval_count"].get<size_t>()) << r.dump();
  expect_steps(lp, 4, false);
  const std::vector<int32_t> ctx_ids = r["context"].get<std::vector<int32_t>>();
  const size_t n_gen = lp.size();
  ASSERT_GT(n_gen, 0u);
  ASSERT_GT(ctx_ids.size(), n_gen);
  const std::vector<int32_t> prompt(ctx_ids.begin(), ctx_ids.end() - static_cast<std::ptrdiff_t>(n_gen));

  auto model = Model::load(kModel);
  Context ctx(*model, {.n_ctx = 2048, .kv_type = KvType::F16, .n_threads = 1});
  ctx.eval(prompt, LogitsFor::Last);
  for (size_t i = 0; i < n_gen; ++i) {
    const auto logits = ctx.last_logits();
    double mx = logits[0];
    for (float x : logits) mx = std::max(mx, static_cast<double>(x));
    double sum = 0;
    for (float x : logits) sum += std::exp(x - mx);
    const double log_z = mx + std::log(sum);
    const int32_t id = ctx_ids[prompt.size() + i];
    EXPECT_NEAR(lp[i]["logprob"].get<double>(), logits[static_cast<size_t>(id)] - log_z, 1e-4) << "token " << i;
    const size_t best = static_cast<size_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    EXPECT_NEAR(lp[i]["top_logprobs"][0]["logprob"].get<double>(), logits[best] - log_z, 1e-4) << "token " << i;
    ctx.eval(std::span<const int32_t>(&id, 1));
  }

  // Streamed with the same seed: the same tokens, their logprobs spread over the chunks.
  json sbody = body;
  sbody["stream"] = true;
  auto [ss, text] = post_text("/api/generate", sbody);
  ASSERT_EQ(ss, 200);
  const std::vector<json> objs = lines(text);
  expect_same_values(ollama_streamed(objs), lp);
  EXPECT_FALSE(objs.back().contains("logprobs"));  // the final object carries the figures only
}

// A speculating request streams every accepted token's log-probability with its text, as a plain one does
// (they once reached only the whole answer: the stream carried the first token's and no more).
TEST_F(LogprobsServer, SpeculatingStreamsCarryEveryTokensLogprob) {
  const std::string prompt = "one two three four one two three four one two three four one two three";
  for (const std::string spec : {"none", "ngram"}) {
    const json body = {{"model", "tiny"}, {"prompt", prompt}, {"stream", false}, {"logprobs", true},
                       {"options", {{"temperature", 0}, {"num_predict", 20}, {"spec", spec}, {"draft_max", 4}}}};
    auto [s, whole] = post("/api/generate", body);
    ASSERT_EQ(s, 200) << whole.dump();
    ASSERT_EQ(whole["logprobs"].size(), whole["eval_count"].get<size_t>()) << spec;
    json sbody = body;
    sbody["stream"] = true;
    auto [ss, text] = post_text("/api/generate", sbody);
    ASSERT_EQ(ss, 200);
    expect_same_values(ollama_streamed(lines(text)), whole["logprobs"]);
  }
  EXPECT_GE(metric("g3n_spec_rounds_total"), 20);  // the ngram requests went through verification, token by token at least
}

TEST_F(LogprobsServer, OllamaOffByDefaultAndGreedyPicksTheTopToken) {
  auto [s0, r0] = post("/api/generate", {{"model", "tiny"}, {"prompt", "Hi"}, {"stream", false}, {"options", {{"temperature", 0}, {"num_predict", 4}}}});
  ASSERT_EQ(s0, 200) << r0.dump();
  EXPECT_FALSE(r0.contains("logprobs"));
  // top_logprobs alone turns them on (Ollama); greedy: the chosen token is the first alternative.
  auto [s, r] = post("/api/chat", {{"model", "tiny"}, {"messages", user("Hi")}, {"stream", false}, {"top_logprobs", 2},
                                   {"options", {{"temperature", 0}, {"num_predict", 6}}}});
  ASSERT_EQ(s, 200) << r.dump();
  expect_steps(r["logprobs"], 2, false);
  ASSERT_EQ(r["logprobs"].size(), r["eval_count"].get<size_t>());
  for (const json& e : r["logprobs"]) {
    EXPECT_EQ(e["token"], e["top_logprobs"][0]["token"]);
    EXPECT_DOUBLE_EQ(e["logprob"].get<double>(), e["top_logprobs"][0]["logprob"].get<double>());
  }
  // logprobs without top_logprobs: no top list (left out, as Ollama's omitempty does); streamed the same values.
  const json body = {{"model", "tiny"}, {"messages", user("Hi")}, {"stream", true}, {"logprobs", true},
                     {"options", {{"temperature", 0}, {"num_predict", 6}}}};
  auto [ss, text] = post_text("/api/chat", body);
  ASSERT_EQ(ss, 200);
  const json streamed = ollama_streamed(lines(text));
  expect_steps(streamed, 0, false);
  expect_same_values(streamed, r["logprobs"]);
}

TEST_F(LogprobsServer, OpenAIChatWholeAndStreamed) {
  json body = {{"model", "tiny"}, {"messages", user("Hello")}, {"temperature", 0}, {"max_tokens", 8}};
  auto [s0, r0] = post("/v1/chat/completions", body);
  ASSERT_EQ(s0, 200) << r0.dump();
  EXPECT_TRUE(r0["choices"][0]["logprobs"].is_null());  // not asked for
  body["logprobs"] = true;
  body["top_logprobs"] = 3;
  auto [s, r] = post("/v1/chat/completions", body);
  ASSERT_EQ(s, 200) << r.dump();
  const json& content = r["choices"][0]["logprobs"]["content"];
  expect_steps(content, 3, true);
  EXPECT_EQ(content.size(), r["usage"]["completion_tokens"].get<size_t>());
  EXPECT_TRUE(r["choices"][0]["logprobs"]["refusal"].is_null());
  EXPECT_EQ(r0["choices"][0]["message"]["content"], r["choices"][0]["message"]["content"]);  // asking changes nothing

  body["stream"] = true;
  auto [ss, text] = post_text("/v1/chat/completions", body);
  ASSERT_EQ(ss, 200);
  json streamed = json::array();
  std::string streamed_text;
  for (const json& c : lines(text)) {
    if (c["choices"].empty()) continue;
    const json& ch = c["choices"][0];
    if (ch.contains("logprobs") && !ch["logprobs"].is_null())
      for (const json& e : ch["logprobs"]["content"]) streamed.push_back(e);
    if (ch["delta"].contains("content")) streamed_text += ch["delta"]["content"].get<std::string>();
  }
  expect_same_values(streamed, content);
  EXPECT_EQ(streamed_text, r["choices"][0]["message"]["content"]);
}

TEST_F(LogprobsServer, OpenAICompletionsLegacyShape) {
  json body = {{"model", "tiny"}, {"prompt", "Once upon"}, {"temperature", 0}, {"max_tokens", 8}, {"logprobs", 2}};
  auto [s, r] = post("/v1/completions", body);
  ASSERT_EQ(s, 200) << r.dump();
  const json& lp = r["choices"][0]["logprobs"];
  const size_t n = r["usage"]["completion_tokens"].get<size_t>();
  ASSERT_EQ(lp["tokens"].size(), n) << lp;
  ASSERT_EQ(lp["token_logprobs"].size(), n);
  ASSERT_EQ(lp["top_logprobs"].size(), n);
  ASSERT_EQ(lp["text_offset"].size(), n);
  EXPECT_EQ(lp["text_offset"][0], 0);
  for (size_t i = 0; i < n; ++i) {
    // Offsets count the tokens' bytes; a token that is part of a character shows as U+FFFD in `tokens`.
    const std::string token = lp["tokens"][i];
    if (i + 1 < n && token.find("\xEF\xBF\xBD") == std::string::npos) {
      EXPECT_EQ(lp["text_offset"][i + 1].get<size_t>() - lp["text_offset"][i].get<size_t>(), token.size()) << lp;
    }
    if (i + 1 < n) {
      EXPECT_GT(lp["text_offset"][i + 1].get<size_t>(), lp["text_offset"][i].get<size_t>());
    }
    ASSERT_TRUE(lp["top_logprobs"][i].is_object());
    EXPECT_GE(lp["top_logprobs"][i].size(), 1u);
    EXPECT_LE(lp["top_logprobs"][i].size(), 2u);
    // Greedy: the token is the likeliest of its alternatives.
    double best = -1e30;
    for (const auto& [tok, v] : lp["top_logprobs"][i].items()) best = std::max(best, v.get<double>());
    EXPECT_NEAR(lp["token_logprobs"][i].get<double>(), best, 1e-6);
  }
  body["stream"] = true;
  auto [ss, text] = post_text("/v1/completions", body);
  ASSERT_EQ(ss, 200);
  std::vector<double> values;
  std::vector<size_t> offsets;
  for (const json& c : lines(text)) {
    if (c["choices"].empty()) continue;
    const json& ch = c["choices"][0];
    if (!ch.contains("logprobs") || ch["logprobs"].is_null()) continue;
    for (const json& v : ch["logprobs"]["token_logprobs"]) values.push_back(v.get<double>());
    for (const json& v : ch["logprobs"]["text_offset"]) offsets.push_back(v.get<size_t>());
  }
  ASSERT_EQ(values.size(), n);
  for (size_t i = 0; i < n; ++i) {
    EXPECT_NEAR(values[i], lp["token_logprobs"][i].get<double>(), 1e-6);
    EXPECT_EQ(offsets[i], lp["text_offset"][i].get<size_t>());  // offsets continue across chunks
  }
}

TEST_F(LogprobsServer, BadFieldsAre400) {
  const json msgs = user("Hi");
  struct Case {
    const char* path;
    json body;
  } cases[] = {
      {"/api/generate", {{"model", "tiny"}, {"prompt", "Hi"}, {"top_logprobs", 21}}},
      {"/api/generate", {{"model", "tiny"}, {"prompt", "Hi"}, {"top_logprobs", -1}}},
      {"/api/chat", {{"model", "tiny"}, {"messages", msgs}, {"top_logprobs", 21}}},
      {"/api/chat", {{"model", "tiny"}, {"messages", msgs}, {"logprobs", "yes"}}},
      {"/v1/chat/completions", {{"model", "tiny"}, {"messages", msgs}, {"logprobs", true}, {"top_logprobs", 21}}},
      {"/v1/chat/completions", {{"model", "tiny"}, {"messages", msgs}, {"top_logprobs", 2}}},
      {"/v1/chat/completions", {{"model", "tiny"}, {"messages", msgs}, {"top_logprobs", "3"}, {"logprobs", true}}},
      {"/v1/chat/completions", {{"model", "tiny"}, {"messages", msgs}, {"n", 9}}},
      {"/v1/chat/completions", {{"model", "tiny"}, {"messages", msgs}, {"n", 0}}},
      {"/v1/chat/completions", {{"model", "tiny"}, {"messages", msgs}, {"n", 1.5}}},
      {"/v1/completions", {{"model", "tiny"}, {"prompt", "Hi"}, {"logprobs", 21}}},
      {"/v1/completions", {{"model", "tiny"}, {"prompt", "Hi"}, {"n", 100}}},
  };
  for (const Case& c : cases) {
    auto [s, r] = post(c.path, c.body);
    EXPECT_EQ(s, 400) << c.path << " " << c.body.dump() << " -> " << r.dump();
    const json& err = r["error"];
    EXPECT_TRUE(err.is_string() || (err.is_object() && err["message"].is_string())) << r.dump();
  }
}

TEST_F(LogprobsServer, SeedReproducesAndDifferentSeedsDiffer) {
  const auto ollama = [&](int seed) {
    auto [s, r] = post("/api/generate", {{"model", "tiny"}, {"prompt", "Tell me"}, {"stream", false},
                                         {"options", {{"temperature", 1.0}, {"top_k", 0}, {"top_p", 1.0}, {"seed", seed}, {"num_predict", 16}}}});
    EXPECT_EQ(s, 200) << r.dump();
    return r["context"].dump();  // the generated ids (the tiny model's text may be mostly invisible)
  };
  EXPECT_EQ(ollama(42), ollama(42));
  EXPECT_NE(ollama(42), ollama(43));
  const auto openai = [&](int seed) {
    auto [s, r] = post("/v1/completions", {{"model", "tiny"}, {"prompt", "Tell me"}, {"temperature", 1.0}, {"seed", seed},
                                           {"max_tokens", 16}, {"logprobs", 0}});
    EXPECT_EQ(s, 200) << r.dump();
    return r["choices"][0]["logprobs"]["tokens"].dump();
  };
  EXPECT_EQ(openai(42), openai(42));
  EXPECT_NE(openai(42), openai(43));
}

// n = 3 on 2 slots: greedy choices are identical; seeded sampled choice i is what a single request with
// seed + i answers; streamed chunks carry each choice's index; usage counts every choice's tokens.
TEST_F(LogprobsServer, NChoicesGreedySeededAndStreamed) {
  json greedy = {{"model", "tiny"}, {"messages", user("Hello")}, {"temperature", 0}, {"max_tokens", 8}, {"n", 3}};
  auto [s, r] = post("/v1/chat/completions", greedy);
  ASSERT_EQ(s, 200) << r.dump();
  ASSERT_EQ(r["choices"].size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(r["choices"][i]["index"], i);
    EXPECT_EQ(r["choices"][i]["message"], r["choices"][0]["message"]);
  }
  greedy["n"] = 1;
  auto [s1, r1] = post("/v1/chat/completions", greedy);
  ASSERT_EQ(s1, 200);
  EXPECT_EQ(r1["choices"][0]["message"], r["choices"][0]["message"]);
  EXPECT_EQ(r["usage"]["completion_tokens"].get<int>(), 3 * r1["usage"]["completion_tokens"].get<int>());
  EXPECT_EQ(r["usage"]["prompt_tokens"], r1["usage"]["prompt_tokens"]);

  json sampled = {{"model", "tiny"}, {"prompt", "Once"}, {"temperature", 1.0}, {"seed", 100}, {"max_tokens", 12}, {"n", 3}, {"logprobs", 0}};
  auto [s3, r3] = post("/v1/completions", sampled);
  ASSERT_EQ(s3, 200) << r3.dump();
  ASSERT_EQ(r3["choices"].size(), 3u);
  std::vector<std::string> tokens;
  for (int i = 0; i < 3; ++i) {
    json one = sampled;
    one["n"] = 1;
    one["seed"] = 100 + i;
    auto [so, ro] = post("/v1/completions", one);
    ASSERT_EQ(so, 200) << ro.dump();
    EXPECT_EQ(r3["choices"][i]["index"], i);
    EXPECT_EQ(r3["choices"][i]["text"], ro["choices"][0]["text"]) << "choice " << i;
    EXPECT_EQ(r3["choices"][i]["logprobs"]["tokens"], ro["choices"][0]["logprobs"]["tokens"]) << "choice " << i;
    tokens.push_back(r3["choices"][i]["logprobs"]["tokens"].dump());
  }
  EXPECT_TRUE(tokens[0] != tokens[1] || tokens[1] != tokens[2]) << "three seeds gave the same sample";

  sampled["stream"] = true;
  sampled["stream_options"] = {{"include_usage", true}};
  auto [ss, text] = post_text("/v1/completions", sampled);
  ASSERT_EQ(ss, 200);
  std::map<int, std::string> texts;
  std::map<int, std::string> finish;
  int usage_tokens = -1;
  for (const json& c : lines(text)) {
    if (c.contains("usage") && !c["usage"].is_null()) usage_tokens = c["usage"]["completion_tokens"].get<int>();
    for (const json& ch : c["choices"]) {
      texts[ch["index"].get<int>()] += ch["text"].get<std::string>();
      if (!ch["finish_reason"].is_null()) finish[ch["index"].get<int>()] = ch["finish_reason"];
    }
  }
  ASSERT_EQ(texts.size(), 3u);
  ASSERT_EQ(finish.size(), 3u);
  int whole_tokens = 0;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(texts[i], r3["choices"][i]["text"]) << "choice " << i;
    whole_tokens += static_cast<int>(r3["choices"][i]["logprobs"]["tokens"].size());
  }
  EXPECT_EQ(usage_tokens, r3["usage"]["completion_tokens"].get<int>());
  EXPECT_EQ(usage_tokens, whole_tokens);
}

TEST_F(LogprobsServer, NChoicesWithToolsEachCall) {
  const json weather = {{"type", "function"},
                        {"function",
                         {{"name", "get_weather"},
                          {"parameters",
                           {{"type", "object"},
                            {"properties", {{"city", {{"type", "string"}, {"enum", {"Paris", "Oslo"}}}}}},
                            {"required", {"city"}}}}}}};
  const json body = {{"model", "tiny"}, {"messages", user("Weather?")}, {"tools", {weather}}, {"tool_choice", "required"},
                     {"parallel_tool_calls", false}, {"temperature", 0}, {"max_tokens", 200}, {"n", 2}};
  auto [s, r] = post("/v1/chat/completions", body);
  ASSERT_EQ(s, 200) << r.dump();
  ASSERT_EQ(r["choices"].size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const json& c = r["choices"][i];
    EXPECT_EQ(c["finish_reason"], "tool_calls") << c;
    ASSERT_EQ(c["message"]["tool_calls"].size(), 1u) << c;
    EXPECT_EQ(c["message"]["tool_calls"][0]["function"], r["choices"][0]["message"]["tool_calls"][0]["function"]);
  }
  EXPECT_NE(r["choices"][0]["message"]["tool_calls"][0]["id"], r["choices"][1]["message"]["tool_calls"][0]["id"]);
}

// The prompt is evaluated once for all choices: on a fresh server (nothing cached) choice 0 reads it and
// choice 1, begun in the same round, copies its KV cache and logits, so the server counts the whole prompt as
// reused once (g3n_prompt_cached_tokens_total).
TEST_F(LogprobsServer, NChoicesEvaluateThePromptOnce) {
  auto [s, r] = post("/v1/chat/completions", {{"model", "tiny"}, {"messages", user("Share this prompt")}, {"temperature", 0},
                                              {"max_tokens", 3}, {"n", 2}});
  ASSERT_EQ(s, 200) << r.dump();
  const int prompt = r["usage"]["prompt_tokens"].get<int>();
  ASSERT_GT(prompt, 1);
  httplib::Client c("127.0.0.1", port_);
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  const std::string key = "\ng3n_prompt_cached_tokens_total ";
  const size_t at = m->body.find(key);
  ASSERT_NE(at, std::string::npos) << m->body;
  EXPECT_EQ(std::stoi(m->body.substr(at + key.size())), prompt);
  EXPECT_EQ(r["choices"][0]["message"], r["choices"][1]["message"]);
}
