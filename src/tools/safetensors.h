// A strict reader of Hugging Face .safetensors files over a read-only mmap: an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then
// the data. Checkpoints are untrusted input: every length, offset, shape and dtype is validated against
// the file before use, and a bad file raises SafetensorsError naming the file and the tensor.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace g3n {

class SafetensorsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SafetensorsTensor {
  std::string name;
  std::string dtype;           // as written: "BF16", "F16", "F32", "I64", ...
  uint32_t elem_bytes = 0;     // bytes per element of dtype
  std::vector<int64_t> shape;  // PyTorch order (outermost first); empty for a scalar
  uint64_t begin = 0, end = 0; // byte range within the data section (validated)
  int64_t n_elements() const;
};

class SafetensorsFile {
 public:
  // Maps `path` read-only and validates the header (throws SafetensorsError; the message names the file).
  static SafetensorsFile open(const std::string& path);
  // Parses a caller-owned buffer that must outlive the object (the fuzzer, tests).
  static SafetensorsFile from_memory(const uint8_t* data, size_t size, const std::string& name = "<memory>");

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  const std::string& path() const;
  uint64_t file_size() const;
  // Tensors in data-offset order.
  const std::vector<SafetensorsTensor>& tensors() const;
  const SafetensorsTensor* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const;
  const uint8_t* data(const SafetensorsTensor& t) const;  // t.end - t.begin bytes
  // Pages of [p, p+n) that lie wholly inside leave the resident set (re-read from the file if touched).
  void drop_pages(const uint8_t* p, uint64_t n) const;

 private:
  struct Impl;
  explicit SafetensorsFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Bytes per element of a safetensors dtype name, or 0 for an unknown name.
uint32_t safetensors_dtype_bytes(std::string_view dtype);

}  // namespace g3n
