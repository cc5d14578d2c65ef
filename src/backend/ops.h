// Tensor-level math operators the models are written in: what a model file may call (issue 16: models see math
// ops only, never memory policy). Each call runs on the backend of the calling thread's context
// (backend/context.h, backend/backend.h): the CPU backend (oneDNN for convolution and matmul, own vectorised
// kernels for the rest) or the scalar reference (ops/ref.h), the tests' oracle. All tensors fp32, contiguous,
// NCHW / [batch, tokens, channels].
#pragma once

#include "core/tensor.h"

namespace nb::ops {

struct Pad2d {
    int t = 0, l = 0, b = 0, r = 0;
    static Pad2d same(int p) { return {p, p, p, p}; }
};

// x [N, C, H, W], w [O, C, KH, KW], b [O] or undefined -> [N, O, Ho, Wo].
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, Pad2d pad);
// x [..., K], w [N, K], b [N] or undefined -> [..., N].
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);
// x [N, C, ...] -> same shape; optional fused SiLU.
Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool silu = false);
// x [..., D] -> same shape.
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
// q [B, Tq, H*Dh], k, v [B, Tk, H*Dh] -> [B, Tq, H*Dh]. Never materialises all heads' score matrices.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal = false);
// x [M..., 2F] -> [M..., F]: first half * gelu(second half).
Tensor geglu(const Tensor& x);

// In-place elementwise.
void silu_(Tensor& x);
void relu_(Tensor& x);        // max(x, 0)
void quick_gelu_(Tensor& x);  // x * sigmoid(1.702 x), CLIP
void gelu_(Tensor& x);        // exact erf GELU
void add_(Tensor& x, const Tensor& y);               // same shape
void scale_(Tensor& x, float s);
// x [N, C, H, W] += v[N, C] broadcast over H, W.
void add_channel_bias_(Tensor& x, const Tensor& v);

// Layout helpers.
Tensor upsample_nearest2x(const Tensor& x);                   // [N, C, H, W] -> [N, C, 2H, 2W]
// [N, C, H, W] -> [N, C, h, w], torch's "nearest": source index floor(i * H / h).
Tensor resize_nearest(const Tensor& x, int64_t h, int64_t w);
Tensor concat_channels(const Tensor& a, const Tensor& b);     // [N, Ca, H, W] ++ [N, Cb, H, W] (same N, H, W)
Tensor nchw_to_nhwc(const Tensor& x);                         // [N, C, H, W] -> [N, H*W, C]
Tensor nhwc_to_nchw(const Tensor& x, int64_t h, int64_t w);   // [N, H*W, C] -> [N, C, H, W]

}  // namespace nb::ops
