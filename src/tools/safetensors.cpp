#include "tools/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/json_nesting.h"

namespace g3n {
namespace {

// The format's own limit (the reference implementation refuses larger headers).
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw SafetensorsError(file + ": " + what);
}

}  // namespace

int64_t SafetensorsTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

uint32_t safetensors_dtype_bytes(std::string_view d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

struct SafetensorsFile::Impl {
  std::string path;
  Mapping map;
  const uint8_t* base = nullptr;
  uint64_t size = 0;
  uint64_t data_start = 0;
  std::vector<SafetensorsTensor> tensors;
  std::map<std::string, size_t, std::less<>> index;  // name -> position in tensors
  std::map<std::string, std::string> metadata;

  void parse() {
    if (size < 8) fail(path, "truncated: " + std::to_string(size) + " bytes, no header length");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | base[i];
    if (n > kMaxHeaderBytes) fail(path, "header length " + std::to_string(n) + " exceeds 100 MiB");
    if (n > size - 8) fail(path, "truncated: header of " + std::to_string(n) + " bytes but the file has " + std::to_string(size));
    data_start = 8 + n;
    const uint64_t data_size = size - data_start;
    if (json_nesting_exceeds(std::string_view(reinterpret_cast<const char*>(base + 8), n)))
      fail(path, "header nested more than " + std::to_string(kMaxJsonNesting) + " deep");
    nlohmann::json h;
    try {
      h = nlohmann::json::parse(base + 8, base + 8 + n);
    } catch (const nlohmann::json::exception& e) {
      fail(path, std::string("header is not valid JSON: ") + e.what());
    }
    if (!h.is_object()) fail(path, "header is not a JSON object");
    for (auto it = h.begin(); it != h.end(); ++it) {
      const std::string& name = it.key();
      const auto& v = it.value();
      if (name == "__metadata__") {
        if (!v.is_object()) fail(path, "__metadata__ is not an object");
        for (auto m = v.begin(); m != v.end(); ++m) {
          if (!m.value().is_string()) fail(path, "__metadata__ value '" + m.key() + "' is not a string");
          metadata[m.key()] = m.value().get<std::string>();
        }
        continue;
      }
      const std::string where = "tensor '" + name + "'";
      if (name.empty()) fail(path, "a tensor has an empty name");
      if (!v.is_object()) fail(path, where + ": entry is not an object");
      const auto d = v.find("dtype"), s = v.find("shape"), o = v.find("data_offsets");
      if (d == v.end() || !d->is_string()) fail(path, where + ": no dtype string");
      if (s == v.end() || !s->is_array()) fail(path, where + ": no shape array");
      if (o == v.end() || !o->is_array() || o->size() != 2) fail(path, where + ": data_offsets is not [begin, end]");
      SafetensorsTensor t;
      t.name = name;
      t.dtype = d->get<std::string>();
      t.elem_bytes = safetensors_dtype_bytes(t.dtype);
      if (t.elem_bytes == 0) fail(path, where + ": unknown dtype '" + t.dtype + "'");
      if (s->size() > 8) fail(path, where + ": " + std::to_string(s->size()) + " dimensions");
      uint64_t count = 1;
      for (const auto& dim : *s) {
        if (!dim.is_number_unsigned()) fail(path, where + ": shape holds a non-integer or negative dimension");
        const uint64_t x = dim.get<uint64_t>();
        if (x > (uint64_t(1) << 48) || (x != 0 && count > (uint64_t(1) << 62) / x))
          fail(path, where + ": shape overflows");
        count *= x;
        t.shape.push_back(static_cast<int64_t>(x));
      }
      for (const auto& off : *o)
        if (!off.is_number_unsigned()) fail(path, where + ": data_offsets holds a non-integer or negative value");
      t.begin = (*o)[0].get<uint64_t>();
      t.end = (*o)[1].get<uint64_t>();
      if (t.begin > t.end) fail(path, where + ": data_offsets end before begin");
      if (t.end > data_size)
        fail(path, where + ": data [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + ") lies past the end of the data (" +
                       std::to_string(data_size) + " bytes; the file is truncated)");
      if (count > (uint64_t(1) << 62) / t.elem_bytes || count * t.elem_bytes != t.end - t.begin)
        fail(path, where + ": " + std::to_string(t.end - t.begin) + " bytes do not hold a " + t.dtype + " tensor of " +
                       std::to_string(count) + " elements");
      tensors.push_back(std::move(t));
    }
    std::sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    for (size_t i = 1; i < tensors.size(); ++i)
      if (tensors[i].begin < tensors[i - 1].end)
        fail(path, "tensors '" + tensors[i - 1].name + "' and '" + tensors[i].name + "' overlap");
    for (size_t i = 0; i < tensors.size(); ++i) index.emplace(tensors[i].name, i);
  }
};

SafetensorsFile::SafetensorsFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail(path, std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  impl->size = static_cast<uint64_t>(st.st_size);
  if (impl->size > 0) {
    void* p = ::mmap(nullptr, impl->size, PROT_READ, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) fail(path, std::string("cannot mmap: ") + std::strerror(errno));
    impl->map = Mapping(p, impl->size);
    impl->base = static_cast<const uint8_t*>(p);
  }
  impl->parse();
  return SafetensorsFile(std::move(impl));
}

SafetensorsFile SafetensorsFile::from_memory(const uint8_t* data, size_t size, const std::string& name) {
  auto impl = std::make_unique<Impl>();
  impl->path = name;
  impl->base = data;
  impl->size = size;
  impl->parse();
  return SafetensorsFile(std::move(impl));
}

const std::string& SafetensorsFile::path() const { return impl_->path; }
uint64_t SafetensorsFile::file_size() const { return impl_->size; }
const std::vector<SafetensorsTensor>& SafetensorsFile::tensors() const { return impl_->tensors; }
const std::map<std::string, std::string>& SafetensorsFile::metadata() const { return impl_->metadata; }

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  const auto it = impl_->index.find(name);
  return it == impl_->index.end() ? nullptr : &impl_->tensors[it->second];
}

const uint8_t* SafetensorsFile::data(const SafetensorsTensor& t) const { return impl_->base + impl_->data_start + t.begin; }

void SafetensorsFile::drop_pages(const uint8_t* p, uint64_t n) const {
  if (!impl_->map) return;
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const auto start = reinterpret_cast<uintptr_t>(p);
  const uintptr_t first = (start + page - 1) / page * page;
  const uintptr_t last = (start + n) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

}  // namespace g3n
