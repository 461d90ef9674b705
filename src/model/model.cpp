#include "model/model.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/vec_dot.h"
#include "model/matformer.h"
#include "quant/fp16.h"

namespace g3n {

namespace {
Gemma3nConfig config_for(const GgufFile& file, const std::string& matformer) {
  Gemma3nConfig c = read_gemma3n_config(file);
  return matformer.empty() ? c : slice_config(c, resolve_matformer(matformer, c));
}
}  // namespace

Model::Model(GgufFile file, const std::string& matformer, const Model* share_packed)
    : file_(std::move(file)),
      matformer_(matformer),
      config_(config_for(file_, matformer)),
      weights_(bind_gemma3n_weights(file_, config_)) {
  compact_sliced_down_projections();
  narrow_float_matrices();
  build_sparse_columns();
  pack_matrices(share_packed);  // after the sparse columns, which read the down projections' rows
}

// Sparse layers (docs/model.md §4.4d) get a column-major copy of their down projection, built on the load
// threads. The fast path then never reads the mmapped original, so its pages are handed back.
void Model::build_sparse_columns() {
  std::vector<int> sparse;
  for (int l = 0; l < config_.n_layer; ++l)
    if (config_.sparsity_std_multiplier[l] > 0 && sparse_columns_supported(weights_.layers[l].ffn_down))
      sparse.push_back(l);
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
void Model::compact_sliced_down_projections() {
  std::vector<int> sliced;
  for (int l = 0; l < config_.n_layer; ++l) {
    const WeightMatrix& d = weights_.layers[l].ffn_down;
    const bool sparse = config_.sparsity_std_multiplier[l] > 0 && sparse_columns_supported(d);
    if (!sparse && ggml_row_bytes(d.type, static_cast<uint64_t>(d.n_in)).value_or(d.row_bytes) != d.row_bytes) sliced.push_back(l);
  }
  if (sliced.empty()) return;
  ThreadPool pool(std::min<int>(default_thread_count(), static_cast<int>(sliced.size())));
  pool.parallel_for_dynamic(static_cast<int64_t>(sliced.size()), [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      Gemma3nLayerWeights& lw = weights_.layers[sliced[static_cast<size_t>(i)]];
      WeightMatrix& d = lw.ffn_down;
      const uint64_t keep = *ggml_row_bytes(d.type, static_cast<uint64_t>(d.n_in));
      lw.ffn_down_compact.resize(keep * static_cast<uint64_t>(d.n_out));
      for (int64_t r = 0; r < d.n_out; ++r) std::memcpy(lw.ffn_down_compact.data() + keep * r, d.row(r), keep);
      file_.drop_pages(d.data, d.row_bytes * static_cast<uint64_t>(d.n_out));
      d.data = lw.ffn_down_compact.data();
      d.row_bytes = keep;
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
  if (const char* keep = std::getenv("G3N_KEEP_F32"); keep && *keep && std::string(keep) != "0") return;
  std::vector<WeightMatrix*> todo;
  auto consider = [&](WeightMatrix& m) {
    if (!m.empty() && m.type == GgmlType::F32 && m.row_bytes == static_cast<uint64_t>(m.n_in) * sizeof(float) && m.n_out > 1)
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

// The mapping's first byte: mapped pointers as file offsets, which name the same rows in another Model of
// the same file (a draft maps it again).
static const uint8_t* mapping_base(const GgufFile& f) {
  if (f.tensors().empty()) return nullptr;
  const GgufTensorInfo& t = f.tensors().front();
  return f.tensor_data(t) - (f.data_offset() + t.offset);
}

// Q4_K matrices repacked for the AVX-512 VNNI kernels (kernels/packed_panels.h) where the kernel set in use
// has them: decode reads them as fast as the row kernels do (faster for long rows), verifying 2-8 tokens
// costs little more than one (rows: 2-3x), and the mapped pages are handed back (+2.8% bytes: scales
// unpacked). Not packed: Q6_K (its packed one-token kernel streams from DRAM slower than the row kernels on
// Zen 4; docs/kernels.md), the sparse layers' up projection (masked products skip single rows; a 16-row
// group would be computed wherever any row is needed), and sliced views (their rows are not contiguous).
// G3N_NO_PACK=1 keeps every matrix in its rows (for comparison). A draft of the same file (share) uses
// the target's packed copies, so self-speculation adds no weight memory; what the target did not pack stays mapped.
void Model::pack_matrices(const Model* share) {
  if (const char* no = std::getenv("G3N_NO_PACK"); no && *no && std::string(no) != "0") return;
  if (!vec_dot_packed_fn(GgmlType::Q4_K)) return;
  std::vector<WeightMatrix*> todo;
  const uint8_t* base = mapping_base(file_);
  auto mapped = [&](const WeightMatrix& m) {
    return base && m.data >= base && m.data < base + file_.file_size() &&
           m.data + m.row_bytes * static_cast<uint64_t>(m.n_out) <= base + file_.file_size();
  };
  auto consider = [&](WeightMatrix& m) {
    if (!m.empty() && !m.packed && m.type == GgmlType::Q4_K && packable(m.type, m.n_in, m.n_out) &&
        ggml_row_bytes(m.type, static_cast<uint64_t>(m.n_in)).value_or(0) == m.row_bytes && mapped(m))
      todo.push_back(&m);
  };
  for (int l = 0; l < config_.n_layer; ++l) {
    Gemma3nLayerWeights& lw = weights_.layers[l];
    for (WeightMatrix* m : {&lw.attn_q, &lw.attn_k, &lw.attn_v, &lw.attn_output, &lw.laurel_l, &lw.laurel_r, &lw.ffn_gate,
                            &lw.inp_gate, &lw.proj})
      consider(*m);
    const bool sparse = config_.sparsity_std_multiplier[l] > 0;
    if (!sparse) consider(lw.ffn_up);
    if (lw.ffn_down_cols.empty()) consider(lw.ffn_down);  // sparse layers: the fast path reads the column copy
  }
  if (todo.empty()) return;
  if (share) {
    const uint8_t* other = mapping_base(share->file_);
    for (WeightMatrix* m : todo)
      if (const uint8_t* p = share->packed_copy(m->data - base + other, m->n_in, m->n_out)) {
        file_.drop_pages(m->data, m->row_bytes * static_cast<uint64_t>(m->n_out));
        m->data = p;
        m->packed = true;
      }
    return;
  }
  packed_.resize(todo.size());
  ThreadPool pool(std::min<int>(default_thread_count(), static_cast<int>(todo.size())));
  pool.parallel_for_dynamic(static_cast<int64_t>(todo.size()), [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      WeightMatrix& m = *todo[static_cast<size_t>(i)];
      PackedBuffer buf = allocate_packed(packed_matrix_bytes(m.type, m.n_in, m.n_out));
      pack_groups(m.type, m.data, m.row_bytes, m.n_in, 0, m.n_out / kPackRows, buf.get());
      file_.drop_pages(m.data, m.row_bytes * static_cast<uint64_t>(m.n_out));
      packed_[static_cast<size_t>(i)] = Packed{m.data, m.n_in, m.n_out, std::move(buf)};
      m.data = packed_[static_cast<size_t>(i)].data.get();
      m.packed = true;
    }
  }, 1);
}

const uint8_t* Model::packed_copy(const uint8_t* source, int64_t n_in, int64_t n_out) const {
  for (const Packed& p : packed_)
    if (p.source == source && p.n_in == n_in && p.n_out >= n_out) return p.data.get();
  return nullptr;
}

bool Model::runs_slice(const std::string& matformer) const {
  const Gemma3nConfig want = config_for(file_, matformer);
  return want.file_layer == config_.file_layer && want.n_ff == config_.n_ff;
}

std::unique_ptr<Model> Model::load(const std::string& path, const std::string& matformer, const Model* share_packed) {
  return from_gguf(GgufFile::open(path), matformer, share_packed);
}

std::unique_ptr<Model> Model::from_gguf(GgufFile file, const std::string& matformer, const Model* share_packed) {
  return std::unique_ptr<Model>(new Model(std::move(file), matformer, share_packed));
}

}  // namespace g3n
