// Elementwise helpers shared by the sampler files (internal to src/sampling).
#pragma once

#include <cmath>
#include <initializer_list>
#include <utility>

#include "core/error.h"
#include "core/tensor.h"
#include "sampling/sampler.h"

namespace nb::sampling::detail {

// sum_k c_k * t_k, elementwise, accumulated in double: [N, C, H, W] -> same shape.
inline Tensor lincomb(std::initializer_list<std::pair<double, const Tensor*>> terms) {
    const Tensor& first = *terms.begin()->second;
    Tensor out = Tensor::empty(first.shape());
    float* o = out.data();
    for (int64_t i = 0; i < out.numel(); ++i) {
        double acc = 0;
        for (auto& [c, t] : terms) acc += c * double(t->data()[i]);
        o[i] = float(acc);
    }
    return out;
}

// k-diffusion to_d: (x - denoised) / sigma.
inline Tensor to_d(const Tensor& x, double sigma, const Tensor& denoised) {
    return lincomb({{1.0 / sigma, &x}, {-1.0 / sigma, &denoised}});
}

// k-diffusion get_ancestral_step (eta 1): sigma_up = min(sigma_to, sqrt(to^2 (from^2 - to^2) / from^2)).
struct AncestralStep { double down, up; };
inline AncestralStep ancestral_step(double from, double to, double eta = 1.0) {
    if (eta == 0) return {to, 0.0};
    double up = std::min(to, eta * std::sqrt(to * to * (from * from - to * to) / (from * from)));
    return {std::sqrt(to * to - up * up), up};
}

inline bool notify(const StepCallback& cb, int step, int total, const Tensor& x, const Tensor& denoised) {
    return !cb || cb(step, total, x, denoised);
}

inline std::unexpected<Error> cancelled(int step, int total) {
    return make_error(Errc::cancelled, "sampling cancelled at step {}/{}", step + 1, total);
}

inline int n_steps(std::span<const float> sigmas) { return int(sigmas.size()) - 1; }

}  // namespace nb::sampling::detail
