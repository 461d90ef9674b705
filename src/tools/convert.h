// Rewrites a GGUF with its tensors re-encoded (e.g. F16 -> F32, F32 -> Q8_0), metadata kept as is.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace g3n {

// type_for(tensor) returns the output type for each tensor (return t.type to copy bytes unchanged).
// Tensors are decoded to f32 and re-quantized row by row, so memory stays bounded for multi-GB files.
// general.file_type is left unchanged unless file_type >= 0; set_kvs are set (added or replaced) after
// the source's metadata.
void convert_gguf(const GgufFile& in, const std::string& out_path,
                  const std::function<GgmlType(const GgufTensorInfo&)>& type_for, int file_type = -1,
                  const std::vector<GgufKV>& set_kvs = {});

}  // namespace g3n
