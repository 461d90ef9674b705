// GGUF reader: maps the file read-only and validates every count, length and offset against the bytes
// that are actually there before using it. Tensor data is never touched at load, so a multi-GB file
// costs only its metadata in resident memory.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <unordered_map>

#include "base/file.h"
#include "gguf/gguf.h"
#include "gguf/gguf_format.h"

namespace g3n {

using namespace gguf_detail;

namespace {

// Everything the parser fills in; GgufFile::Impl adds ownership of the mapping.
struct State {
  const uint8_t* base = nullptr;
  uint64_t size = 0;
  uint32_t version = 0;
  uint64_t alignment = kDefaultAlignment;
  uint64_t data_offset = 0;
  std::vector<GgufKV> kvs;
  std::unordered_map<std::string_view, size_t> kv_index;  // views into kvs[i].key (heap-stable)
  std::vector<GgufTensorInfo> tensors;
  std::unordered_map<std::string_view, size_t> tensor_index;
};

// Bounds-checked little-endian reads over [data, data + size).
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size) : data_(data), size_(size) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      throw GgufError(cat("file truncated: ", what, " needs ", n, " bytes at offset ", pos_, " but only ",
                          remaining(), " remain (file size ", size_, ")"));
  }
  uint8_t u8(const char* what) {
    need(1, what);
    return data_[pos_++];
  }
  uint16_t u16(const char* what) { return static_cast<uint16_t>(le(2, what)); }
  uint32_t u32(const char* what) { return static_cast<uint32_t>(le(4, what)); }
  uint64_t u64(const char* what) { return le(8, what); }

  std::string str(const char* what) { return std::string(str_view(what)); }
  // The same string as a view into the buffer.
  std::string_view str_view(const char* what) {
    const uint64_t start = pos_;
    const uint64_t n = u64(what);
    if (n > remaining())
      throw GgufError(cat(what, " at offset ", start, " claims length ", n, " but only ", remaining(),
                          " bytes remain (file size ", size_, ")"));
    const std::string_view s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += n;
    return s;
  }

 private:
  // Byte-wise assembly is endian-independent; compilers turn it into a single load.
  uint64_t le(int n, const char* what) {
    need(static_cast<uint64_t>(n), what);
    uint64_t v = 0;
    for (int k = 0; k < n; ++k) v |= static_cast<uint64_t>(data_[pos_ + k]) << (8 * k);
    pos_ += static_cast<uint64_t>(n);
    return v;
  }

  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

std::string printable(std::string_view s, size_t max = 64) {
  std::string out;
  for (size_t k = 0; k < s.size() && k < max; ++k) {
    const unsigned char c = static_cast<unsigned char>(s[k]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

class Parser {
 public:
  explicit Parser(State& f) : f_(f), c_(f.base, f.size) {}

  void run() {
    header();
    metadata();
    alignment();
    tensor_infos();
    tensor_data();
  }

 private:
  void header() {
    if (f_.size < 4) throw GgufError(cat("not a GGUF file: only ", f_.size, " bytes"));
    const uint32_t magic = c_.u32("magic");
    if (magic != kMagic) {
      const std::string_view m(reinterpret_cast<const char*>(f_.base), 4);
      throw GgufError(cat("not a GGUF file: bad magic '", printable(m), "' (expected 'GGUF')"));
    }
    f_.version = c_.u32("version");
    if (f_.version == 1) throw GgufError("GGUF version 1 is not supported (only versions 2 and 3)");
    if (f_.version == 0x02000000u || f_.version == 0x03000000u)
      throw GgufError("big-endian GGUF files are not supported");
    if (f_.version != 2 && f_.version != 3)
      throw GgufError(cat("unsupported GGUF version ", f_.version, " (only versions 2 and 3)"));
    n_tensors_ = c_.u64("tensor count");
    n_kv_ = c_.u64("metadata key/value count");
    // Reject counts that the remaining bytes cannot possibly hold before reserving anything.
    const uint64_t kv_min = 8 + 4 + 1;           // key length, value type, smallest value
    const uint64_t ti_min = 8 + 4 + 8 + 4 + 8;   // name length, n_dims, one dim, type, offset
    if (n_kv_ > c_.remaining() / kv_min)
      throw GgufError(cat("bad metadata key/value count ", n_kv_, ": the remaining ", c_.remaining(),
                          " bytes can hold at most ", c_.remaining() / kv_min));
    if (n_kv_ > kMaxMetadataKeys)
      throw GgufError(cat("metadata key/value count ", n_kv_, " is over the limit of ", kMaxMetadataKeys));
    if (n_tensors_ > c_.remaining() / ti_min)
      throw GgufError(cat("bad tensor count ", n_tensors_, ": the remaining ", c_.remaining(),
                          " bytes can hold at most ", c_.remaining() / ti_min, " tensor infos"));
  }

  void metadata() {
    f_.kvs.reserve(static_cast<size_t>(n_kv_));
    for (uint64_t i = 0; i < n_kv_; ++i) {
      std::string key;
      try {
        key = c_.str("metadata key");
        const uint32_t type = c_.u32("metadata value type");
        GgufKV kv;
        kv.value = value(type, 0);
        kv.key = std::move(key);
        f_.kvs.push_back(std::move(kv));
      } catch (const GgufError& e) {
        throw GgufError(cat("metadata key #", i, key.empty() ? "" : " '" + printable(key) + "'", ": ", e.what()));
      }
      const auto& k = f_.kvs.back().key;
      if (!f_.kv_index.emplace(k, f_.kvs.size() - 1).second)
        throw GgufError(cat("duplicate metadata key '", printable(k), "' (#", i, ")"));
    }
  }

  void count_value() {
    if (++n_values_ > kMaxMetadataValues)
      throw GgufError(cat("metadata holds more than ", kMaxMetadataValues, " values (limit)"));
  }

  GgufValue value(uint32_t type_id, int depth) {
    if (!is_known_value_type(type_id)) throw GgufError(cat("unknown value type ", type_id));
    count_value();
    GgufValue v;
    v.type = static_cast<GgufValueType>(type_id);
    switch (v.type) {
      case GgufValueType::UINT8: v.u = c_.u8("u8 value"); break;
      case GgufValueType::INT8: v.i = static_cast<int8_t>(c_.u8("i8 value")); break;
      case GgufValueType::UINT16: v.u = c_.u16("u16 value"); break;
      case GgufValueType::INT16: v.i = static_cast<int16_t>(c_.u16("i16 value")); break;
      case GgufValueType::UINT32: v.u = c_.u32("u32 value"); break;
      case GgufValueType::INT32: v.i = static_cast<int32_t>(c_.u32("i32 value")); break;
      case GgufValueType::UINT64: v.u = c_.u64("u64 value"); break;
      case GgufValueType::INT64: v.i = static_cast<int64_t>(c_.u64("i64 value")); break;
      case GgufValueType::FLOAT32: {
        const uint32_t bits = c_.u32("f32 value");
        float x;
        std::memcpy(&x, &bits, 4);
        v.f = x;
        break;
      }
      case GgufValueType::FLOAT64: {
        const uint64_t bits = c_.u64("f64 value");
        std::memcpy(&v.f, &bits, 8);
        break;
      }
      case GgufValueType::BOOL: {
        const uint8_t b = c_.u8("bool value");
        if (b > 1) throw GgufError(cat("invalid bool value ", int(b), " at offset ", c_.pos() - 1));
        v.u = b;
        break;
      }
      case GgufValueType::STRING: v.s = c_.str("string value"); break;
      case GgufValueType::ARRAY: array(v, depth); break;
    }
    return v;
  }

  void array(GgufValue& v, int depth) {
    if (depth >= kMaxArrayDepth) throw GgufError(cat("arrays nested deeper than ", kMaxArrayDepth, " levels"));
    const uint32_t et = c_.u32("array element type");
    if (!is_known_value_type(et)) throw GgufError(cat("unknown array element type ", et));
    const auto type = static_cast<GgufValueType>(et);
    v.array = GgufArray(type);
    const uint64_t n = c_.u64("array length");
    const uint64_t min = min_encoded_size(type);
    if (n > c_.remaining() / min)
      throw GgufError(cat("bad array length ", n, ": ", n, " ", gguf_value_type_name(type),
                          " elements need at least ", min, " bytes each but only ", c_.remaining(),
                          " bytes remain"));
    // Nested arrays count against their own cap before anything is reserved for them.
    if (type == GgufValueType::ARRAY && n > kMaxNestedArrays - n_nested_)
      throw GgufError(cat("metadata holds more than ", kMaxNestedArrays, " arrays inside arrays (limit)"));
    if (type == GgufValueType::ARRAY) n_nested_ += n;
    v.array.reserve(static_cast<size_t>(n));
    for (uint64_t k = 0; k < n; ++k) {
      try {
        if (type == GgufValueType::STRING) {
          count_value();
          v.array.push_string(c_.str_view("string value"));
        } else {
          v.array.push_back(value(et, depth + 1));  // a nested array moves in
        }
      } catch (const GgufError& e) {
        // Prefix the innermost index only once per level, so nested paths read "[3][0]".
        throw GgufError(cat("[", k, "]", e.what()[0] == '[' ? "" : ": ", e.what()));
      }
    }
    v.array.shrink_to_fit();
  }

  void alignment() {
    const auto it = f_.kv_index.find(kAlignmentKey);
    if (it == f_.kv_index.end()) return;
    const GgufValue& v = f_.kvs[it->second].value;
    if (v.type != GgufValueType::UINT32)
      throw GgufError(cat("'", kAlignmentKey, "' has type ", describe_type(v), " (must be u32)"));
    if (!is_pow2(v.u))
      throw GgufError(cat("'", kAlignmentKey, "' is ", v.u, " (must be a nonzero power of two)"));
    // Real files use 32 or 64; a huge alignment only serves to make rewriting the file explode.
    if (v.u > kMaxAlignment)
      throw GgufError(cat("'", kAlignmentKey, "' is ", v.u, " (at most ", kMaxAlignment, " is supported)"));
    f_.alignment = v.u;
  }

  void tensor_infos() {
    const uint64_t ti_min = 32;
    if (n_tensors_ > c_.remaining() / ti_min)
      throw GgufError(cat("bad tensor count ", n_tensors_, ": after the metadata only ", c_.remaining(),
                          " bytes remain, room for at most ", c_.remaining() / ti_min, " tensor infos"));
    f_.tensors.reserve(static_cast<size_t>(n_tensors_));
    for (uint64_t i = 0; i < n_tensors_; ++i) {
      GgufTensorInfo t;
      try {
        t.name = c_.str("tensor name");
        const uint32_t n_dims = c_.u32("tensor n_dims");
        if (n_dims == 0 || n_dims > kMaxDims)
          throw GgufError(cat("has ", n_dims, " dimensions (must be 1..", kMaxDims, ")"));
        for (uint32_t k = 0; k < n_dims; ++k) {
          const uint64_t d = c_.u64("tensor dimension");
          if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            throw GgufError(cat("dimension ", k, " is ", d, " (too large)"));
          t.ne.push_back(static_cast<int64_t>(d));
        }
        const uint32_t type_id = c_.u32("tensor type");
        if (!ggml_type_traits(type_id)) throw GgufError(cat("unknown or unsupported tensor type id ", type_id));
        t.type = static_cast<GgmlType>(type_id);
        t.offset = c_.u64("tensor offset");
        std::string err;
        const auto ts = tensor_size(t.type, t.ne, &err);
        if (!ts) throw GgufError(err);
        t.nbytes = ts->nbytes;
      } catch (const GgufError& e) {
        throw GgufError(t.name.empty() ? cat("tensor info #", i, ": ", e.what())
                                       : cat("tensor '", printable(t.name), "': ", e.what()));
      }
      f_.tensors.push_back(std::move(t));
      const auto& name = f_.tensors.back().name;
      if (!f_.tensor_index.emplace(name, f_.tensors.size() - 1).second)
        throw GgufError(cat("duplicate tensor name '", printable(name), "' (tensor info #", i, ")"));
    }
  }

  void tensor_data() {
    const uint64_t end = c_.pos();
    const uint64_t a = f_.alignment;
    if (end > std::numeric_limits<uint64_t>::max() - (a - 1)) throw GgufError("data section offset overflows");
    f_.data_offset = (end + a - 1) / a * a;
    for (const auto& t : f_.tensors) {
      if (t.offset % a != 0)
        throw GgufError(cat("tensor '", printable(t.name), "': offset ", t.offset,
                            " is not a multiple of the alignment ", a));
      const uint64_t max = std::numeric_limits<uint64_t>::max();
      if (t.offset > max - f_.data_offset || f_.data_offset + t.offset > max - t.nbytes ||
          f_.data_offset + t.offset + t.nbytes > f_.size)
        throw GgufError(cat("tensor '", printable(t.name), "': data [offset ", t.offset, ", ", t.nbytes,
                            " bytes] extends past end of file (data section at ", f_.data_offset, ", file size ",
                            f_.size, ")"));
    }
    // Real writers pack tensors back to back; overlapping data means a corrupt or crafted file (and would let
    // a small file describe unbounded amounts of tensor bytes).
    std::vector<const GgufTensorInfo*> by_offset;
    for (const auto& t : f_.tensors)
      if (t.nbytes > 0) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GgufTensorInfo* x, const GgufTensorInfo* y) { return x->offset < y->offset; });
    for (size_t k = 1; k < by_offset.size(); ++k) {
      const GgufTensorInfo& prev = *by_offset[k - 1];
      const GgufTensorInfo& t = *by_offset[k];
      if (t.offset < prev.offset + prev.nbytes)
        throw GgufError(cat("tensor '", printable(t.name), "': data [offset ", t.offset, ", ", t.nbytes,
                            " bytes] overlaps tensor '", printable(prev.name), "' [offset ", prev.offset, ", ",
                            prev.nbytes, " bytes]"));
    }
  }

  State& f_;
  Cursor c_;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  uint64_t n_values_ = 0;
  uint64_t n_nested_ = 0;  // arrays inside arrays (kMaxNestedArrays)
};

std::string errno_str(int e) { return std::strerror(e); }

}  // namespace

struct GgufFile::Impl : State {
  std::string path;
  Mapping map;  // the file's mapping (open); empty for from_memory
  UniqueFd fd;  // kept open for read_bytes (open); empty for from_memory
};

GgufFile::GgufFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

GgufFile GgufFile::from_memory(const uint8_t* data, size_t size) {
  auto impl = std::make_unique<Impl>();
  // A null buffer is only meaningful when empty; the parser then reports "only 0 bytes".
  static const uint8_t kEmpty = 0;
  impl->base = data ? data : &kEmpty;
  impl->size = data ? size : 0;
  try {
    Parser(*impl).run();
  } catch (const GgufError& e) {
    throw GgufError(cat("gguf: ", e.what()));
  }
  return GgufFile(std::move(impl));
}

GgufFile GgufFile::open(const std::string& path) {
  const auto fail = [&](const std::string& m) { return GgufError(cat("gguf: '", path, "': ", m)); };
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw fail("cannot open: " + errno_str(errno));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) throw fail("cannot stat: " + errno_str(errno));
  if (!S_ISREG(st.st_mode)) throw fail("not a regular file");
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->size = static_cast<uint64_t>(st.st_size);
  if (impl->size < 4) throw fail(cat("not a GGUF file: only ", impl->size, " bytes"));
  // MAP_SHARED + PROT_READ: pages come from the page cache on demand and are never copied; nothing of
  // the tensor data is read here. fd stays open beside it for read_bytes.
  void* m = mmap(nullptr, static_cast<size_t>(impl->size), PROT_READ, MAP_SHARED, fd.get(), 0);
  if (m == MAP_FAILED) throw fail("mmap failed: " + errno_str(errno));
  impl->map = Mapping(m, static_cast<size_t>(impl->size));
  impl->fd = std::move(fd);
  impl->base = static_cast<const uint8_t*>(m);
  try {
    Parser(*impl).run();
  } catch (const GgufError& err) {
    throw fail(err.what());
  }
  return GgufFile(std::move(impl));
}

uint32_t GgufFile::version() const { return impl_->version; }
uint64_t GgufFile::alignment() const { return impl_->alignment; }
const std::string& GgufFile::path() const { return impl_->path; }
uint64_t GgufFile::file_size() const { return impl_->size; }
uint64_t GgufFile::data_offset() const { return impl_->data_offset; }
const std::vector<GgufKV>& GgufFile::metadata() const { return impl_->kvs; }
const std::vector<GgufTensorInfo>& GgufFile::tensors() const { return impl_->tensors; }

const GgufValue* GgufFile::find(std::string_view key) const {
  const auto it = impl_->kv_index.find(key);
  return it == impl_->kv_index.end() ? nullptr : &impl_->kvs[it->second].value;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  const auto it = impl_->tensor_index.find(name);
  return it == impl_->tensor_index.end() ? nullptr : &impl_->tensors[it->second];
}

namespace {
GgufError wrong_type(std::string_view key, const GgufValue& v, const char* expected) {
  return GgufError(cat("gguf: key '", key, "' has type ", describe_type(v), ", expected ", expected));
}
}  // namespace

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_integer()) throw wrong_type(key, *v, "an integer");
  const auto r = v->as_int();
  if (!r) throw GgufError(cat("gguf: key '", key, "' value ", v->u, " does not fit in int64"));
  return r;
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_integer() && !v->is_float()) throw wrong_type(key, *v, "a number");
  return v->as_double();
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::BOOL) throw wrong_type(key, *v, "bool");
  return v->u != 0;
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::STRING) throw wrong_type(key, *v, "str");
  return v->s;
}

void GgufFile::drop_pages(const uint8_t* p, uint64_t n) const {
  if (!impl_->map || n == 0) return;
  const auto base = reinterpret_cast<uintptr_t>(impl_->map.data());
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t begin = reinterpret_cast<uintptr_t>(p), end = begin + n;
  if (begin < base || end > base + impl_->map.size()) return;
  begin = (begin + page - 1) / page * page;
  end = end / page * page;
  // A shared read-only file mapping: MADV_DONTNEED only unmaps; the bytes stay in the file.
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void GgufFile::read_bytes(const uint8_t* p, uint64_t n, void* dst) const {
  const uint8_t* base = impl_->base;
  if (p < base || n > impl_->size || static_cast<uint64_t>(p - base) > impl_->size - n)
    throw GgufError("gguf: read_bytes outside the file");
  if (impl_->fd) {
    auto* out = static_cast<uint8_t*>(dst);
    uint64_t done = 0;
    while (done < n) {
      const ssize_t r = pread(impl_->fd.get(), out + done, static_cast<size_t>(n - done), static_cast<off_t>(p - base + done));
      if (r > 0) done += static_cast<uint64_t>(r);
      else if (r < 0 && errno == EINTR) continue;
      else break;  // an error or a file shrunk under us: the mapping has the same bytes (or faults as it would)
    }
    if (done == n) return;
  }
  std::memcpy(dst, p, static_cast<size_t>(n));
}

const uint8_t* GgufFile::tensor_data(const GgufTensorInfo& t) const {
  // Re-checked so a GgufTensorInfo from another file (or edited by the caller) cannot reach past the map.
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  if (t.offset > max - impl_->data_offset || impl_->data_offset + t.offset > max - t.nbytes ||
      impl_->data_offset + t.offset + t.nbytes > impl_->size)
    throw GgufError(cat("gguf: tensor '", t.name, "': data range is outside this file"));
  return impl_->base + impl_->data_offset + t.offset;
}

}  // namespace g3n
