// GGUF container: a validating reader over a read-only mmap, and a writer.
// Every count, length, offset and dimension is checked against the file size before use; a malformed
// file raises GgufError naming the problem and where it was found, never an out-of-bounds read.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "quant/ggml_type.h"

namespace g3n {

class GgufError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
std::string_view gguf_value_type_name(GgufValueType t);

struct GgufValue;

// An array's elements, stored compactly: numbers in one run of their declared width, strings in one byte blob
// with an end offset each, nested arrays as values. A vocabulary's 262,144 strings, scores and types take 8 MB
// of anonymous memory this way; as one GgufValue each they took 68 MB in every process that opened a model.
class GgufArray {
 public:
  GgufArray() = default;  // an empty array of u32
  explicit GgufArray(GgufValueType elem_type);
  // Every element checked as push_back checks it.
  GgufArray(GgufValueType elem_type, const std::vector<GgufValue>& elems);

  GgufValueType elem_type() const { return elem_type_; }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  GgufValue operator[](size_t k) const;           // element k decoded into a value (a copy); k < size()
  std::string_view string_at(size_t k) const;     // element k of a STRING array, without a copy
  const GgufValue& array_at(size_t k) const;      // element k of an ARRAY array

  void reserve(size_t n);
  // Appends v; GgufError when v is not of the element type or its number does not fit that type.
  void push_back(const GgufValue& v);
  void push_back(GgufValue&& v);                 // a nested array moves in
  void push_string(std::string_view s);          // a STRING array's next element
  void shrink_to_fit();                          // drops the spare capacity appending left

  // Iteration yields decoded copies (operator[]).
  class Iterator {
   public:
    Iterator(const GgufArray* a, size_t k) : a_(a), k_(k) {}
    GgufValue operator*() const;
    Iterator& operator++() { ++k_; return *this; }
    bool operator!=(const Iterator& o) const { return !(*this == o); }
    bool operator==(const Iterator& o) const { return a_ == o.a_ && k_ == o.k_; }
   private:
    const GgufArray* a_;
    size_t k_;
  };
  Iterator begin() const { return {this, 0}; }
  Iterator end() const { return {this, n_}; }

 private:
  GgufValueType elem_type_ = GgufValueType::UINT32;
  size_t n_ = 0;
  std::vector<uint8_t> bytes_;     // numbers at their width (little-endian), or the strings back to back
  std::vector<uint64_t> ends_;     // STRING: where each string ends in bytes_
  std::vector<GgufValue> nested_;  // ARRAY
};

// One metadata value. Scalars keep their declared type; an ARRAY holds its element type and elements (arrays
// may nest).
struct GgufValue {
  GgufValueType type = GgufValueType::UINT32;
  uint64_t u = 0;        // UINT8/16/32/64, BOOL (0/1)
  int64_t i = 0;         // INT8/16/32/64
  double f = 0;          // FLOAT32/64
  std::string s;         // STRING
  GgufArray array;       // ARRAY

  GgufValueType elem_type() const { return array.elem_type(); }
  bool is_integer() const;  // any integer type or BOOL
  bool is_float() const;    // FLOAT32/FLOAT64
  // Numeric conversions; nullopt if not numeric, or out of range for the target.
  std::optional<int64_t> as_int() const;
  std::optional<double> as_double() const;
};

inline GgufValue GgufArray::Iterator::operator*() const { return (*a_)[k_]; }

// An ARRAY of et with one element per x of xs, set(element, x) giving it its number or string (the writer's
// set_array_* and the converters build their arrays this way).
template <class T, class F>
GgufValue gguf_array_of(GgufValueType et, const std::vector<T>& xs, F set) {
  GgufValue a;
  a.type = GgufValueType::ARRAY;
  a.array = GgufArray(et);
  a.array.reserve(xs.size());
  GgufValue e;
  e.type = et;
  for (const auto& x : xs) {
    set(e, x);
    a.array.push_back(e);
  }
  return a;
}

struct GgufKV {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;  // ggml order: ne[0] is contiguous; 1..4 dims
  uint64_t offset = 0;      // from the start of the data section (validated: aligned, in bounds)
  uint64_t nbytes = 0;      // bytes of tensor data (validated: fits in the file)
  int64_t n_elements() const;
  int64_t rows() const;     // product of ne[1..]
};

// The layer of a "blk.N.*" tensor name, or -1 for a global tensor (or a number that is none).
int tensor_layer(std::string_view name);

class GgufFile {
 public:
  // Maps the file read-only (MAP_SHARED, never copied) and validates header, metadata and tensor infos.
  static GgufFile open(const std::string& path);
  // Parses a caller-owned buffer that must outlive the GgufFile (used by the fuzzer and tests).
  static GgufFile from_memory(const uint8_t* data, size_t size);

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  uint32_t version() const;
  uint64_t alignment() const;
  const std::string& path() const;  // empty for from_memory
  uint64_t file_size() const;
  uint64_t data_offset() const;     // file offset of the (aligned) data section; tensor offsets are relative to it

  const std::vector<GgufKV>& metadata() const;
  const GgufValue* find(std::string_view key) const;
  // Typed lookups: nullopt when the key is absent; GgufError when present with an unusable type.
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;   // accepts any numeric type
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const;
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // Pointer to the tensor's bytes inside the mapping (nbytes long).
  const uint8_t* tensor_data(const GgufTensorInfo& t) const;
  // Hint that [p, p+n) inside the mapping will not be read again soon: the whole pages in it leave this
  // process's resident set (they are re-read from the file if touched). No effect on from_memory files.
  void drop_pages(const uint8_t* p, uint64_t n) const;
  // Copies [p, p+n) of the mapping to dst WITHOUT mapping its pages into this process: pread() on the
  // file (a memcpy for from_memory files, or if the read fails). For tables read one row at a time (the
  // per-layer token embeddings): read through the mapping, every lookup leaves the pages around it
  // resident (the kernel maps whole folios and fault-around windows), and the resident set grows with
  // the number of distinct tokens seen. Thread-safe.
  void read_bytes(const uint8_t* p, uint64_t n, void* dst) const;

 private:
  struct Impl;
  explicit GgufFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Builds a GGUF v3 file. Keys and tensors are written in insertion order; data is aligned to
// `alignment` (general.alignment is written when it differs from 32).
class GgufWriter {
 public:
  explicit GgufWriter(uint64_t alignment = 32);
  void set(const std::string& key, GgufValue value);  // replaces an existing key in place
  // Convenience setters.
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_array_i32(const std::string& key, const std::vector<int32_t>& v);
  void set_array_u32(const std::string& key, const std::vector<uint32_t>& v);
  void set_array_f32(const std::string& key, const std::vector<float>& v);
  void set_array_bool(const std::string& key, const std::vector<bool>& v);
  void set_array_string(const std::string& key, const std::vector<std::string>& v);
  // Adds a tensor; data must hold exactly the tensor's byte size for its type and shape (checked).
  void add_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& ne,
                  std::vector<uint8_t> data);
  // Same, but the bytes are produced while writing, a run of rows at a time (multi-GB tensors never sit
  // in memory whole): fill(first_row, n_rows, dst) writes n_rows rows (rows = product of ne[1..]).
  using RowFiller = std::function<void(int64_t first_row, int64_t n_rows, uint8_t* dst)>;
  void add_tensor_lazy(const std::string& name, GgmlType type, const std::vector<int64_t>& ne,
                       RowFiller fill);
  // Writes to path via a temporary file in the same directory and an atomic rename.
  void write(const std::string& path) const;
  // Serializes to memory (small files, tests).
  std::vector<uint8_t> to_bytes() const;

 private:
  struct Tensor;
  // Streams the whole file through put (the file sink of write(), the vector of to_bytes()).
  using ByteSink = std::function<void(const void* data, size_t n)>;
  void serialize(const ByteSink& put) const;
  uint64_t alignment_;
  std::vector<GgufKV> kvs_;
  std::vector<std::shared_ptr<Tensor>> tensors_;
};

}  // namespace g3n
