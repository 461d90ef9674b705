// GGUF v3 writer in the layout ggml/llama.cpp write and expect: header, key/values, tensor infos, zero
// padding to the alignment, then each tensor's data padded to the alignment (offsets packed in order).
#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "base/file.h"
#include "gguf/gguf.h"
#include "gguf/gguf_format.h"

namespace g3n {

using namespace gguf_detail;

struct GgufWriter::Tensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;
  TensorSize size;
  std::vector<uint8_t> data;  // eager tensors
  RowFiller fill;             // lazy tensors
};

namespace {

// Lazy tensors are produced at most this many bytes at a time (at least one row).
constexpr uint64_t kChunkBytes = uint64_t{64} << 20;

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void put(const void* p, size_t n) = 0;
  uint64_t written = 0;

  void bytes(const void* p, size_t n) {
    put(p, n);
    written += n;
  }
  void le(uint64_t v, int n) {
    uint8_t b[8];
    for (int k = 0; k < n; ++k) b[k] = static_cast<uint8_t>(v >> (8 * k));
    bytes(b, static_cast<size_t>(n));
  }
  void str(std::string_view s) {
    le(s.size(), 8);
    bytes(s.data(), s.size());
  }
  void zeros(uint64_t n) {
    static const uint8_t z[256] = {};
    while (n > 0) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof z));
      bytes(z, k);
      n -= k;
    }
  }
};

class VectorSink : public Sink {
 public:
  std::vector<uint8_t> out;
  void put(const void* p, size_t n) override {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
};

// Buffers the many small header writes; tensor data goes straight through.
class FileSink : public Sink {
 public:
  explicit FileSink(AtomicFileWriter& file) : file_(file) { buf_.reserve(kBuf); }
  void put(const void* p, size_t n) override {
    if (buf_.size() + n > kBuf) flush();
    if (n >= kBuf) {
      file_.write(p, n);
    } else {
      const auto* b = static_cast<const uint8_t*>(p);
      buf_.insert(buf_.end(), b, b + n);
    }
  }
  void flush() {
    file_.write(buf_.data(), buf_.size());
    buf_.clear();
  }

 private:
  static constexpr size_t kBuf = size_t{1} << 20;
  AtomicFileWriter& file_;
  std::vector<uint8_t> buf_;
};

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Rejects anything the reader would refuse, so every written file parses.
void check_value(const std::string& key, const GgufValue& v, int depth) {
  const auto bad = [&](const std::string& m) { return GgufError(cat("gguf writer: key '", key, "': ", m)); };
  if (!is_known_value_type(static_cast<uint32_t>(v.type)))
    throw bad(cat("unknown value type ", static_cast<uint32_t>(v.type)));
  if (const auto why = out_of_range(v)) throw bad(*why);
  if (v.type != GgufValueType::ARRAY) return;
  if (depth >= kMaxArrayDepth) throw bad(cat("arrays nested deeper than ", kMaxArrayDepth, " levels"));
  if (!is_known_value_type(static_cast<uint32_t>(v.elem_type())))
    throw bad(cat("unknown array element type ", static_cast<uint32_t>(v.elem_type())));
  // A GgufArray checked its numbers and element types as they went in; nested arrays hold values to check.
  if (v.elem_type() == GgufValueType::ARRAY)
    for (size_t k = 0; k < v.array.size(); ++k) check_value(key, v.array.array_at(k), depth + 1);
}

void write_value(Sink& s, const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::UINT8: case GgufValueType::BOOL: s.le(v.u, 1); break;
    case GgufValueType::INT8: s.le(static_cast<uint64_t>(v.i), 1); break;
    case GgufValueType::UINT16: s.le(v.u, 2); break;
    case GgufValueType::INT16: s.le(static_cast<uint64_t>(v.i), 2); break;
    case GgufValueType::UINT32: s.le(v.u, 4); break;
    case GgufValueType::INT32: s.le(static_cast<uint64_t>(v.i), 4); break;
    case GgufValueType::UINT64: s.le(v.u, 8); break;
    case GgufValueType::INT64: s.le(static_cast<uint64_t>(v.i), 8); break;
    case GgufValueType::FLOAT32: {
      const float x = static_cast<float>(v.f);
      uint32_t bits;
      std::memcpy(&bits, &x, 4);
      s.le(bits, 4);
      break;
    }
    case GgufValueType::FLOAT64: {
      uint64_t bits;
      std::memcpy(&bits, &v.f, 8);
      s.le(bits, 8);
      break;
    }
    case GgufValueType::STRING: s.str(v.s); break;
    case GgufValueType::ARRAY:
      s.le(static_cast<uint32_t>(v.elem_type()), 4);
      s.le(v.array.size(), 8);
      if (v.elem_type() == GgufValueType::STRING)
        for (size_t k = 0; k < v.array.size(); ++k) s.str(v.array.string_at(k));
      else if (v.elem_type() == GgufValueType::ARRAY)
        for (size_t k = 0; k < v.array.size(); ++k) write_value(s, v.array.array_at(k));
      else
        for (const GgufValue& e : v.array) write_value(s, e);
      break;
  }
}

GgufValue scalar(GgufValueType t) {
  GgufValue v;
  v.type = t;
  return v;
}

}  // namespace

GgufWriter::GgufWriter(uint64_t alignment) : alignment_(alignment) {
  if (!is_pow2(alignment) || alignment > 0x80000000u)
    throw GgufError(cat("gguf writer: alignment ", alignment, " must be a power of two that fits in u32"));
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  check_value(key, value, 0);
  if (key == kAlignmentKey) {
    // The key and the layout must agree, so setting it changes the alignment the data is written with.
    if (value.type != GgufValueType::UINT32 || !is_pow2(value.u))
      throw GgufError(cat("gguf writer: '", kAlignmentKey, "' must be a u32 nonzero power of two"));
    alignment_ = value.u;
  }
  for (auto& kv : kvs_) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  kvs_.push_back({key, std::move(value)});
}

void GgufWriter::set_u32(const std::string& key, uint32_t v) {
  GgufValue x = scalar(GgufValueType::UINT32);
  x.u = v;
  set(key, std::move(x));
}
void GgufWriter::set_i32(const std::string& key, int32_t v) {
  GgufValue x = scalar(GgufValueType::INT32);
  x.i = v;
  set(key, std::move(x));
}
void GgufWriter::set_f32(const std::string& key, float v) {
  GgufValue x = scalar(GgufValueType::FLOAT32);
  x.f = v;
  set(key, std::move(x));
}
void GgufWriter::set_bool(const std::string& key, bool v) {
  GgufValue x = scalar(GgufValueType::BOOL);
  x.u = v ? 1 : 0;
  set(key, std::move(x));
}
void GgufWriter::set_string(const std::string& key, const std::string& v) {
  GgufValue x = scalar(GgufValueType::STRING);
  x.s = v;
  set(key, std::move(x));
}
void GgufWriter::set_array_i32(const std::string& key, const std::vector<int32_t>& v) {
  set(key, gguf_array_of(GgufValueType::INT32, v, [](GgufValue& e, int32_t x) { e.i = x; }));
}
void GgufWriter::set_array_u32(const std::string& key, const std::vector<uint32_t>& v) {
  set(key, gguf_array_of(GgufValueType::UINT32, v, [](GgufValue& e, uint32_t x) { e.u = x; }));
}
void GgufWriter::set_array_f32(const std::string& key, const std::vector<float>& v) {
  set(key, gguf_array_of(GgufValueType::FLOAT32, v, [](GgufValue& e, float x) { e.f = x; }));
}
void GgufWriter::set_array_bool(const std::string& key, const std::vector<bool>& v) {
  set(key, gguf_array_of(GgufValueType::BOOL, v, [](GgufValue& e, bool x) { e.u = x ? 1 : 0; }));
}
void GgufWriter::set_array_string(const std::string& key, const std::vector<std::string>& v) {
  set(key, gguf_array_of(GgufValueType::STRING, v, [](GgufValue& e, const std::string& x) { e.s = x; }));
}

namespace {
TensorSize check_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& ne,
                        const std::unordered_set<std::string>& existing) {
  if (name.empty() || name.size() > kMaxTensorName)
    throw GgufError(cat("gguf writer: tensor name '", name, "' must be 1..", kMaxTensorName, " bytes"));
  if (existing.count(name)) throw GgufError(cat("gguf writer: duplicate tensor '", name, "'"));
  if (!ggml_type_traits(static_cast<uint32_t>(type)))
    throw GgufError(cat("gguf writer: tensor '", name, "': unknown type id ", static_cast<uint32_t>(type)));
  std::string err;
  const auto ts = tensor_size(type, ne, &err);
  if (!ts) throw GgufError(cat("gguf writer: tensor '", name, "': ", err));
  return *ts;
}
}  // namespace

void GgufWriter::add_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& ne,
                            std::vector<uint8_t> data) {
  std::unordered_set<std::string> names;
  for (const auto& t : tensors_) names.insert(t->name);
  auto t = std::make_shared<Tensor>();
  t->size = check_tensor(name, type, ne, names);
  if (data.size() != t->size.nbytes)
    throw GgufError(cat("gguf writer: tensor '", name, "': got ", data.size(), " bytes, shape ", shape_str(ne), " of ",
                        ggml_type_traits(type).name, " needs ", t->size.nbytes));
  t->name = name;
  t->type = type;
  t->ne = ne;
  t->data = std::move(data);
  tensors_.push_back(std::move(t));
}

void GgufWriter::add_tensor_lazy(const std::string& name, GgmlType type, const std::vector<int64_t>& ne,
                                 RowFiller fill) {
  std::unordered_set<std::string> names;
  for (const auto& t : tensors_) names.insert(t->name);
  auto t = std::make_shared<Tensor>();
  t->size = check_tensor(name, type, ne, names);
  if (!fill) throw GgufError(cat("gguf writer: tensor '", name, "': empty row filler"));
  t->name = name;
  t->type = type;
  t->ne = ne;
  t->fill = std::move(fill);
  tensors_.push_back(std::move(t));
}

namespace {
class ForwardSink : public Sink {
 public:
  explicit ForwardSink(const std::function<void(const void*, size_t)>& f) : f_(f) {}
  void put(const void* p, size_t n) override { f_(p, n); }

 private:
  const std::function<void(const void*, size_t)>& f_;
};
}  // namespace

void GgufWriter::serialize(const ByteSink& put) const {
  ForwardSink s(put);
  const uint64_t alignment = alignment_;
  const auto& kvs = kvs_;
  const auto& tensors = tensors_;
  const bool add_alignment =
      alignment != kDefaultAlignment &&
      std::none_of(kvs.begin(), kvs.end(), [](const GgufKV& kv) { return kv.key == kAlignmentKey; });
  s.le(kMagic, 4);
  s.le(kWriteVersion, 4);
  s.le(tensors.size(), 8);
  s.le(kvs.size() + (add_alignment ? 1 : 0), 8);
  for (const auto& kv : kvs) {
    s.str(kv.key);
    s.le(static_cast<uint32_t>(kv.value.type), 4);
    write_value(s, kv.value);
  }
  if (add_alignment) {
    s.str(kAlignmentKey);
    s.le(static_cast<uint32_t>(GgufValueType::UINT32), 4);
    s.le(alignment, 4);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    s.str(t->name);
    s.le(t->ne.size(), 4);
    for (int64_t d : t->ne) s.le(static_cast<uint64_t>(d), 8);
    s.le(static_cast<uint32_t>(t->type), 4);
    s.le(offset, 8);
    offset += align_up(t->size.nbytes, alignment);
  }
  s.zeros(align_up(s.written, alignment) - s.written);
  std::vector<uint8_t> chunk;
  for (const auto& t : tensors) {
    const TensorSize& ts = t->size;
    if (!t->fill) {
      s.bytes(t->data.data(), t->data.size());
    } else if (ts.nbytes > 0) {
      const int64_t per_chunk = static_cast<int64_t>(std::max<uint64_t>(1, kChunkBytes / ts.row_bytes));
      for (int64_t r = 0; r < ts.rows; r += per_chunk) {
        const int64_t n = std::min(per_chunk, ts.rows - r);
        chunk.assign(static_cast<size_t>(n) * ts.row_bytes, 0);
        t->fill(r, n, chunk.data());
        s.bytes(chunk.data(), chunk.size());
      }
    }
    s.zeros(align_up(ts.nbytes, alignment) - ts.nbytes);
  }
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  VectorSink s;
  serialize([&](const void* p, size_t n) { s.put(p, n); });
  return std::move(s.out);
}

void GgufWriter::write(const std::string& path) const {
  try {
    AtomicFileWriter file(path, 0666);  // 0666 less the umask, as for any file a program creates
    FileSink s(file);
    serialize([&](const void* p, size_t n) { s.put(p, n); });
    s.flush();
    file.commit();
  } catch (const IoError& e) {
    throw GgufError(cat("gguf: ", e.what()));
  }
}

}  // namespace g3n
