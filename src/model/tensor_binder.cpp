#include "model/tensor_binder.h"

#include <stdexcept>
#include <utility>

#include "gguf/gguf.h"
#include "quant/quantize.h"

namespace g3n {

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

TensorBinder::TensorBinder(const GgufFile& f, std::string prefix, bool quantized_small)
    : f_(f), prefix_(std::move(prefix)), quantized_small_(quantized_small) {}

void TensorBinder::fail(const std::string& msg) const { throw std::runtime_error(prefix_ + ": " + msg); }

bool TensorBinder::has(const std::string& name) const { return f_.find_tensor(name) != nullptr; }

const GgufTensorInfo& TensorBinder::get(const std::string& name, TensorKind kind) const {
  const GgufTensorInfo* t = f_.find_tensor(name);
  if (!t) fail("missing tensor '" + name + "'");
  const bool wide = kind == TensorKind::Matrix || quantized_small_;
  const bool ok = t->type == GgmlType::F32 || t->type == GgmlType::F16 || (wide && (t->type == GgmlType::BF16 || t->type == GgmlType::Q8_0));
  if (!ok)
    fail("tensor '" + name + "' has type " + std::string(ggml_type_traits(t->type).name) +
         (wide ? " (supported: F32, F16, BF16, Q8_0)" : " (supported: F32, F16)"));
  return *t;
}

std::vector<int64_t> TensorBinder::shape(const std::string& name, TensorKind kind) const {
  std::vector<int64_t> ne = get(name, kind).ne;
  if (ne.size() > 4) fail("tensor '" + name + "' has " + std::to_string(ne.size()) + " dims");
  while (ne.size() < 4) ne.push_back(1);
  for (int64_t n : ne)
    if (n <= 0) fail("tensor '" + name + "' has shape " + shape_str(ne));
  return ne;
}

void TensorBinder::expect(const std::string& name, std::vector<int64_t> want, TensorKind kind) const {
  const std::vector<int64_t> have = shape(name, kind);
  while (want.size() < 4) want.push_back(1);
  if (have != want) fail("tensor '" + name + "' has shape " + shape_str(have) + ", expected " + shape_str(want));
}

std::vector<float> TensorBinder::decode(const std::string& name) const {
  const GgufTensorInfo& t = get(name);
  const int64_t row = shape(name)[0];
  const auto rb = ggml_row_bytes(t.type, static_cast<uint64_t>(row));
  if (!rb) fail("tensor '" + name + "': a row of " + std::to_string(row) + " is not a whole number of blocks");
  const int64_t rows = t.n_elements() / row;
  if (*rb * static_cast<uint64_t>(rows) != t.nbytes) fail("tensor '" + name + "': data size does not match its shape");
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  const uint8_t* src = f_.tensor_data(t);
  for (int64_t r = 0; r < rows; ++r) dequantize_row(t.type, src + r * *rb, out.data() + r * row, row);
  return out;
}

std::vector<float> TensorBinder::vec(const std::string& name, int64_t n, bool allow_4d) const {
  const std::vector<int64_t> ne = shape(name);
  const bool flat = ne == std::vector<int64_t>{n, 1, 1, 1};
  const bool conv = allow_4d && ne == std::vector<int64_t>{1, 1, n, 1};
  if (!flat && !conv)
    fail("tensor '" + name + "' has shape " + shape_str(ne) + ", expected [" + std::to_string(n) + "]" +
         (allow_4d ? " or [1, 1, " + std::to_string(n) + ", 1]" : ""));
  return decode(name);
}

WeightMatrix TensorBinder::matrix(const std::string& name, int64_t in, int64_t out) const {
  expect(name, {in, out}, TensorKind::Matrix);
  return rows_of(name, in, out);
}

WeightMatrix TensorBinder::rows_of(const std::string& name, int64_t in, int64_t out) const {
  const GgufTensorInfo& t = get(name, TensorKind::Matrix);
  const auto rb = ggml_row_bytes(t.type, static_cast<uint64_t>(in));
  // A 1x1 conv's Q8_0 blocks would run along ne[0] = 1: such a file cannot be written, but check anyway.
  if (!rb || *rb * static_cast<uint64_t>(out) != t.nbytes)
    fail("tensor '" + name + "': rows of " + std::to_string(in) + " are not whole " + std::string(ggml_type_traits(t.type).name) + " blocks");
  WeightMatrix w;
  w.type = t.type;
  w.n_in = in;
  w.n_out = out;
  w.row_bytes = *rb;
  w.data = f_.tensor_data(t);
  return w;
}

int64_t TensorBinder::required_int(const std::string& key) const {
  const auto v = f_.get_int(key);
  if (!v) fail("missing key '" + key + "'");
  return *v;
}

}  // namespace g3n
