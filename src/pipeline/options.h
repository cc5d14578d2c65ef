// Options a caller gives by name (precision, weight type, prediction) and the checks of LoadOptions and
// GenerateParams: everything that can be refused before a model loads. No kernels here, so the request parsers
// that use it (a1111) also build into the fuzz targets (fuzz/CMakeLists.txt).
#pragma once

#include <string>

#include "backend/context.h"
#include "core/error.h"

namespace nb {

// --precision: fp32, bf16 (every op class, or those of Settings::bf16_ops), or automatic: bf16 for attention
// alone on CPUs with native bf16 (it moves the golden pipeline's decoded image by <= 2.8e-3 of max |ref|, within
// the 1e-2 a default may; linear and convolution layers each move it 1.0-1.5e-2), fp32 elsewhere.
enum class PrecisionMode { automatic, fp32, bf16 };
Result<PrecisionMode> parse_precision(const std::string& name);          // auto, fp32, bf16
Result<ops::WeightStorage> parse_weight_type(const std::string& name);  // auto, f32, q8_0

// The precision and bf16 op classes `mode` gives on this CPU (bf16_ops: the classes for bf16 mode).
inline void apply_precision(PrecisionMode mode, unsigned bf16_ops, backend::Settings& s) {
    s.precision = mode == PrecisionMode::fp32 || (mode == PrecisionMode::automatic && !ops::cpu_has_bf16())
                      ? ops::Precision::fp32
                      : ops::Precision::bf16;
    s.bf16_ops = mode == PrecisionMode::automatic ? unsigned(ops::kAttention) : bf16_ops;
}

}  // namespace nb
