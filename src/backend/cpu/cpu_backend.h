// The CPU backend as a class, for backends that share its layout and elementwise ops (the reference backend
// overrides the math and the weight hooks).
#pragma once

#include "backend/backend.h"
#include "backend/cpu/kernels.h"

namespace nb::backend {

class CpuBackend : public Backend {
public:
    const char* name() const override { return "cpu"; }
    Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, ops::Pad2d pad) const override {
        return cpu::conv2d(x, w, b, stride, pad);
    }
    Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) const override { return cpu::linear(x, w, b); }
    Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps,
                      bool silu) const override {
        return cpu::group_norm(x, groups, gamma, beta, eps, silu);
    }
    Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) const override {
        return cpu::layer_norm(x, gamma, beta, eps);
    }
    Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal) const override {
        return cpu::attention(q, k, v, heads, causal);
    }
    Tensor geglu(const Tensor& x) const override { return cpu::geglu(x); }
    void silu_(Tensor& x) const override { cpu::silu_(x); }
    void relu_(Tensor& x) const override { cpu::relu_(x); }
    void quick_gelu_(Tensor& x) const override { cpu::quick_gelu_(x); }
    void gelu_(Tensor& x) const override { cpu::gelu_(x); }
    void add_(Tensor& x, const Tensor& y) const override { cpu::add_(x, y); }
    void scale_(Tensor& x, float s) const override { cpu::scale_(x, s); }
    void add_channel_bias_(Tensor& x, const Tensor& v) const override { cpu::add_channel_bias_(x, v); }
    Tensor upsample_nearest2x(const Tensor& x) const override { return cpu::upsample_nearest2x(x); }
    Tensor resize_nearest(const Tensor& x, int64_t h, int64_t w) const override {
        return cpu::resize_nearest(x, h, w);
    }
    Tensor concat_channels(const Tensor& a, const Tensor& b) const override { return cpu::concat_channels(a, b); }
    Tensor nchw_to_nhwc(const Tensor& x) const override { return cpu::nchw_to_nhwc(x); }
    Tensor nhwc_to_nchw(const Tensor& x, int64_t h, int64_t w) const override {
        return cpu::nhwc_to_nchw(x, h, w);
    }
    void prepack_conv(const Tensor& w, int stride, ops::Pad2d pad) const override {
        cpu::prepack_conv(w, stride, pad);
    }
    void prepack_linear(const Tensor& w) const override { cpu::prepack_linear(w); }
    bool prepack_conv_from(const Tensor& w, ops::WeightBits bits, int stride, ops::Pad2d pad) const override {
        return cpu::prepack_conv_from(w, bits, stride, pad);
    }
    bool prepack_linear_from(const Tensor& w, ops::WeightBits bits) const override {
        return cpu::prepack_linear_from(w, bits);
    }
};

}  // namespace nb::backend
