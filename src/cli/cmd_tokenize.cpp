// `g3n debug tokenize MODEL [--no-parse-special] [--bos]`: one JSON string per stdin line in, one JSON
// array of token ids per line out. MODEL may be a vocab-only GGUF. Used to compare with reference
// tokenizers, so the output format is stable.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "cli/commands.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace g3n::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  bool no_parse_special = false;
  bool bos = false;
};

void run_tokenize(const TokenizeOptions& o) {
  const Tokenizer tok = Tokenizer::from_gguf(GgufFile::open(o.model));
  std::string line;
  size_t line_no = 0;
  while (std::getline(std::cin, line, '\n')) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    nlohmann::json in;
    try {
      in = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error("stdin line " + std::to_string(line_no) + ": not JSON: " + e.what());
    }
    if (!in.is_string()) throw std::runtime_error("stdin line " + std::to_string(line_no) + ": expected a JSON string");
    const auto ids = tok.encode(in.get_ref<const std::string&>(), o.bos, !o.no_parse_special);
    std::string out = nlohmann::json(ids).dump();
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);  // line by line, so a caller can pipe interactively
  }
}

}  // namespace

void add_tokenize_command(CLI::App& debug) {
  auto opts = std::make_shared<TokenizeOptions>();
  auto* cmd = debug.add_subcommand("tokenize", "Tokenize JSON strings from stdin (one per line) to JSON id arrays");
  cmd->add_option("model", opts->model, "GGUF model or vocab-only file")->required();
  cmd->add_flag("--no-parse-special", opts->no_parse_special, "do not match control tokens such as <start_of_turn>");
  cmd->add_flag("--bos", opts->bos, "prepend the BOS token");
  cmd->callback([opts] { run_tokenize(*opts); });
}

}  // namespace g3n::cli
