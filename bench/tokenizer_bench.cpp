// Tokenizer throughput on the real Gemma vocabulary (fixtures/gemma3-vocab). Reports bytes/s of input.
#include <benchmark/benchmark.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

const std::string kFix = G3N_FIXTURES_DIR;

const g3n::Tokenizer& tok() {
  static g3n::Tokenizer t = g3n::Tokenizer::from_gguf(g3n::GgufFile::open(kFix + "/gemma3-vocab/vocab.gguf"));
  return t;
}

// Texts of cases.jsonl, optionally only one category.
std::vector<std::string> texts(const std::string& category) {
  std::ifstream in(kFix + "/gemma3-vocab/cases.jsonl", std::ios::binary);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line, '\n')) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    if (category.empty() || j["category"] == category) out.push_back(j["text"]);
  }
  return out;
}

// cold: start every iteration with an empty word cache (the first pass over unseen text).
void encode_all(benchmark::State& state, const std::vector<std::string>& docs, bool cold = false) {
  const auto& t = tok();
  size_t bytes = 0, tokens = 0;
  for (const auto& d : docs) bytes += d.size();
  for (auto _ : state) {
    if (cold) g3n::Tokenizer::clear_thread_cache();
    tokens = 0;
    for (const auto& d : docs) {
      auto ids = t.encode(d, true, true);
      tokens += ids.size();
      benchmark::DoNotOptimize(ids.data());
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(tokens) * state.iterations(), benchmark::Counter::kIsRate);
}

void BM_EncodeLongDocuments(benchmark::State& state) {
  static const auto docs = texts("long_document");
  encode_all(state, docs);
}
BENCHMARK(BM_EncodeLongDocuments)->Unit(benchmark::kMillisecond);

void BM_EncodeLongDocumentsCold(benchmark::State& state) {
  static const auto docs = texts("long_document");
  encode_all(state, docs, true);
}
BENCHMARK(BM_EncodeLongDocumentsCold)->Unit(benchmark::kMillisecond);

void BM_EncodeAllCases(benchmark::State& state) {
  static const auto docs = texts("");
  encode_all(state, docs);
}
BENCHMARK(BM_EncodeAllCases)->Unit(benchmark::kMillisecond);

void BM_EncodeOneLongLine(benchmark::State& state) {
  // Worst case for the BPE: one 1 MB fragment with no special token to split it.
  static const std::string doc = [] {
    std::string s;
    for (const auto& d : texts("english_prose")) s += d + " ";
    std::string out;
    while (out.size() < (1u << 20)) out += s;
    for (char& c : out)
      if (c == '\n' || c == '\t') c = ' ';
    std::string collapsed;  // runs of spaces are special tokens: keep single spaces only
    for (char c : out)
      if (!(c == ' ' && !collapsed.empty() && collapsed.back() == ' ')) collapsed += c;
    return collapsed;
  }();
  encode_all(state, {doc}, state.range(0) != 0);
}
BENCHMARK(BM_EncodeOneLongLine)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);  // 1 = cold cache

void BM_EncodeAllCasesCold(benchmark::State& state) {
  static const auto docs = texts("");
  encode_all(state, docs, true);
}
BENCHMARK(BM_EncodeAllCasesCold)->Unit(benchmark::kMillisecond);

void BM_DecodeLongDocuments(benchmark::State& state) {
  static const auto docs = texts("long_document");
  std::vector<std::vector<int32_t>> ids;
  size_t bytes = 0;
  for (const auto& d : docs) {
    ids.push_back(tok().encode(d, false, true));
    bytes += d.size();
  }
  for (auto _ : state) {
    for (const auto& v : ids) {
      g3n::StreamingDetokenizer detok(tok());
      std::string out;
      for (int32_t id : v) out += detok.push(id);
      benchmark::DoNotOptimize(out.data());
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}
BENCHMARK(BM_DecodeLongDocuments)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
