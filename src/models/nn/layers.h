// Building blocks the models are written in: typed weight holders with a forward (STYLE.md #7).
#pragma once

#include "backend/ops.h"
#include "core/tensor.h"

namespace nb::nn {

struct Linear {
    Tensor weight;  // [out, in]
    Tensor bias;    // [out] or undefined
    // x [..., in] -> [..., out]
    Tensor forward(const Tensor& x) const { return ops::linear(x, weight, bias); }
};

struct Conv2d {
    Tensor weight;  // [out, in, k, k]
    Tensor bias;    // [out] or undefined
    int stride = 1;
    ops::Pad2d pad;
    // x [N, in, H, W] -> [N, out, H', W']
    Tensor forward(const Tensor& x) const { return ops::conv2d(x, weight, bias, stride, pad); }
};

struct GroupNorm {
    Tensor weight, bias;  // [C]
    int groups = 32;
    float eps = 1e-5f;
    Tensor forward(const Tensor& x, bool silu = false) const {
        return ops::group_norm(x, groups, weight, bias, eps, silu);
    }
};

struct LayerNorm {
    Tensor weight, bias;  // [D]
    float eps = 1e-5f;
    Tensor forward(const Tensor& x) const { return ops::layer_norm(x, weight, bias, eps); }
};

}  // namespace nb::nn
