// Each CLI command group lives in its own cmd_*.cpp and registers its subcommands here.
// Commands are thin: parse flags, call the library, print.
#pragma once
#include <CLI/CLI.hpp>

#include "registry/registry_client.h"

namespace g3n::cli {

void add_debug_commands(CLI::App& app);   // cmd_debug.cpp: debug logits / tokenize
void add_create_random_command(CLI::App& app);  // cmd_create_random.cpp
void add_store_commands(CLI::App& app);   // cmd_store.cpp: pull, list, show, rm, cp, create
void add_tokenize_command(CLI::App& debug_subcommand);  // cmd_tokenize.cpp: debug tokenize

void add_run_command(CLI::App& app);     // cmd_run.cpp: run
void add_bench_command(CLI::App& app);   // cmd_bench.cpp: bench
void add_serve_command(CLI::App& app);   // cmd_serve.cpp: serve

// Progress display for pulls: a bar per layer on a terminal, plain lines otherwise (pull_progress.cpp).
registry::ProgressFn pull_progress_printer();

}  // namespace g3n::cli
