// The backend seam (issue 16): every math op of backend/ops.h and the weight hooks of backend/weights.h, as one
// interface. Two implementations: the CPU backend (backend/cpu: oneDNN + own kernels, weights packed) and the
// reference backend (backend/ref: the scalar loops of ops/ref.h, weights as loaded), selected per context
// (Settings::backend). A new backend (GPU) implements this interface and gets a value in ops::Backend.
// Implementations are stateless: state lives in the context (backend::Context::state).
#pragma once

#include "backend/context.h"
#include "backend/ops.h"
#include "backend/weights.h"

namespace nb::backend {

class Backend {
public:
    virtual ~Backend() = default;
    virtual const char* name() const = 0;

    // Math (backend/ops.h).
    virtual Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, ops::Pad2d pad) const = 0;
    virtual Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) const = 0;
    virtual Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps,
                              bool silu) const = 0;
    virtual Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) const = 0;
    virtual Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal) const = 0;
    virtual Tensor geglu(const Tensor& x) const = 0;
    virtual void silu_(Tensor& x) const = 0;
    virtual void relu_(Tensor& x) const = 0;
    virtual void quick_gelu_(Tensor& x) const = 0;
    virtual void gelu_(Tensor& x) const = 0;
    virtual void add_(Tensor& x, const Tensor& y) const = 0;
    virtual void scale_(Tensor& x, float s) const = 0;
    virtual void add_channel_bias_(Tensor& x, const Tensor& v) const = 0;
    virtual Tensor upsample_nearest2x(const Tensor& x) const = 0;
    virtual Tensor resize_nearest(const Tensor& x, int64_t h, int64_t w) const = 0;
    virtual Tensor concat_channels(const Tensor& a, const Tensor& b) const = 0;
    virtual Tensor nchw_to_nhwc(const Tensor& x) const = 0;
    virtual Tensor nhwc_to_nchw(const Tensor& x, int64_t h, int64_t w) const = 0;

    // Weights (backend/weights.h).
    virtual void prepack_conv(const Tensor& w, int stride, ops::Pad2d pad) const = 0;
    virtual void prepack_linear(const Tensor& w) const = 0;
    // Packs a weight without values straight from its file's bits; false when this backend cannot (the
    // caller then converts the bits to values and calls prepack_*).
    virtual bool prepack_conv_from(const Tensor&, ops::WeightBits, int, ops::Pad2d) const { return false; }
    virtual bool prepack_linear_from(const Tensor&, ops::WeightBits) const { return false; }
};

// The implementations, and the one a context selects.
const Backend& cpu_backend();
const Backend& ref_backend();
const Backend& of(const Context& ctx);

}  // namespace nb::backend
