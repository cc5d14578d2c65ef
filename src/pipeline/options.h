// Options a caller gives by name (precision, weight type, prediction) and the checks of LoadOptions and
// GenerateParams: everything that can be refused before a model loads. No kernels here, so the request parsers
// that use it (a1111) also build into the fuzz targets (fuzz/CMakeLists.txt).
#pragma once

#include <string>

#include "backend/context.h"
#include "core/error.h"

namespace nb {

Result<ops::Precision> parse_precision(const std::string& name);        // auto, fp32, bf16
Result<ops::WeightStorage> parse_weight_type(const std::string& name);  // auto, f32, q8_0

}  // namespace nb
