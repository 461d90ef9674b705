// Rows per forward pass by default (n_batch, the num_batch parameter): one constant for the engine, a
// context and the Ollama parameters.
#pragma once

namespace g3n {

// 256: with AMX tiles a pass's scaled weight panels are built once per matrix and serve every 16-token tile
// of the pass, so longer passes pay (Intel Xeon with AMX, 2 threads, 512-token prompts: E2B 232-241 tok/s at
// 128 rows, 250-268 at 256, 249-258 at 512; E4B 134-146 -> 159-161); on the AVX-512 VNNI and AVX2 sets the
// prompt speed is flat above ~100 rows. The cost is memory: E2B's scratch and sliding rings grow ~32 MB.
inline constexpr int kDefaultBatchRows = 256;

}  // namespace g3n
