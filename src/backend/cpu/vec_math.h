// Vectorisable scalar math for the elementwise kernels: the loops that call these are written so GCC
// auto-vectorises them (no branches, no libm calls). exp via Cody-Waite range reduction and a degree-6
// polynomial, relative error ~2e-7 over the float range (checked against std::exp in the op tests).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace nb::cpu {

inline float fast_exp(float x) {
    x = x < -87.0f ? -87.0f : x;  // ternaries (not fmin/fmax) so GCC emits vminps/vmaxps and vectorises
    x = x > 88.0f ? 88.0f : x;
    float n = std::nearbyint(x * 1.44269504088896341f);
    float r = x - n * 0.693145751953125f;
    r = r - n * 1.428606765330187045e-06f;
    // e^r on [-ln2/2, ln2/2]
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = (int32_t(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &e, 4);
    return p * scale;
}

// A float as the element type of a packed compute buffer: itself, or its bf16 bits (round to nearest even).
template <class T>
inline T to_compute(float v) {
    if constexpr (sizeof(T) == sizeof(float))
        return v;
    else
        return f32_to_bf16(v);
}

inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

// erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7 exact, ~4e-7 in float), branch-free so GEGLU
// vectorises. In GELU, 0.5 x (1 + erf(x / sqrt 2)), that is a relative error of the same size.
inline float erf_fast(float x) {
    const float a = std::fabs(x);
    const float t = 1.0f / (1.0f + 0.3275911f * a);
    const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    const float y = 1.0f - poly * fast_exp(-a * a);
    return std::copysign(y, x);
}
inline float gelu_exact(float x) { return 0.5f * x * (1.0f + erf_fast(x * 0.70710678118654752f)); }

}  // namespace nb::cpu
