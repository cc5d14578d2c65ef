#include "backend/cpu/cpu_backend.h"
#include "backend/ref/ops_ref.h"

namespace nb::backend {

namespace {

// Scalar kernels for the math; the elementwise adds and layout copies are exact in any implementation and
// come from the CPU backend's (inherited). Weights stay as loaded (nothing packed).
class RefBackend final : public CpuBackend {
public:
    const char* name() const override { return "ref"; }
    Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, ops::Pad2d pad) const override {
        return ops::refb::conv2d(x, w, b, stride, pad);
    }
    Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) const override {
        return ops::refb::linear(x, w, b);
    }
    Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps,
                      bool silu) const override {
        return ops::refb::group_norm(x, groups, gamma, beta, eps, silu);
    }
    Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) const override {
        return ops::refb::layer_norm(x, gamma, beta, eps);
    }
    Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal) const override {
        return ops::refb::attention(q, k, v, heads, causal);
    }
    Tensor geglu(const Tensor& x) const override { return ops::refb::geglu(x); }
    void silu_(Tensor& x) const override { ops::refb::silu_(x); }
    void relu_(Tensor& x) const override { ops::refb::relu_(x); }
    void quick_gelu_(Tensor& x) const override { ops::refb::quick_gelu_(x); }
    void gelu_(Tensor& x) const override { ops::refb::gelu_(x); }
    void prepack_conv(const Tensor&, int, ops::Pad2d) const override {}
    void prepack_linear(const Tensor&) const override {}
    bool prepack_conv_from(const Tensor&, ops::WeightBits, int, ops::Pad2d) const override { return false; }
    bool prepack_linear_from(const Tensor&, ops::WeightBits) const override { return false; }
};

}  // namespace

const Backend& ref_backend() {
    static const RefBackend b;  // stateless
    return b;
}

}  // namespace nb::backend
