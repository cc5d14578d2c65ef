// Elementwise activations and layout helpers.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "backend/cpu/vec_math.h"
#include "backend/cpu/profile.h"
#include "backend/context.h"
#include "backend/cpu/kernels.h"

// GCC 12's AVX-512 headers initialise "undefined" vectors from themselves, which -W(maybe-)uninitialized report.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

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

namespace {

// dst (cols x rows, row stride ds) = transpose of the 16 x 16 block at src (row stride ss): three rounds of
// interleaves (32-bit, 64-bit, 128-bit lanes), 64 shuffles for 256 values.
__attribute__((target("avx512f"))) void transpose16x16(const float* src, int64_t ss, float* dst, int64_t ds) {
    __m512 r[16], a[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * ss);
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {
        a[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        a[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    // r[4 g + k]: in 128-bit lane L, column 4 L + k of rows 4 g .. 4 g + 3.
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
        const __m512d lo0 = _mm512_castps_pd(a[4 * g]), hi0 = _mm512_castps_pd(a[4 * g + 1]),
                      lo1 = _mm512_castps_pd(a[4 * g + 2]), hi1 = _mm512_castps_pd(a[4 * g + 3]);
        r[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo0, lo1));
        r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo0, lo1));
        r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi0, hi1));
        r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi0, hi1));
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
        const __m512 c01 = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x44), c23 = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x44),
                     d01 = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xEE), d23 = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xEE);
        _mm512_storeu_ps(dst + k * ds, _mm512_shuffle_f32x4(c01, c23, 0x88));
        _mm512_storeu_ps(dst + (4 + k) * ds, _mm512_shuffle_f32x4(c01, c23, 0xDD));
        _mm512_storeu_ps(dst + (8 + k) * ds, _mm512_shuffle_f32x4(d01, d23, 0x88));
        _mm512_storeu_ps(dst + (12 + k) * ds, _mm512_shuffle_f32x4(d01, d23, 0xDD));
    }
}

// For each of n matrices: dst[i] (cols x rows) = transpose of src[i] (rows x cols), in 16 x 16 blocks (AVX-512)
// or 32 x 32 tiles; the edges element by element.
void transpose_batched(const float* src, float* dst, int64_t n, int64_t rows, int64_t cols) {
    static const bool avx512 = __builtin_cpu_supports("avx512f");
    const int64_t tile = avx512 ? 16 : 32, rb = (rows + tile - 1) / tile, cb = (cols + tile - 1) / tile;
#pragma omp parallel for collapse(2) if (n * rows * cols > kParallelMin)
    for (int64_t i = 0; i < n; ++i)
        for (int64_t b = 0; b < rb; ++b) {
            const float* s = src + i * rows * cols;
            float* d = dst + i * rows * cols;
            const int64_t r0 = b * tile, r1 = std::min(rows, r0 + tile);
            for (int64_t c = 0; c < cb; ++c) {
                const int64_t c0 = c * tile, c1 = std::min(cols, c0 + tile);
                if (avx512 && r1 - r0 == 16 && c1 - c0 == 16) {
                    transpose16x16(s + r0 * cols + c0, cols, d + c0 * rows + r0, rows);
                    continue;
                }
                for (int64_t cc = c0; cc < c1; ++cc)
                    for (int64_t r = r0; r < r1; ++r) d[cc * rows + r] = s[r * cols + cc];
            }
        }
}

}  // namespace

Tensor nchw_to_nhwc(const Tensor& x) {
    cpu::ProfileScope prof_("transpose");
    const int64_t n = x.dim(0), c = x.dim(1), s = x.numel() / (n * c);
    Tensor y = Tensor::empty({n, s, c});
    transpose_batched(x.data(), y.data(), n, c, s);
    return y;
}

Tensor nhwc_to_nchw(const Tensor& x, int64_t h, int64_t w) {
    cpu::ProfileScope prof_("transpose");
    const int64_t n = x.dim(0), s = x.dim(1), c = x.dim(2);
    Tensor y = Tensor::empty({n, c, h, w});
    transpose_batched(x.data(), y.data(), n, s, c);
    return y;
}

}  // namespace nb::cpu
