// Each CLI command group lives in its own cmd_*.cpp and registers its subcommands here.
// Commands are thin: parse flags, call the library, print.
#pragma once
#include <CLI/CLI.hpp>

namespace g3n::cli {

void add_debug_commands(CLI::App& app);   // cmd_debug.cpp: debug logits / tokenize
void add_create_random_command(CLI::App& app);  // cmd_create_random.cpp
void add_store_commands(CLI::App& app);   // cmd_store.cpp: pull, list, show, rm, cp, create

}  // namespace g3n::cli
