// Storage dtypes of checkpoint tensors and conversions to fp32 compute.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace nb {

enum class DType { f32, f16, bf16, f64, i64, i32, i16, i8, u8, boolean };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // safetensors spelling: "F32", "F16", ...
std::optional<DType> dtype_from_name(std::string_view s);

inline float bf16_to_f32(uint16_t h) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// Round to nearest even, NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
    // _Float16 is supported by GCC 12 on x86-64 and converts exactly (subnormals included).
    _Float16 v;
    std::memcpy(&v, &h, 2);
    return float(v);
}

inline uint16_t f32_to_f16(float f) {
    _Float16 v = _Float16(f);
    uint16_t h;
    std::memcpy(&h, &v, 2);
    return h;
}

// Converts n elements of `src` (stored as `t`) to fp32. Integer types are converted by value.
void convert_to_f32(DType t, const void* src, float* dst, size_t n);

}  // namespace nb
