#include "backend/ref/ops_ref.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "backend/weights.h"
#include "ops/ref.h"

namespace nb::ops::refb {

namespace {

// The reference kernels read fp32 values; weights the CPU backend packed (and released) come back first.
const float* values(const Tensor& t) {
    if (!t.defined()) return nullptr;
    if (!t.has_values()) ensure_values(t);
    return t.data();
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, Pad2d pad) {
    if (w.dim(1) != x.dim(1))
        throw std::logic_error("conv2d: input channels " + std::to_string(x.dim(1)) + " != weight " + shape_str(w.shape()));
    ref::Conv2dShape s{x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0), w.dim(2), w.dim(3), stride,
                       pad.t,     pad.l,     pad.b,     pad.r,     1};
    Tensor y = Tensor::empty({s.n, s.o, s.out_h(), s.out_w()});
    ref::conv2d(s, x.data(), values(w), values(b), y.data());
    return y;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
    const int64_t k = x.dim(-1), n = w.dim(0), m = x.numel() / k;
    if (w.dim(1) != k)
        throw std::logic_error("linear: input width " + std::to_string(k) + " != weight " + shape_str(w.shape()));
    Shape out = x.shape();
    out.back() = n;
    Tensor y = Tensor::empty(out);
    ref::linear(x.data(), values(w), values(b), y.data(), m, n, k);
    return y;
}

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool silu) {
    const int64_t n = x.dim(0), c = x.dim(1), s = x.numel() / (n * c);
    Tensor y = Tensor::empty(x.shape());
    ref::group_norm(x.data(), values(gamma), values(beta), y.data(), n, c, s, groups, eps, silu);
    return y;
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
    const int64_t d = x.dim(-1), m = x.numel() / d;
    Tensor y = Tensor::empty(x.shape());
    ref::layer_norm(x.data(), values(gamma), values(beta), y.data(), m, d, eps);
    return y;
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal) {
    const int64_t b = q.dim(0), tq = q.dim(1), tk = k.dim(1), dh = q.dim(2) / heads;
    Tensor o = Tensor::empty(q.shape());
    ref::attention(q.data(), k.data(), v.data(), o.data(), b, tq, tk, heads, dh, 1.f / std::sqrt(float(dh)), causal);
    return o;
}

Tensor geglu(const Tensor& x) {
    const int64_t f = x.dim(-1) / 2, m = x.numel() / (2 * f);
    Shape out = x.shape();
    out.back() = f;
    Tensor y = Tensor::empty(out);
    ref::geglu(x.data(), y.data(), m, f);
    return y;
}

void silu_(Tensor& x) {
    for (float& v : x.span()) v = float(double(v) / (1.0 + std::exp(-double(v))));
}

void relu_(Tensor& x) {
    for (float& v : x.span()) v = v > 0.f ? v : 0.f;
}

void quick_gelu_(Tensor& x) {
    for (float& v : x.span()) v = float(double(v) / (1.0 + std::exp(-1.702 * double(v))));
}

void gelu_(Tensor& x) {
    for (float& v : x.span()) v = float(0.5 * double(v) * (1.0 + std::erf(double(v) / std::sqrt(2.0))));
}

}  // namespace nb::ops::refb
