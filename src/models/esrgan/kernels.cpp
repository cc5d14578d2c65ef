#include "models/esrgan/kernels.h"

#include <cstdint>

namespace nb::esrgan {

void leaky_relu_(Tensor& x, float slope) {
    float* p = x.data();
    const int64_t n = x.numel();
#pragma omp parallel for simd if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) p[i] = p[i] >= 0.f ? p[i] : p[i] * slope;
}

void prelu_(Tensor& x, const Tensor& a) {
    const int64_t c = x.dim(1), planes = x.dim(0) * c, hw = x.dim(2) * x.dim(3);
    float* p = x.data();
    const float* s = a.data();
#pragma omp parallel for if (planes * hw > (1 << 16))
    for (int64_t pl = 0; pl < planes; ++pl) {
        const float k = s[pl % c];
        float* q = p + pl * hw;
        for (int64_t i = 0; i < hw; ++i) q[i] = q[i] >= 0.f ? q[i] : q[i] * k;
    }
}

Tensor pixel_shuffle(const Tensor& x, int s) {
    const int64_t n = x.dim(0), c = x.dim(1) / (s * s), h = x.dim(2), w = x.dim(3);
    Tensor out = Tensor::empty({n, c, h * s, w * s});
    const float* src = x.data();
    float* dst = out.data();
#pragma omp parallel for collapse(2) if (x.numel() > (1 << 16))
    for (int64_t b = 0; b < n; ++b)
        for (int64_t ch = 0; ch < c; ++ch)
            for (int i = 0; i < s; ++i)
                for (int j = 0; j < s; ++j) {
                    const float* in = src + ((b * c + ch) * s * s + i * s + j) * h * w;
                    float* o = dst + (b * c + ch) * h * s * w * s;
                    for (int64_t y = 0; y < h; ++y)
                        for (int64_t xx = 0; xx < w; ++xx) o[(y * s + i) * w * s + xx * s + j] = in[y * w + xx];
                }
    return out;
}

Tensor pixel_unshuffle(const Tensor& x, int s) {
    const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2) / s, w = x.dim(3) / s;
    Tensor out = Tensor::empty({n, c * s * s, h, w});
    const float* src = x.data();
    float* dst = out.data();
    for (int64_t b = 0; b < n; ++b)
        for (int64_t ch = 0; ch < c; ++ch)
            for (int i = 0; i < s; ++i)
                for (int j = 0; j < s; ++j) {
                    const float* in = src + (b * c + ch) * h * s * w * s;
                    float* o = dst + ((b * c + ch) * s * s + i * s + j) * h * w;
                    for (int64_t y = 0; y < h; ++y)
                        for (int64_t xx = 0; xx < w; ++xx) o[y * w + xx] = in[(y * s + i) * w * s + xx * s + j];
                }
    return out;
}

void add_upsampled_nearest_(Tensor& y, const Tensor& x, int s) {
    const int64_t planes = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3), ow = w * s;
    const float* src = x.data();
    float* dst = y.data();
#pragma omp parallel for if (y.numel() > (1 << 16))
    for (int64_t p = 0; p < planes; ++p)
        for (int64_t oy = 0; oy < h * s; ++oy) {
            const float* in = src + (p * h + oy / s) * w;
            float* o = dst + (p * h * s + oy) * ow;
            for (int64_t ox = 0; ox < ow; ++ox) o[ox] += in[ox / s];
        }
}

}  // namespace nb::esrgan
