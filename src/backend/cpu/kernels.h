// The CPU backend's implementations of the math ops (backend/ops.h documents each): oneDNN for convolution,
// matmul and short attention, our own vectorised kernels for the rest (fused attention over long sequences,
// small convolutions, Winograd, norms, elementwise). Reached through backend::cpu_backend().
#pragma once

#include "backend/ops.h"
#include "backend/weights.h"

namespace nb::cpu {

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, ops::Pad2d pad);
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);
Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool silu);
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal);
Tensor geglu(const Tensor& x);
void silu_(Tensor& x);
void relu_(Tensor& x);
void quick_gelu_(Tensor& x);
void gelu_(Tensor& x);
void add_(Tensor& x, const Tensor& y);
void scale_(Tensor& x, float s);
void add_channel_bias_(Tensor& x, const Tensor& v);
Tensor upsample_nearest2x(const Tensor& x);
Tensor resize_nearest(const Tensor& x, int64_t h, int64_t w);
Tensor concat_channels(const Tensor& a, const Tensor& b);
Tensor nchw_to_nhwc(const Tensor& x);
Tensor nhwc_to_nchw(const Tensor& x, int64_t h, int64_t w);

// Packs a weight at load time (conv: always; linear: in bf16 mode), releasing its fp32 values.
void prepack_conv(const Tensor& w, int stride, ops::Pad2d pad);
void prepack_linear(const Tensor& w);
bool prepack_conv_from(const Tensor& w, ops::WeightBits bits, int stride, ops::Pad2d pad);
bool prepack_linear_from(const Tensor& w, ops::WeightBits bits);

}  // namespace nb::cpu
