// Public vec_dot API: validation, and the named kernel sets (scalar kernels overlaid with the SIMD ones
// the CPU supports) with the switch between them. G3N_VEC_DOT=NAME in the environment chooses a set
// (e.g. scalar, for comparing paths on one machine); it is read once, at first use.
#include "kernels/vec_dot.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cpu_features.h"
#include "kernels/vec_dot_impl.h"

namespace g3n {
namespace {

using vecdot::KernelSet;

struct Dispatch {
  KernelSet k;
  const char* isa = "scalar";
};

// Every kernel `from` has replaces the one in `into`. A tile or row kernel is only valid beside the dot
// kernel of its own set (bit-identical pairs), so dot, tile, masked tile, rows, packed and their token hints
// move together (take_type_kernels).
void overlay(KernelSet& into, const KernelSet& from) {
  for (int i = 0; i < 32; ++i) {
    if (from.dot[i]) vecdot::take_type_kernels(into, from, static_cast<GgmlType>(i));
    if (from.quant_act[i]) into.quant_act[i] = from.quant_act[i];
  }
  const auto take = [](auto& dst, auto src) {
    if (src) dst = src;
  };
  take(into.dot_f16_f32, from.dot_f16_f32);
  take(into.axpy_f16, from.axpy_f16);
  take(into.dot_f32, from.dot_f32);
  take(into.axpy_f32, from.axpy_f32);
  take(into.gelu_mul, from.gelu_mul);
  take(into.soft_cap, from.soft_cap);
  take(into.attn_scores_f16, from.attn_scores_f16);
  take(into.attn_scores_f32, from.attn_scores_f32);
  take(into.attn_values_f16, from.attn_values_f16);
  take(into.attn_values_f32, from.attn_values_f32);
  take(into.pack_q6k_for_decode, from.pack_q6k_for_decode);
}

// The named kernel sets, as data. A set is its own kernels overlaid on its base set's (cumulatively, so
// "neon+i8mm" = scalar <- neon <- neon+dotprod <- neon+i8mm, and "avx512vnni" = scalar <- avx2+fma+f16c <-
// avx512vnni); it runs where its kernels were compiled for this target (get() != nullptr) and the CPU has
// what it needs. Weakest first within each family; the dispatcher picks the last runnable entry that
// prefers this CPU (a set that runs but is slower there, e.g. 512-bit kernels on a CPU that splits them,
// stays selectable by name). A new set is one line here.
const KernelSet* scalar_set() { return &vecdot::scalar_kernels(); }

struct SetEntry {
  const char* name;
  const char* conv;  // the towers' conv set that goes with it (kernels/conv.h): the registers it computes with
  int base;  // index of the set it overlays (-1: none)
  const KernelSet* (*get)();
  bool (*runs_on)(const CpuFeatures&);
  bool (*prefers)(const CpuFeatures&) = [](const CpuFeatures&) { return true; };
};

bool avx512vnni(const CpuFeatures& f) { return f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni; }

constexpr SetEntry kSets[] = {
    {"scalar", "scalar", -1, scalar_set, [](const CpuFeatures&) { return true; }},
    {"avx2+fma+f16c", "avx2+fma+f16c", 0, vecdot::avx2_kernels, [](const CpuFeatures& f) { return f.avx2 && f.fma && f.f16c; }},
    {"avx512vnni", "avx512f", 1, vecdot::avx512_kernels, avx512vnni, [](const CpuFeatures& f) { return !f.avx512_split; }},
    // Zen 4 runs a 512-bit operation as two 256-bit halves: its towers keep the ymm conv set.
    {"avx512vnni-256", "avx2+fma+f16c", 1, vecdot::avx512_256_kernels, avx512vnni,
     [](const CpuFeatures& f) { return f.avx512_split; }},
    {"avx512vnni+amx", "avx512f", 2, vecdot::amx_kernels, [](const CpuFeatures& f) { return avx512vnni(f) && f.amx_int8; }},
    {"avx-vnni", "avx2+fma+f16c", 1, vecdot::avxvnni_kernels, [](const CpuFeatures& f) { return f.avx_vnni; },
     [](const CpuFeatures& f) { return !avx512vnni(f); }},
    {"neon", "neon", 0, vecdot::neon_kernels, [](const CpuFeatures& f) { return f.neon; }},
    {"neon+dotprod", "neon", 6, vecdot::neon_dotprod_kernels, [](const CpuFeatures& f) { return f.neon && f.neon_dotprod; }},
    {"neon+i8mm", "neon", 7, vecdot::neon_i8mm_kernels,
     [](const CpuFeatures& f) { return f.neon && f.neon_dotprod && f.neon_i8mm; }},
};
constexpr int kNumSets = int(sizeof(kSets) / sizeof(kSets[0]));

bool runnable(int i) {
  for (; i >= 0; i = kSets[i].base)
    if (!kSets[i].get() || !kSets[i].runs_on(cpu_features())) return false;
  return true;
}

// Every runnable set, built once (ok[i] false where the build or the CPU cannot run set i).
struct Built {
  Dispatch sets[kNumSets];
  bool ok[kNumSets] = {};
};

const Built& built() {
  static const Built b = [] {
    Built r;
    for (int i = 0; i < kNumSets; ++i) {
      if (!runnable(i)) continue;
      r.ok[i] = true;
      r.sets[i].isa = kSets[i].name;
      int chain[kNumSets], depth = 0;
      for (int j = i; j >= 0; j = kSets[j].base) chain[depth++] = j;
      while (depth > 0) overlay(r.sets[i].k, *kSets[chain[--depth]].get());
    }
    return r;
  }();
  return b;
}

int find_set(const char* name) {
  if (!name) return -1;
  for (int i = 0; i < kNumSets; ++i)
    if (built().ok[i] && std::strcmp(kSets[i].name, name) == 0) return i;
  return -1;
}

int best_set() {
  int best = 0;
  for (int i = 0; i < kNumSets; ++i)
    if (built().ok[i] && kSets[i].prefers(cpu_features())) best = i;
  return best;
}

// The set in use: G3N_VEC_DOT=NAME (read once, at first use; an unknown or unrunnable name is reported
// on stderr and ignored), else the best one; vec_dot_use_set switches it (tests, bench).
int start_set() {
  static const int start = [] {
    int i = best_set();
    if (const char* env = std::getenv("G3N_VEC_DOT"); env && *env) {
      if (const int e = find_set(env); e >= 0) i = e;
      else std::fprintf(stderr, "g3n: G3N_VEC_DOT=%s is not a kernel set this CPU runs; using %s\n", env, kSets[i].name);
    }
    return i;
  }();
  return start;
}

std::atomic<const Dispatch*>& current() {
  static std::atomic<const Dispatch*> cur{&built().sets[start_set()]};
  return cur;
}

const Dispatch& dispatch() { return *current().load(std::memory_order_acquire); }

[[noreturn]] void unsupported(GgmlType t) {
  throw std::invalid_argument("vec_dot: no kernel for weight type " +
                              std::string(ggml_type_traits(t).name));
}

int checked_index(const KernelSet& k, GgmlType t) {
  const int i = vecdot::type_index(t);
  if (i < 0 || !k.dot[i]) unsupported(t);
  return i;
}

void check_length(GgmlType t, int64_t n) {
  const uint32_t bs = ggml_type_traits(t).block_size;
  if (n < 0 || n % bs != 0)
    throw std::invalid_argument("vec_dot: length " + std::to_string(n) + " is not a multiple of the " +
                                std::string(ggml_type_traits(t).name) + " block size");
}

GgmlType act_type(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: return GgmlType::F32;
    case GgmlType::Q4_0: case GgmlType::Q5_0: case GgmlType::Q8_0: return GgmlType::Q8_0;
    case GgmlType::Q4_1: case GgmlType::Q5_1: return GgmlType::Q8_1;
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K:
    case GgmlType::Q6_K: return GgmlType::Q8_K;
    default: unsupported(t);
  }
}

uint64_t act_bytes(GgmlType t, int64_t n) {
  check_length(t, n);
  const GgmlType at = act_type(t);
  if (at == GgmlType::F32) return uint64_t(n) * sizeof(float);
  const auto bytes = ggml_row_bytes(at, uint64_t(n));
  if (!bytes) throw std::invalid_argument("act_row_bytes: bad length " + std::to_string(n));
  return *bytes;
}

void quantize_with(const KernelSet& k, GgmlType t, const float* x, void* dst, int64_t n) {
  const int i = checked_index(k, t);
  check_length(act_type(t), n);
  check_length(t, n);
  k.quant_act[i](x, dst, n);
}

float dot_with(const KernelSet& k, GgmlType t, const void* w, const void* a, int64_t n) {
  const int i = checked_index(k, t);
  check_length(t, n);
  return k.dot[i](w, a, n);
}

}  // namespace

GgmlType vec_dot_act_type(GgmlType t) { return act_type(t); }
GgmlType vec_dot_act_type_ref(GgmlType t) { return act_type(t); }
bool vec_dot_supported(GgmlType t) {
  const int i = vecdot::type_index(t);
  return i >= 0 && vecdot::scalar_kernels().dot[i] != nullptr;
}
uint64_t act_row_bytes(GgmlType t, int64_t n) { return act_bytes(t, n); }
uint64_t act_row_bytes_ref(GgmlType t, int64_t n) { return act_bytes(t, n); }

void quantize_act_row(GgmlType t, const float* x, void* dst, int64_t n) {
  quantize_with(dispatch().k, t, x, dst, n);
}
void quantize_act_row_ref(GgmlType t, const float* x, void* dst, int64_t n) {
  quantize_with(vecdot::scalar_kernels(), t, x, dst, n);
}
float vec_dot(GgmlType t, const void* w, const void* a, int64_t n) {
  return dot_with(dispatch().k, t, w, a, n);
}
float vec_dot_ref(GgmlType t, const void* w, const void* a, int64_t n) {
  return dot_with(vecdot::scalar_kernels(), t, w, a, n);
}

namespace {

void tile_with(const KernelSet& k, GgmlType t, const void* w, uint64_t ws, int64_t nr, const void* a,
               uint64_t as, int64_t nt, int64_t n, float* out, int64_t ldo) {
  const int i = checked_index(k, t);
  check_length(t, n);
  if (nr <= 0 || nt <= 0) return;
  if (k.tile[i]) return k.tile[i](w, ws, nr, a, as, nt, n, out, ldo);
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  for (int64_t tt = 0; tt < nt; ++tt)
    for (int64_t r = 0; r < nr; ++r) out[tt * ldo + r] = k.dot[i](wb + r * ws, ab + tt * as, n);
}

}  // namespace

void vec_dot_tile(GgmlType t, const void* w, uint64_t ws, int64_t nr, const void* a, uint64_t as, int64_t nt,
                  int64_t n, float* out, int64_t ldo) {
  tile_with(dispatch().k, t, w, ws, nr, a, as, nt, n, out, ldo);
}
void vec_dot_tile_ref(GgmlType t, const void* w, uint64_t ws, int64_t nr, const void* a, uint64_t as,
                      int64_t nt, int64_t n, float* out, int64_t ldo) {
  tile_with(vecdot::scalar_kernels(), t, w, ws, nr, a, as, nt, n, out, ldo);
}
VecDotTileFn vec_dot_tile_fn(GgmlType t) {
  const int i = vecdot::type_index(t);
  return i < 0 ? nullptr : dispatch().k.tile[i];
}

VecDotMaskedTileFn vec_dot_masked_tile_fn(GgmlType t) {
  const int i = vecdot::type_index(t);
  return i < 0 ? nullptr : dispatch().k.masked_tile[i];
}

VecDotRowsFn vec_dot_rows_fn(GgmlType t) {
  const int i = vecdot::type_index(t);
  return i < 0 ? nullptr : dispatch().k.rows[i];
}

VecDotPackedFn vec_dot_packed_fn(GgmlType t) {
  const int i = vecdot::type_index(t);
  return i < 0 ? nullptr : dispatch().k.packed[i];
}

int64_t vec_dot_tile_tokens(GgmlType t) {
  const int i = vecdot::type_index(t);
  return i < 0 ? 0 : dispatch().k.tile_tokens[i];
}

bool vec_dot_packs_q6k_for_decode() { return dispatch().k.pack_q6k_for_decode; }

int64_t vec_dot_packed_tokens(GgmlType t) {
  const int i = vecdot::type_index(t);
  return i < 0 ? 0 : dispatch().k.packed_tokens[i];
}

VecDotFn vec_dot_fn(GgmlType t) {
  const int i = vecdot::type_index(t);
  return i < 0 ? nullptr : dispatch().k.dot[i];
}
QuantizeActFn quantize_act_fn(GgmlType t) {
  const int i = vecdot::type_index(t);
  return i < 0 ? nullptr : dispatch().k.quant_act[i];
}

float dot_f16_f32(const uint16_t* a, const float* b, int64_t n) { return dispatch().k.dot_f16_f32(a, b, n); }
void axpy_f16(float alpha, const uint16_t* x, float* y, int64_t n) { dispatch().k.axpy_f16(alpha, x, y, n); }
float dot_f32_simd(const float* a, const float* b, int64_t n) { return dispatch().k.dot_f32(a, b, n); }
void axpy_f32(float alpha, const float* x, float* y, int64_t n) { dispatch().k.axpy_f32(alpha, x, y, n); }
float dot_f16_f32_ref(const uint16_t* a, const float* b, int64_t n) {
  return vecdot::scalar_kernels().dot_f16_f32(a, b, n);
}
void axpy_f16_ref(float alpha, const uint16_t* x, float* y, int64_t n) {
  vecdot::scalar_kernels().axpy_f16(alpha, x, y, n);
}
float dot_f32_ref(const float* a, const float* b, int64_t n) { return vecdot::scalar_kernels().dot_f32(a, b, n); }
void axpy_f32_ref(float alpha, const float* x, float* y, int64_t n) {
  vecdot::scalar_kernels().axpy_f32(alpha, x, y, n);
}

void gelu_tanh_mul(float* g, const float* u, int64_t n) { dispatch().k.gelu_mul(g, u, n); }
void soft_cap(float* x, int64_t n, float cap) { dispatch().k.soft_cap(x, n, cap); }
void gelu_tanh_mul_ref(float* g, const float* u, int64_t n) { vecdot::scalar_kernels().gelu_mul(g, u, n); }
void soft_cap_ref(float* x, int64_t n, float cap) { vecdot::scalar_kernels().soft_cap(x, n, cap); }

void attn_scores_f16(const uint16_t* k, int64_t stride, int64_t n, const float* q, int G, int64_t d, float* s, int64_t ld) {
  dispatch().k.attn_scores_f16(k, stride, n, q, G, d, s, ld);
}
void attn_scores_f32(const float* k, int64_t stride, int64_t n, const float* q, int G, int64_t d, float* s, int64_t ld) {
  dispatch().k.attn_scores_f32(k, stride, n, q, G, d, s, ld);
}
void attn_values_f16(const uint16_t* v, int64_t stride, int64_t n, const float* p, int64_t ld, int G, int64_t d, float* o) {
  dispatch().k.attn_values_f16(v, stride, n, p, ld, G, d, o);
}
void attn_values_f32(const float* v, int64_t stride, int64_t n, const float* p, int64_t ld, int G, int64_t d, float* o) {
  dispatch().k.attn_values_f32(v, stride, n, p, ld, G, d, o);
}
void attn_scores_f16_ref(const uint16_t* k, int64_t stride, int64_t n, const float* q, int G, int64_t d, float* s, int64_t ld) {
  vecdot::scalar_kernels().attn_scores_f16(k, stride, n, q, G, d, s, ld);
}
void attn_scores_f32_ref(const float* k, int64_t stride, int64_t n, const float* q, int G, int64_t d, float* s, int64_t ld) {
  vecdot::scalar_kernels().attn_scores_f32(k, stride, n, q, G, d, s, ld);
}
void attn_values_f16_ref(const uint16_t* v, int64_t stride, int64_t n, const float* p, int64_t ld, int G, int64_t d, float* o) {
  vecdot::scalar_kernels().attn_values_f16(v, stride, n, p, ld, G, d, o);
}
void attn_values_f32_ref(const float* v, int64_t stride, int64_t n, const float* p, int64_t ld, int G, int64_t d, float* o) {
  vecdot::scalar_kernels().attn_values_f32(v, stride, n, p, ld, G, d, o);
}

const char* vec_dot_isa() { return dispatch().isa; }

std::vector<std::string> vec_dot_sets() {
  std::vector<std::string> names;
  for (int i = 0; i < kNumSets; ++i)
    if (built().ok[i]) names.emplace_back(kSets[i].name);
  return names;
}

std::string vec_dot_best_set() { return kSets[best_set()].name; }

std::string vec_dot_start_set() { return kSets[start_set()].name; }

std::string vec_dot_conv_set(const std::string& name) {
  for (const SetEntry& e : kSets)
    if (name == e.name) return e.conv;
  return "";
}

bool vec_dot_use_set(const std::string& name) {
  const int i = find_set(name.c_str());
  if (i < 0) return false;
  current().store(&built().sets[i], std::memory_order_release);
  return true;
}

}  // namespace g3n
