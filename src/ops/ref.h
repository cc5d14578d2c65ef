// Scalar reference kernels: the test oracle for every fast kernel (STYLE.md #13). Plain loops, double
// accumulation where it matters, no threading. All tensors are contiguous row-major fp32.
#pragma once

#include <cstdint>

namespace nb::ops::ref {

struct Conv2dShape {
    int64_t n, c, h, w;      // input [N, C, H, W]
    int64_t o, kh, kw;       // weight [O, C/groups, KH, KW]
    int stride = 1;
    int pad_t = 0, pad_l = 0, pad_b = 0, pad_r = 0;
    int groups = 1;
    int64_t out_h() const { return (h + pad_t + pad_b - kh) / stride + 1; }
    int64_t out_w() const { return (w + pad_l + pad_r - kw) / stride + 1; }
};

// y [N, O, Ho, Wo] = conv(x, w) + b (b may be null).
void conv2d(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
// y [M, N] = x [M, K] @ w[N, K]^T + b[N] (b may be null): torch Linear layout.
void linear(const float* x, const float* w, const float* b, float* y, int64_t m, int64_t n, int64_t k);
// x [N, C, S] normalised per (n, group of C/G channels); y = norm * gamma[c] + beta[c], then SiLU if `silu`.
void group_norm(const float* x, const float* gamma, const float* beta, float* y, int64_t n, int64_t c, int64_t s,
                int groups, float eps, bool silu);
// x [M, D] normalised over D.
void layer_norm(const float* x, const float* gamma, const float* beta, float* y, int64_t m, int64_t d, float eps);
// q [B, Tq, H*Dh], k/v [B, Tk, H*Dh] -> o [B, Tq, H*Dh]; softmax(q k^T * scale) v per head; causal masks j > i.
void attention(const float* q, const float* k, const float* v, float* o, int64_t b, int64_t tq, int64_t tk,
               int64_t heads, int64_t dh, float scale, bool causal);
// x [M, 2F] -> y [M, F] = x[:, :F] * gelu(x[:, F:]) (exact erf GELU), as ldm GEGLU.
void geglu(const float* x, float* y, int64_t m, int64_t f);

}  // namespace nb::ops::ref
