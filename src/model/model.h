// A loaded Gemma 3n model: the mmapped GGUF, its configuration and bound weights. Immutable after
// load, so any number of contexts (sequences) can share one Model across threads.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "base/file.h"
#include "gguf/gguf.h"
#include "model/gemma3n_config.h"
#include "model/gemma3n_weights.h"

namespace g3n {

class Model {
 public:
  // Opens and validates the file; weights stay in the mapping (nothing is copied but 1-D vectors).
  // A non-empty `matformer` (a preset, FILE.json or FILE.csv:ROW, model/matformer.h) runs that slice of
  // the file: skipped layers are never touched, the kept FFNs are views of the stored prefixes.
  // `share_packed`: a model of the same file this one drafts for (self-speculation). Every matrix the slice
  // keeps is read from that model's own (packed, narrowed, copied, column-copied) version of it: a row range and
  // column prefix in place, never a copy, so the slice costs no weight memory of its own. The slice takes that
  // model's layout (LoadOptions::speculative). It must outlive this model.
  static std::unique_ptr<Model> load(const std::string& path, const std::string& matformer = "",
                                     const Model* share_packed = nullptr);
  // The same, and what the process will do with the model, which decides how the matrices a decode step
  // streams are laid out: `speculative` (verify passes of a few rows will run, any drafter) packs the Q6_K
  // matrices as well as the Q4_K ones (a 5-row pass then costs ~1.5 plain steps instead of ~2; a plain step
  // costs the same, and a plain load is ~0.7 s quicker without; docs/kernels.md "Packed matrices"), and so does
  // every load on a kernel set that decodes packed Q6_K faster (vec_dot_packs_q6k_for_decode: Intel AVX-512).
  // G3N_PACK_Q6K=1/0 in the environment overrides it either way.
  struct LoadOptions {
    std::string matformer = "";  // a slice, as load() above ("" = the whole file)
    const Model* share_packed = nullptr;
    bool speculative = false;
  };
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& options);
  // Same over a file the caller already opened.
  static std::unique_ptr<Model> from_gguf(GgufFile file, const std::string& matformer = "",
                                          const Model* share_packed = nullptr);
  static std::unique_ptr<Model> from_gguf(GgufFile file, const LoadOptions& options);

  // Not copied or moved: views of its weights (its own sources_, a draft's matrices) point into it.
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const GgufFile& file() const { return file_; }
  const Gemma3nConfig& config() const { return config_; }
  const Gemma3nWeights& weights() const { return weights_; }
  // The slice this model runs ("" when the whole file): the --matformer value it was loaded with.
  const std::string& matformer() const { return matformer_; }
  // Whether `matformer` (any spelling Model::load accepts; "" = the whole file) is the slice this model runs:
  // "E2B" and "e2b", or a preset and an equal JSON file, name the same one. Throws std::invalid_argument
  // when it is not a valid slice of this file.
  bool runs_slice(const std::string& matformer) const;

 private:
  Model(GgufFile file, const LoadOptions& options);
  void record_sources();
  void view_target_matrices(const Model& target);
  void compact_sliced_down_projections();
  void narrow_float_matrices();
  void build_sparse_columns();
  void move_matrices_to_arena();
  // Whether m's rows lie in this model's mapping (not yet copied, and not a view of another model's).
  bool in_mapping(const WeightMatrix& m) const;
  GgufFile file_;
  std::string matformer_;
  bool speculative_;  // the layout: LoadOptions::speculative, or the shared model's
  Gemma3nConfig config_;
  Gemma3nWeights weights_;
  // Where each matrix's rows are in the file, recorded before the load moves, packs or narrows them: what a
  // draft of the same file looks its own matrices up in (view_target_matrices).
  struct Source {
    uint64_t offset, row_bytes;  // of the file's rows
    int64_t n_in, n_out;
    const WeightMatrix* now;      // the matrix as the load left it
    const SparseColumns* cols;    // its column copy, if any
  };
  std::vector<Source> sources_;
  // Copies of F32 matrices whose values are exactly bf16 (or fp16): the matrices point here (model.cpp).
  std::vector<std::unique_ptr<uint16_t[]>> narrowed_;
  Mapping arena_;
};

}  // namespace g3n
