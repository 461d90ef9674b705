// Tensors of a projector GGUF (the vision and audio towers) bound by name, with every check a hostile
// file needs before its bytes are used: the tensor exists, its type is one the loader takes, its shape
// is what the geometry says, its data holds whole rows. Errors name the tensor and what was expected,
// behind the loader's own prefix ("mmproj: ...", "audio mmproj: ...").
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/matmul.h"

namespace g3n {

class GgufFile;
struct GgufTensorInfo;

// "[a, b, c]".
std::string shape_str(const std::vector<int64_t>& ne);

// Small: vectors, norms and conv kernels (decoded to f32 at load); Matrix: weights read in place by the
// GEMMs.
enum class TensorKind { Small, Matrix };

class TensorBinder {
 public:
  // prefix: the loader's name in errors. Matrices may be F32, F16, BF16 or Q8_0; small tensors F32 or F16,
  // or all four when quantized_small (the vision fixture's rules allow it).
  TensorBinder(const GgufFile& f, std::string prefix, bool quantized_small);

  [[noreturn]] void fail(const std::string& msg) const;
  const GgufFile& file() const { return f_; }

  bool has(const std::string& name) const;
  // The tensor, after the existence and type checks.
  const GgufTensorInfo& get(const std::string& name, TensorKind kind = TensorKind::Small) const;
  // Its shape padded with trailing 1s to 4 dims; every entry positive.
  std::vector<int64_t> shape(const std::string& name, TensorKind kind = TensorKind::Small) const;
  // Fails unless the shape is `want` (padded with trailing 1s).
  void expect(const std::string& name, std::vector<int64_t> want, TensorKind kind = TensorKind::Small) const;
  // The whole tensor decoded to f32, in file order.
  std::vector<float> decode(const std::string& name) const;
  // A vector of n values: ne [n], or also [1, 1, n, 1] when allow_4d (conv-style layer scales).
  std::vector<float> vec(const std::string& name, int64_t n, bool allow_4d = false) const;
  // A Linear weight ne [in, out], read in place.
  WeightMatrix matrix(const std::string& name, int64_t in, int64_t out) const;
  // `out` rows of `in` values, read in place (the caller checked the shape).
  WeightMatrix rows_of(const std::string& name, int64_t in, int64_t out) const;
  // An integer key that must be present.
  int64_t required_int(const std::string& key) const;

 private:
  const GgufFile& f_;
  std::string prefix_;
  bool quantized_small_;
};

}  // namespace g3n
