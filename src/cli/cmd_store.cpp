#include "cli/commands.h"

namespace g3n::cli {
// Placeholder until the model store lands (pull/list/show/rm/cp/create).
void add_store_commands(CLI::App&) {}
}  // namespace g3n::cli
