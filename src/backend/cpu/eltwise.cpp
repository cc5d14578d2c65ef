// Elementwise activations and layout helpers.
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "backend/cpu/vec_math.h"
#include "backend/cpu/profile.h"
#include "backend/context.h"
#include "backend/cpu/kernels.h"

namespace nb::cpu {


namespace {
constexpr int64_t kParallelMin = 1 << 15;
}

void silu_(Tensor& x) {
    cpu::ProfileScope prof_("silu");
    float* d = x.data();
    const int64_t n = x.numel();
#pragma omp parallel for simd if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) d[i] = d[i] * cpu::fast_sigmoid(d[i]);
}

void relu_(Tensor& x) {
    cpu::ProfileScope prof_("relu");
    float* d = x.data();
    const int64_t n = x.numel();
#pragma omp parallel for simd if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) d[i] = d[i] > 0.f ? d[i] : 0.f;
}

void quick_gelu_(Tensor& x) {
    float* d = x.data();
    const int64_t n = x.numel();
#pragma omp parallel for simd if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) d[i] = d[i] * cpu::fast_sigmoid(1.702f * d[i]);
}

void gelu_(Tensor& x) {
    cpu::ProfileScope prof_("gelu");
    float* d = x.data();
    const int64_t n = x.numel();
#pragma omp parallel for if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) d[i] = cpu::gelu_exact(d[i]);
}

Tensor geglu(const Tensor& x) {
    cpu::ProfileScope prof_("geglu");
    const int64_t f = x.dim(-1) / 2, m = x.numel() / (2 * f);
    Shape s = x.shape();
    s.back() = f;
    Tensor y = Tensor::empty(s);
    const float* xd = x.data();
    float* yd = y.data();
#pragma omp parallel for if (m * f > kParallelMin)
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < f; ++j) yd[i * f + j] = xd[i * 2 * f + j] * cpu::gelu_exact(xd[i * 2 * f + f + j]);
    return y;
}

void add_(Tensor& x, const Tensor& y) {
    cpu::ProfileScope prof_("add");
    if (x.numel() != y.numel())
        throw std::logic_error("add_: shapes " + shape_str(x.shape()) + " and " + shape_str(y.shape()));
    float* a = x.data();
    const float* b = y.data();
    const int64_t n = x.numel();
#pragma omp parallel for simd if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

void scale_(Tensor& x, float s) {
    float* a = x.data();
    const int64_t n = x.numel();
#pragma omp parallel for simd if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) a[i] *= s;
}

void add_channel_bias_(Tensor& x, const Tensor& v) {
    cpu::ProfileScope prof_("add_bias");
    const int64_t n = x.dim(0), c = x.dim(1), s = x.numel() / (n * c);
    float* d = x.data();
    const float* vd = v.data();
#pragma omp parallel for collapse(2) if (x.numel() > kParallelMin)
    for (int64_t i = 0; i < n; ++i)
        for (int64_t ch = 0; ch < c; ++ch) {
            const float add = vd[i * c + ch];
            float* p = d + (i * c + ch) * s;
#pragma omp simd
            for (int64_t t = 0; t < s; ++t) p[t] += add;
        }
}

Tensor upsample_nearest2x(const Tensor& x) {
    cpu::ProfileScope prof_("upsample");
    const int64_t nc = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3);
    Tensor y = Tensor::empty({x.dim(0), x.dim(1), 2 * h, 2 * w});
    const float* xd = x.data();
    float* yd = y.data();
#pragma omp parallel for collapse(2) if (y.numel() > kParallelMin)
    for (int64_t p = 0; p < nc; ++p)
        for (int64_t i = 0; i < h; ++i) {
            const float* src = xd + (p * h + i) * w;
            float* d0 = yd + (p * 2 * h + 2 * i) * 2 * w;
            for (int64_t j = 0; j < w; ++j) d0[2 * j] = d0[2 * j + 1] = src[j];
            std::memcpy(d0 + 2 * w, d0, size_t(2 * w) * sizeof(float));
        }
    return y;
}

Tensor resize_nearest(const Tensor& x, int64_t h, int64_t w) {
    const int64_t nc = x.dim(0) * x.dim(1), ih = x.dim(2), iw = x.dim(3);
    Tensor y = Tensor::empty({x.dim(0), x.dim(1), h, w});
    const float* xd = x.data();
    float* yd = y.data();
    const double sy = double(ih) / double(h), sx = double(iw) / double(w);  // torch: scale = in / out
#pragma omp parallel for if (nc * h * w > kParallelMin)
    for (int64_t p = 0; p < nc; ++p)
        for (int64_t i = 0; i < h; ++i) {
            const int64_t si = std::min(ih - 1, int64_t(double(i) * sy));
            for (int64_t j = 0; j < w; ++j)
                yd[(p * h + i) * w + j] = xd[(p * ih + si) * iw + std::min(iw - 1, int64_t(double(j) * sx))];
        }
    return y;
}

Tensor concat_channels(const Tensor& a, const Tensor& b) {
    cpu::ProfileScope prof_("concat");
    const int64_t n = a.dim(0), ca = a.dim(1), cb = b.dim(1), s = a.numel() / (n * ca);
    if (b.dim(0) != n || b.numel() / (n * cb) != s || a.shape().size() != b.shape().size())
        throw std::logic_error("concat_channels: " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                               " differ outside the channel axis");
    Shape sh = a.shape();
    sh[1] = ca + cb;
    Tensor y = Tensor::empty(sh);
    for (int64_t i = 0; i < n; ++i) {
        std::memcpy(y.data() + i * (ca + cb) * s, a.data() + i * ca * s, size_t(ca * s) * sizeof(float));
        std::memcpy(y.data() + (i * (ca + cb) + ca) * s, b.data() + i * cb * s, size_t(cb * s) * sizeof(float));
    }
    return y;
}

Tensor nchw_to_nhwc(const Tensor& x) {
    cpu::ProfileScope prof_("transpose");
    const int64_t n = x.dim(0), c = x.dim(1), s = x.numel() / (n * c);
    Tensor y = Tensor::empty({n, s, c});
    const float* xd = x.data();
    float* yd = y.data();
    constexpr int64_t kTile = 32;
#pragma omp parallel for collapse(2) if (x.numel() > kParallelMin)
    for (int64_t i = 0; i < n; ++i)
        for (int64_t t0 = 0; t0 < s; t0 += kTile)
            for (int64_t ch = 0; ch < c; ++ch)
                for (int64_t t = t0; t < std::min(s, t0 + kTile); ++t)
                    yd[(i * s + t) * c + ch] = xd[(i * c + ch) * s + t];
    return y;
}

Tensor nhwc_to_nchw(const Tensor& x, int64_t h, int64_t w) {
    cpu::ProfileScope prof_("transpose");
    const int64_t n = x.dim(0), s = x.dim(1), c = x.dim(2);
    Tensor y = Tensor::empty({n, c, h, w});
    const float* xd = x.data();
    float* yd = y.data();
    constexpr int64_t kTile = 32;
#pragma omp parallel for collapse(2) if (x.numel() > kParallelMin)
    for (int64_t i = 0; i < n; ++i)
        for (int64_t c0 = 0; c0 < c; c0 += kTile)
            for (int64_t t = 0; t < s; ++t)
                for (int64_t ch = c0; ch < std::min(c, c0 + kTile); ++ch)
                    yd[(i * c + ch) * s + t] = xd[(i * s + t) * c + ch];
    return y;
}

}  // namespace nb::cpu
