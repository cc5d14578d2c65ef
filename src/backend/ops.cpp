// The math ops and weight hooks, dispatched to the backend of the calling thread's context.
#include "backend/backend.h"
#include "backend/weights.h"

namespace nb::backend {

const Backend& of(const Context& ctx) {
    return ctx.settings.backend == ops::Backend::ref ? ref_backend() : cpu_backend();
}

}  // namespace nb::backend

namespace nb::ops {

namespace {
const backend::Backend& be() { return backend::of(backend::current()); }
}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, Pad2d pad) {
    return be().conv2d(x, w, b, stride, pad);
}
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) { return be().linear(x, w, b); }
Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool silu) {
    return be().group_norm(x, groups, gamma, beta, eps, silu);
}
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
    return be().layer_norm(x, gamma, beta, eps);
}
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal) {
    return be().attention(q, k, v, heads, causal);
}
Tensor geglu(const Tensor& x) { return be().geglu(x); }
void silu_(Tensor& x) { be().silu_(x); }
void relu_(Tensor& x) { be().relu_(x); }
void quick_gelu_(Tensor& x) { be().quick_gelu_(x); }
void gelu_(Tensor& x) { be().gelu_(x); }
void add_(Tensor& x, const Tensor& y) { be().add_(x, y); }
void scale_(Tensor& x, float s) { be().scale_(x, s); }
void add_channel_bias_(Tensor& x, const Tensor& v) { be().add_channel_bias_(x, v); }
Tensor upsample_nearest2x(const Tensor& x) { return be().upsample_nearest2x(x); }
Tensor resize_nearest(const Tensor& x, int64_t h, int64_t w) { return be().resize_nearest(x, h, w); }
Tensor concat_channels(const Tensor& a, const Tensor& b) { return be().concat_channels(a, b); }
Tensor nchw_to_nhwc(const Tensor& x) { return be().nchw_to_nhwc(x); }
Tensor nhwc_to_nchw(const Tensor& x, int64_t h, int64_t w) { return be().nhwc_to_nchw(x, h, w); }

void prepack_conv(const Tensor& w, int stride, Pad2d pad) { be().prepack_conv(w, stride, pad); }
void prepack_linear(const Tensor& w) { be().prepack_linear(w); }

namespace {
void values_from(const Tensor& w, WeightBits bits) {
    w.restore_values();
    convert_to_f32(bits.type, bits.data, const_cast<float*>(w.data()), size_t(w.numel()));
}
}  // namespace

void prepack_conv_from(const Tensor& w, WeightBits bits, int stride, Pad2d pad) {
    if (be().prepack_conv_from(w, bits, stride, pad)) return;
    values_from(w, bits);
    be().prepack_conv(w, stride, pad);
}

void prepack_linear_from(const Tensor& w, WeightBits bits) {
    if (be().prepack_linear_from(w, bits)) return;
    values_from(w, bits);
    be().prepack_linear(w);
}

}  // namespace nb::ops
