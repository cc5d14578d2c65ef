#include "ops/ref.h"

#include <cmath>
#include <limits>
#include <vector>

namespace nb::ops::ref {

void conv2d(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y) {
    const int64_t ho = s.out_h(), wo = s.out_w(), cg = s.c / s.groups, og = s.o / s.groups;
    for (int64_t n = 0; n < s.n; ++n)
        for (int64_t o = 0; o < s.o; ++o) {
            const int64_t g = o / og;
            for (int64_t oy = 0; oy < ho; ++oy)
                for (int64_t ox = 0; ox < wo; ++ox) {
                    double acc = b ? b[o] : 0.0;
                    for (int64_t ci = 0; ci < cg; ++ci)
                        for (int64_t ky = 0; ky < s.kh; ++ky) {
                            int64_t iy = oy * s.stride - s.pad_t + ky;
                            if (iy < 0 || iy >= s.h) continue;
                            for (int64_t kx = 0; kx < s.kw; ++kx) {
                                int64_t ix = ox * s.stride - s.pad_l + kx;
                                if (ix < 0 || ix >= s.w) continue;
                                acc += double(x[((n * s.c + g * cg + ci) * s.h + iy) * s.w + ix]) *
                                       w[((o * cg + ci) * s.kh + ky) * s.kw + kx];
                            }
                        }
                    y[((n * s.o + o) * ho + oy) * wo + ox] = float(acc);
                }
        }
}

void linear(const float* x, const float* w, const float* b, float* y, int64_t m, int64_t n, int64_t k) {
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double acc = b ? b[j] : 0.0;
            for (int64_t t = 0; t < k; ++t) acc += double(x[i * k + t]) * w[j * k + t];
            y[i * n + j] = float(acc);
        }
}

void group_norm(const float* x, const float* gamma, const float* beta, float* y, int64_t n, int64_t c, int64_t s,
                int groups, float eps, bool silu) {
    const int64_t cg = c / groups;
    for (int64_t i = 0; i < n; ++i)
        for (int g = 0; g < groups; ++g) {
            const float* xg = x + (i * c + g * cg) * s;
            float* yg = y + (i * c + g * cg) * s;
            double sum = 0, sq = 0;
            for (int64_t t = 0; t < cg * s; ++t) sum += xg[t];
            double mean = sum / double(cg * s);
            for (int64_t t = 0; t < cg * s; ++t) sq += (xg[t] - mean) * (xg[t] - mean);
            double inv = 1.0 / std::sqrt(sq / double(cg * s) + eps);
            for (int64_t ch = 0; ch < cg; ++ch)
                for (int64_t t = 0; t < s; ++t) {
                    double v = (xg[ch * s + t] - mean) * inv * gamma[g * cg + ch] + beta[g * cg + ch];
                    if (silu) v = v / (1.0 + std::exp(-v));
                    yg[ch * s + t] = float(v);
                }
        }
}

void layer_norm(const float* x, const float* gamma, const float* beta, float* y, int64_t m, int64_t d, float eps) {
    for (int64_t i = 0; i < m; ++i) {
        double sum = 0, sq = 0;
        for (int64_t t = 0; t < d; ++t) sum += x[i * d + t];
        double mean = sum / double(d);
        for (int64_t t = 0; t < d; ++t) sq += (x[i * d + t] - mean) * (x[i * d + t] - mean);
        double inv = 1.0 / std::sqrt(sq / double(d) + eps);
        for (int64_t t = 0; t < d; ++t) y[i * d + t] = float((x[i * d + t] - mean) * inv * gamma[t] + beta[t]);
    }
}

void attention(const float* q, const float* k, const float* v, float* o, int64_t b, int64_t tq, int64_t tk,
               int64_t heads, int64_t dh, float scale, bool causal) {
    const int64_t dm = heads * dh;
    std::vector<double> p(static_cast<size_t>(tk));
    for (int64_t bi = 0; bi < b; ++bi)
        for (int64_t h = 0; h < heads; ++h)
            for (int64_t i = 0; i < tq; ++i) {
                const float* qi = q + (bi * tq + i) * dm + h * dh;
                double mx = -std::numeric_limits<double>::infinity();
                for (int64_t j = 0; j < tk; ++j) {
                    if (causal && j > i) {
                        p[j] = -std::numeric_limits<double>::infinity();
                        continue;
                    }
                    const float* kj = k + (bi * tk + j) * dm + h * dh;
                    double dot = 0;
                    for (int64_t t = 0; t < dh; ++t) dot += double(qi[t]) * kj[t];
                    p[j] = dot * scale;
                    mx = std::max(mx, p[j]);
                }
                double sum = 0;
                for (int64_t j = 0; j < tk; ++j) sum += (p[j] = std::exp(p[j] - mx));
                float* oi = o + (bi * tq + i) * dm + h * dh;
                for (int64_t t = 0; t < dh; ++t) {
                    double acc = 0;
                    for (int64_t j = 0; j < tk; ++j) acc += p[j] * v[(bi * tk + j) * dm + h * dh + t];
                    oi[t] = float(acc / sum);
                }
            }
}

void geglu(const float* x, float* y, int64_t m, int64_t f) {
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < f; ++j) {
            double a = x[i * 2 * f + j], g = x[i * 2 * f + f + j];
            y[i * f + j] = float(a * 0.5 * g * (1.0 + std::erf(g / std::sqrt(2.0))));
        }
}

}  // namespace nb::ops::ref
