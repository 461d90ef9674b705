#include <cstdlib>

#include "cli/commands.h"

namespace g3n::cli {

// A process that will speculate loads its Q6_K matrices packed (the output head, the dense down
// projections): a verify pass of 5 tokens then costs ~1.5 decode steps instead of ~2 (docs/kernels.md,
// "Packed matrices"). A plain process keeps them in rows (E2B decodes 5-15% faster so in g3n bench). The
// user's own G3N_PACK_Q6K (0 or 1) wins.
void pack_q6k_if_speculating(bool speculates) {
  if (speculates) setenv("G3N_PACK_Q6K", "1", /*overwrite=*/0);
}

}  // namespace g3n::cli
