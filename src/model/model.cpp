#include "model/model.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/file.h"
#include "base/thread_pool.h"
#include "kernels/packed_panels.h"
#include "kernels/vec_dot.h"
#include "model/matformer.h"
#include "quant/fp16.h"

namespace g3n {

namespace {
// An on/off switch from the environment: on when set, non-empty and not "0"; `unset` when absent or empty.
bool env_switch(const char* name, bool unset = false) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) != "0" : unset;
}

Gemma3nConfig config_for(const GgufFile& file, const std::string& matformer) {
  Gemma3nConfig c = read_gemma3n_config(file);
  return matformer.empty() ? c : slice_config(c, resolve_matformer(matformer, c));
}

// Whether this load packs matrices of `type` (move_matrices_to_arena says why and when).
bool packs_type(GgmlType type, bool speculative) {
  if (env_switch("G3N_NO_PACK")) return false;
  if (type == GgmlType::Q4_K) return vec_dot_packed_fn(GgmlType::Q4_K) != nullptr;
  if (type == GgmlType::Q6_K)
    return vec_dot_packed_fn(GgmlType::Q4_K) && vec_dot_packed_fn(GgmlType::Q6_K) &&
           env_switch("G3N_PACK_Q6K", speculative || vec_dot_packs_q6k_for_decode());
  return false;
}
}  // namespace

Model::Model(GgufFile file, const LoadOptions& options)
    : file_(std::move(file)),
      matformer_(options.matformer),
      speculative_(options.speculative || (options.share_packed && options.share_packed->speculative_)),
      config_(config_for(file_, options.matformer)),
      weights_(bind_gemma3n_weights(file_, config_)) {
  record_sources();
  if (options.share_packed) view_target_matrices(*options.share_packed);
  // Each step below takes only matrices still in this model's mapping.
  compact_sliced_down_projections();
  narrow_float_matrices();
  build_sparse_columns();
  // After the sparse columns, which read the down projections' rows.
  move_matrices_to_arena();
}

// The mapping's first byte: mapped pointers as file offsets, which name the same rows in another Model of
// the same file (a draft maps it again).
static const uint8_t* mapping_base(const GgufFile& f) {
  if (f.tensors().empty()) return nullptr;
  const GgufTensorInfo& t = f.tensors().front();
  return f.tensor_data(t) - (f.data_offset() + t.offset);
}

bool Model::in_mapping(const WeightMatrix& m) const {
  const uint8_t* base = mapping_base(file_);
  return base && !m.empty() && m.data >= base && m.data < base + file_.file_size() &&
         m.row_bytes * static_cast<uint64_t>(m.n_out) <= static_cast<uint64_t>(base + file_.file_size() - m.data);
}

void Model::record_sources() {
  const uint8_t* base = mapping_base(file_);
  for_each_matrix(weights_, [&](const WeightMatrix& m, const SparseColumns* cols) {
    if (in_mapping(m)) sources_.push_back(Source{static_cast<uint64_t>(m.data - base), m.row_bytes, m.n_in, m.n_out, &m, cols});
  });
}

// Self-speculation: each matrix of this slice is a row range (gate, up, a run of per-layer projections) and
// column prefix (down) of one the target holds, found by where its rows are in the file, and read from the
// target's version in place: its packed groups, narrowed floats, arena copy or column copy, whatever the
// target's load made of it. A matrix the target does not hold whole (the target a narrower slice) keeps its
// own rows and goes through this load's steps.
void Model::view_target_matrices(const Model& target) {
  const uint8_t* base = mapping_base(file_);
  for_each_matrix(weights_, [&](WeightMatrix& m, SparseColumns* cols) {
    if (!in_mapping(m)) return;
    const uint64_t offset = static_cast<uint64_t>(m.data - base);
    for (const Source& src : target.sources_) {
      if (src.row_bytes != m.row_bytes || offset < src.offset || (offset - src.offset) % src.row_bytes) continue;
      const uint64_t r0 = (offset - src.offset) / src.row_bytes;
      if (r0 >= static_cast<uint64_t>(src.n_out) || m.n_in > src.n_in) continue;
      const auto view = weight_view(*src.now, static_cast<int64_t>(r0), m.n_out, m.n_in);
      if (!view) continue;
      m = *view;
      if (cols && src.cols && r0 == 0 && m.n_out == src.cols->n_out) *cols = sparse_columns_prefix(*src.cols, m.n_in);
      return;
    }
  });
}

// Sparse layers (docs/model.md §4.4d) get a column-major copy of their down projection, built on the load
// threads. The fast path then never reads the mmapped original, so its pages are handed back.
void Model::build_sparse_columns() {
  std::vector<int> sparse;
  for (int l = 0; l < config_.n_layer; ++l) {
    const Gemma3nLayerWeights& lw = weights_.layers[l];
    if (config_.sparsity_std_multiplier[l] > 0 && lw.ffn_down_cols.empty() && in_mapping(lw.ffn_down) &&
        sparse_columns_supported(lw.ffn_down))
      sparse.push_back(l);
  }
  if (sparse.empty()) return;
  // One layer per chunk, handed out on demand. The first failure (out of memory) is rethrown by the
  // pool once every thread has stopped, and fails the load.
  ThreadPool pool(std::min<int>(default_thread_count(), static_cast<int>(sparse.size())));
  pool.parallel_for_dynamic(static_cast<int64_t>(sparse.size()), [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      auto& lw = weights_.layers[sparse[static_cast<size_t>(i)]];
      lw.ffn_down_cols = make_sparse_columns(lw.ffn_down);
      file_.drop_pages(lw.ffn_down.data, lw.ffn_down.row_bytes * static_cast<uint64_t>(lw.ffn_down.n_out));
    }
  }, 1);
}

// A sliced ffn_down keeps the first F values of each stored row: reading it in place would fault in (and
// keep resident) most of every row, since rows are a few pages long. Copied compactly, the slice costs
// the memory of its exported file. Sparse layers are skipped: their column copy replaces the rows anyway.
// Where the load packs matrices of its type (move_matrices_to_arena), the copy is packed straight from the
// strided rows, so the slice decodes as its exported file does (which the arena packs).
void Model::compact_sliced_down_projections() {
  std::vector<int> sliced;
  for (int l = 0; l < config_.n_layer; ++l) {
    const WeightMatrix& d = weights_.layers[l].ffn_down;
    const bool sparse = config_.sparsity_std_multiplier[l] > 0 && sparse_columns_supported(d);
    if (!sparse && in_mapping(d) && ggml_row_bytes(d.type, static_cast<uint64_t>(d.n_in)).value_or(d.row_bytes) != d.row_bytes) sliced.push_back(l);
  }
  if (sliced.empty()) return;
  ThreadPool pool(std::min<int>(default_thread_count(), static_cast<int>(sliced.size())));
  pool.parallel_for_dynamic(static_cast<int64_t>(sliced.size()), [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      Gemma3nLayerWeights& lw = weights_.layers[sliced[static_cast<size_t>(i)]];
      WeightMatrix& d = lw.ffn_down;
      const uint64_t keep = *ggml_row_bytes(d.type, static_cast<uint64_t>(d.n_in));
      const bool packs = packs_type(d.type, speculative_) && packable(d.type, d.n_in, d.n_out);
      if (packs) {
        lw.ffn_down_compact.resize(packed_matrix_bytes(d.type, d.n_in, d.n_out));
        pack_groups(d.type, d.data, d.row_bytes, d.n_in, 0, d.n_out / kPackRows, lw.ffn_down_compact.data());
      } else {
        lw.ffn_down_compact.resize(keep * static_cast<uint64_t>(d.n_out));
        for (int64_t r = 0; r < d.n_out; ++r) std::memcpy(lw.ffn_down_compact.data() + keep * r, d.row(r), keep);
      }
      file_.drop_pages(d.data, d.row_bytes * static_cast<uint64_t>(d.n_out));
      d.data = lw.ffn_down_compact.data();
      d.row_bytes = keep;
      d.packed = packs;
    }
  }, 1);
}

// F32 matrices widened from a bf16 checkpoint (llama.cpp keeps AltUp, LAuReL and per_layer_model_proj
// unquantized in its K-quant files: ~200 MB, 13% of an E2B decode step's bytes) carry 16 bits of
// information in 32. Where every value of a matrix is exactly a bf16 (else exactly an fp16), the matrix is
// copied as BF16 (F16) and its mapped pages handed back: half the bytes per token, half the memory, and the
// same numbers, because every kernel set's BF16/F16 dots and tiles are its F32 kernels with an exact
// widening load (tests/kernels_narrow_test.cpp). G3N_KEEP_F32=1 keeps the F32 matrices (for comparison).
void Model::narrow_float_matrices() {
  if (env_switch("G3N_KEEP_F32")) return;
  std::vector<WeightMatrix*> todo;
  auto consider = [&](WeightMatrix& m) {
    if (in_mapping(m) && m.type == GgmlType::F32 && m.row_bytes == static_cast<uint64_t>(m.n_in) * sizeof(float) && m.n_out > 1)
      todo.push_back(&m);
  };
  for (auto& run : weights_.per_layer) consider(run.model_proj);
  for (auto& m : weights_.altup_proj) consider(m);
  for (auto& m : weights_.altup_unembd_proj) consider(m);
  for (auto& lw : weights_.layers) {
    for (WeightMatrix* m : {&lw.altup_router, &lw.altup_predict_coef, &lw.altup_correct_coef, &lw.attn_q, &lw.attn_k,
                            &lw.attn_v, &lw.attn_output, &lw.laurel_l, &lw.laurel_r, &lw.ffn_gate, &lw.ffn_up,
                            &lw.inp_gate, &lw.proj})
      consider(*m);
    if (lw.ffn_down_compact.empty() && lw.ffn_down_cols.empty()) consider(lw.ffn_down);
  }
  if (todo.empty()) return;
  narrowed_.resize(todo.size());
  ThreadPool pool(std::min<int>(default_thread_count(), static_cast<int>(todo.size())));
  pool.parallel_for_dynamic(static_cast<int64_t>(todo.size()), [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      WeightMatrix& m = *todo[static_cast<size_t>(i)];
      const int64_t n = m.n_in * m.n_out;
      const auto* src = reinterpret_cast<const float*>(m.data);
      // Not zero-filled: a matrix of arbitrary floats fails on its first values, touching one page.
      std::unique_ptr<uint16_t[]> dst(new uint16_t[static_cast<size_t>(n)]);
      GgmlType type = GgmlType::BF16;
      if (!pack_bf16_exact(src, n, dst.get())) {
        type = GgmlType::F16;
        if (!pack_fp16_exact(src, n, dst.get())) continue;
      }
      file_.drop_pages(m.data, m.row_bytes * static_cast<uint64_t>(m.n_out));
      m.type = type;
      m.data = reinterpret_cast<const uint8_t*>(dst.get());
      narrowed_[static_cast<size_t>(i)] = std::move(dst);
      m.row_bytes = static_cast<uint64_t>(m.n_in) * sizeof(uint16_t);
    }
  }, 1);
}

// The matrices a decode step streams leave the mapping for one anonymous arena (base/file.h map_anonymous),
// in 2 MiB pages where the kernel gives them:
//  - Q4_K matrices are PACKED for the AVX-512 VNNI kernels (kernels/packed_panels.h) where the kernel set
//    in use has them: decode reads them as fast as the row kernels do (faster for long rows), verifying 2-8
//    tokens costs little more than one (rows: 2-3x); +2.8% bytes (scales unpacked);
//  - with huge pages, every other streamed matrix (Q6_K, the sparse layers' masked up projections, the
//    output head, float matrices left unnarrowed) is COPIED as it is: its rows then stream from 2 MiB
//    pages, across which the hardware prefetchers keep running and which need 512x fewer TLB entries
//    (E4B generation +8%, docs/model.md §2). Without huge pages a copy would gain nothing and is not made.
// Not moved: sliced views (their rows are not contiguous) and the per-layer token table (read by row).
// Each matrix is moved in pieces of at most kPiece source bytes, whose mapped pages are handed back as
// soon as they are moved, so the process never holds a whole large matrix twice (the 440 MB output head).
// G3N_NO_PACK=1 keeps Q4_K in rows. A model loaded for speculation packs the Q6_K matrices too (the output
// head, the dense layers' down projections): a verify pass of 2-8 tokens then reads them at the packed
// kernels' cost (n-gram speculation at acceptance 0.7: E4B +20%, E2B +28% tokens/s). A plain decode step costs
// the same either way on Zen 4 and AVX2, where it would only pay the ~0.7 s of load the packing takes
// (docs/kernels.md, "Packed matrices"); the sets whose CPUs decode packed Q6_K faster (Intel AVX-512, +10-16%)
// say so (vec_dot_packs_q6k_for_decode) and pack it for every load.
// G3N_PACK_Q6K=1 packs them whatever the load options, =0 never.
// Huge pages are taken while they fault in quickly (base/file.h fault_in_huge_pages); G3N_HUGE_PAGES=0
// turns them off, =1 takes them however slowly they come.
// A draft of the same file finds its matrices already made here (view_target_matrices): none is left to move.
void Model::move_matrices_to_arena() {
  const bool pack = packs_type(GgmlType::Q4_K, speculative_);
  const bool pack_q6k = packs_type(GgmlType::Q6_K, speculative_);
  const bool huge = weight_buffers_use_huge_pages();
  if (!pack && !huge) return;
  // One entry per distinct source (the tied output head and input table are one matrix).
  struct Move {
    std::vector<WeightMatrix*> views;
    bool packed;
  };
  std::vector<Move> todo;
  auto consider = [&](WeightMatrix& m, bool may_pack) {
    if (m.packed || !in_mapping(m) || m.n_out <= 0) return;
    if (ggml_row_bytes(m.type, static_cast<uint64_t>(m.n_in)).value_or(0) != m.row_bytes) return;  // a sliced view
    for (Move& mv : todo)
      if (mv.views.front()->data == m.data) {
        if (mv.views.front()->n_in == m.n_in && mv.views.front()->n_out == m.n_out) mv.views.push_back(&m);
        return;
      }
    const bool packs = may_pack && ((pack && m.type == GgmlType::Q4_K) || (pack_q6k && m.type == GgmlType::Q6_K)) &&
                       packable(m.type, m.n_in, m.n_out);
    if (packs || huge) todo.push_back(Move{{&m}, packs});
  };
  for (int l = 0; l < config_.n_layer; ++l) {
    Gemma3nLayerWeights& lw = weights_.layers[l];
    for (WeightMatrix* m : {&lw.attn_q, &lw.attn_k, &lw.attn_v, &lw.attn_output, &lw.laurel_l, &lw.laurel_r, &lw.ffn_gate,
                            &lw.inp_gate, &lw.proj, &lw.altup_router, &lw.altup_predict_coef, &lw.altup_correct_coef})
      consider(*m, true);
    // Sparse layers: the masked up projection reads single rows (packed, a 16-row group would be computed
    // wherever one row is needed), and the down projection is read from its column copy.
    const bool sparse = config_.sparsity_std_multiplier[l] > 0;
    consider(lw.ffn_up, !sparse);
    if (lw.ffn_down_cols.empty()) consider(lw.ffn_down, true);
  }
  for (PerLayerRun& run : weights_.per_layer) consider(run.model_proj, true);
  for (auto& m : weights_.altup_proj) consider(m, true);
  for (auto& m : weights_.altup_unembd_proj) consider(m, true);
  consider(weights_.output, true);
  if (weights_.token_embd.data == weights_.output.data) consider(weights_.token_embd, true);  // tied: one copy
  if (todo.empty()) return;
  const auto bytes_of = [](const Move& mv) {
    const WeightMatrix& m = *mv.views.front();
    return mv.packed ? packed_matrix_bytes(m.type, m.n_in, m.n_out) : m.row_bytes * static_cast<uint64_t>(m.n_out);
  };
  const auto repoint = [](const Move& mv, const uint8_t* dst) {
    for (WeightMatrix* v : mv.views) {
      v->data = dst;
      v->packed = mv.packed;
    }
  };
  // Packed matrices first: a copy only pays in huge pages, so copies that would land past the part of the
  // arena the kernel gave huge pages to (fault_in_huge_pages stopped early) are not made; their matrices stay
  // mapped, and that tail of the arena is never touched (no memory).
  std::stable_partition(todo.begin(), todo.end(), [](const Move& mv) { return mv.packed; });
  std::vector<uint64_t> offset(todo.size() + 1, 0);
  for (size_t i = 0; i < todo.size(); ++i) offset[i + 1] = offset[i] + (bytes_of(todo[i]) + 63) / 64 * 64;
  size_t huge_bytes = 0;
  arena_ = map_weight_buffer(static_cast<size_t>(offset.back()), &huge_bytes);
  while (!todo.empty() && !todo.back().packed && offset[todo.size()] > huge_bytes) todo.pop_back();
  auto* arena = static_cast<uint8_t*>(arena_.data());
  constexpr uint64_t kPiece = uint64_t{8} << 20;
  ThreadPool pool(std::min<int>(default_thread_count(), static_cast<int>(todo.size())));
  pool.parallel_for_dynamic(static_cast<int64_t>(todo.size()), [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      const Move& mv = todo[static_cast<size_t>(i)];
      const WeightMatrix& m = *mv.views.front();
      uint8_t* dst = arena + offset[static_cast<size_t>(i)];
      // Pieces of whole row groups (packed: 16 rows) of at most kPiece bytes (at least one group).
      const int64_t unit = mv.packed ? kPackRows : 1, units = m.n_out / unit;
      const uint64_t unit_bytes = m.row_bytes * static_cast<uint64_t>(unit);
      const int64_t step = std::max<int64_t>(1, static_cast<int64_t>(kPiece / unit_bytes));
      for (int64_t u0 = 0; u0 < units; u0 += step) {
        const int64_t u1 = std::min(units, u0 + step);
        const uint8_t* src = m.data + unit_bytes * static_cast<uint64_t>(u0);
        if (mv.packed) pack_groups(m.type, m.data, m.row_bytes, m.n_in, u0, u1, dst + packed_matrix_bytes(m.type, m.n_in, unit * u0));
        else std::memcpy(dst + unit_bytes * static_cast<uint64_t>(u0), src, unit_bytes * static_cast<uint64_t>(u1 - u0));
        file_.drop_pages(src, unit_bytes * static_cast<uint64_t>(u1 - u0));  // the pieces' pages: all of them
      }
      repoint(mv, dst);
    }
  }, 1);
}

bool Model::runs_slice(const std::string& matformer) const {
  const Gemma3nConfig want = config_for(file_, matformer);
  return want.file_layer == config_.file_layer && want.n_ff == config_.n_ff;
}

std::unique_ptr<Model> Model::load(const std::string& path, const std::string& matformer, const Model* share_packed) {
  return from_gguf(GgufFile::open(path), LoadOptions{matformer, share_packed});
}

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& options) {
  return from_gguf(GgufFile::open(path), options);
}

std::unique_ptr<Model> Model::from_gguf(GgufFile file, const std::string& matformer, const Model* share_packed) {
  return from_gguf(std::move(file), LoadOptions{matformer, share_packed});
}

std::unique_ptr<Model> Model::from_gguf(GgufFile file, const LoadOptions& options) {
  return std::unique_ptr<Model>(new Model(std::move(file), options));
}

}  // namespace g3n
