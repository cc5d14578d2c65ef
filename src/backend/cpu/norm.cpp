// Group norm (+ fused SiLU) and layer norm. Statistics in double for accuracy on large groups
// (a 512x512 first-level group has 10 x 4096 values); normalisation in float, vectorised.
#include <algorithm>
#include <cmath>

#include "backend/cpu/vec_math.h"
#include "backend/cpu/profile.h"
#include "backend/context.h"
#include "backend/cpu/kernels.h"

namespace nb::cpu {


namespace {

// Mean and 1/std of n values: float partial sums over 1024-element blocks (vectorised), combined in double.
void moments(const float* x, int64_t n, double& mean, double& inv_std, float eps) {
    constexpr int64_t kBlock = 1024;
    double s = 0;
    for (int64_t b = 0; b < n; b += kBlock) {
        float part = 0.f;
        const int64_t e = std::min(n, b + kBlock);
#pragma omp simd reduction(+ : part)
        for (int64_t i = b; i < e; ++i) part += x[i];
        s += part;
    }
    mean = s / double(n);
    double sq = 0;
    const float m = float(mean);
    for (int64_t b = 0; b < n; b += kBlock) {
        float part = 0.f;
        const int64_t e = std::min(n, b + kBlock);
#pragma omp simd reduction(+ : part)
        for (int64_t i = b; i < e; ++i) part += (x[i] - m) * (x[i] - m);
        sq += part;
    }
    inv_std = 1.0 / std::sqrt(sq / double(n) + eps);
}

void scale_shift(const float* x, float* y, int64_t n, float a, float c, bool silu) {
    if (silu) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) {
            float v = x[i] * a + c;
            y[i] = v * cpu::fast_sigmoid(v);
        }
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) y[i] = x[i] * a + c;
    }
}

}  // namespace

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool silu) {
    cpu::ProfileScope prof_("group_norm");
    const int64_t n = x.dim(0), c = x.dim(1), s = x.numel() / (n * c), cg = c / groups;
    Tensor y = Tensor::empty(x.shape());
    const float* xd = x.data();
    float* yd = y.data();
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; ++i)
        for (int64_t g = 0; g < groups; ++g) {
            const int64_t base = (i * c + g * cg) * s;
            double mean, inv;
            moments(xd + base, cg * s, mean, inv, eps);
            for (int64_t ch = 0; ch < cg; ++ch) {
                const int64_t cc = g * cg + ch;
                float a = float(inv * gamma.data()[cc]);
                float b = float(beta.data()[cc] - mean * inv * gamma.data()[cc]);
                scale_shift(xd + base + ch * s, yd + base + ch * s, s, a, b, silu);
            }
        }
    return y;
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
    cpu::ProfileScope prof_("layer_norm");
    const int64_t d = x.dim(-1), m = x.numel() / d;
    Tensor y = Tensor::empty(x.shape());
    const float* xd = x.data();
    float* yd = y.data();
    const float* g = gamma.data();
    const float* b = beta.data();
#pragma omp parallel for schedule(static) if (m > 16)
    for (int64_t i = 0; i < m; ++i) {
        double mean, inv;
        moments(xd + i * d, d, mean, inv, eps);
        const float fm = float(mean), fi = float(inv);
        const float* xr = xd + i * d;
        float* yr = yd + i * d;
#pragma omp simd
        for (int64_t t = 0; t < d; ++t) yr[t] = (xr[t] - fm) * fi * g[t] + b[t];
    }
    return y;
}

}  // namespace nb::cpu
