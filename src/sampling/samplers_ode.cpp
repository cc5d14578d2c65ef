// Deterministic k-diffusion samplers (sampling.py @ ab527a9): euler, heun, dpm_2, lms, dpmpp_2m.
#include <array>
#include <cmath>
#include <deque>

#include "sampling/sampler.h"
#include "sampling/sampler_util.h"

namespace nb::sampling {

using detail::cancelled;
using detail::lincomb;
using detail::notify;
using detail::to_d;

Result<Tensor> sample_euler(const Denoiser& model, Tensor x, std::span<const float> sigmas, NoiseSource&,
                            const StepCallback& cb) {
    const int n = detail::n_steps(sigmas);
    for (int i = 0; i < n; ++i) {
        const double s = sigmas[i], s_next = sigmas[i + 1];  // s_churn = 0: sigma_hat = sigma
        Tensor denoised = model(x, sigmas[i]);
        if (!notify(cb, i, n, x, denoised)) return cancelled(i, n);
        Tensor d = to_d(x, s, denoised);
        x = lincomb({{1.0, &x}, {s_next - s, &d}});
    }
    return x;
}

Result<Tensor> sample_heun(const Denoiser& model, Tensor x, std::span<const float> sigmas, NoiseSource&,
                           const StepCallback& cb) {
    const int n = detail::n_steps(sigmas);
    for (int i = 0; i < n; ++i) {
        const double s = sigmas[i], s_next = sigmas[i + 1], dt = s_next - s;
        Tensor denoised = model(x, sigmas[i]);
        if (!notify(cb, i, n, x, denoised)) return cancelled(i, n);
        Tensor d = to_d(x, s, denoised);
        if (sigmas[i + 1] == 0) {  // Euler for the last step
            x = lincomb({{1.0, &x}, {dt, &d}});
            continue;
        }
        Tensor x_2 = lincomb({{1.0, &x}, {dt, &d}});
        Tensor denoised_2 = model(x_2, sigmas[i + 1]);
        Tensor d_2 = to_d(x_2, s_next, denoised_2);
        x = lincomb({{1.0, &x}, {dt / 2, &d}, {dt / 2, &d_2}});
    }
    return x;
}

// sigma_mid = exp(lerp(log a, log b, 0.5)), as a float32 like the reference's tensor math.
static float log_midpoint(double a, double b) { return float(std::exp(0.5 * (std::log(a) + std::log(b)))); }

Result<Tensor> sample_dpm_2(const Denoiser& model, Tensor x, std::span<const float> sigmas, NoiseSource&,
                            const StepCallback& cb) {
    const int n = detail::n_steps(sigmas);
    for (int i = 0; i < n; ++i) {
        const double s = sigmas[i], s_next = sigmas[i + 1];
        Tensor denoised = model(x, sigmas[i]);
        if (!notify(cb, i, n, x, denoised)) return cancelled(i, n);
        Tensor d = to_d(x, s, denoised);
        if (sigmas[i + 1] == 0) {
            x = lincomb({{1.0, &x}, {s_next - s, &d}});
            continue;
        }
        const float s_mid = log_midpoint(s, s_next);  // DPM-Solver-2
        Tensor x_2 = lincomb({{1.0, &x}, {s_mid - s, &d}});
        Tensor denoised_2 = model(x_2, s_mid);
        Tensor d_2 = to_d(x_2, s_mid, denoised_2);
        x = lincomb({{1.0, &x}, {s_next - s, &d_2}});
    }
    return x;
}

double linear_multistep_coeff(int order, std::span<const float> t, int i, int j) {
    // Lagrange basis of degree order-1 <= 3: 4-point Gauss-Legendre integrates it exactly.
    static constexpr std::array<double, 4> kNodes = {-0.8611363115940526, -0.3399810435848563,
                                                     0.3399810435848563, 0.8611363115940526};
    static constexpr std::array<double, 4> kWeights = {0.3478548451374538, 0.6521451548625461,
                                                       0.6521451548625461, 0.3478548451374538};
    const double a = t[size_t(i)], b = t[size_t(i + 1)];
    double sum = 0;
    for (size_t q = 0; q < kNodes.size(); ++q) {
        const double tau = 0.5 * (a + b) + 0.5 * (b - a) * kNodes[q];
        double prod = 1.0;
        for (int k = 0; k < order; ++k) {
            if (k == j) continue;
            prod *= (tau - t[size_t(i - k)]) / (double(t[size_t(i - j)]) - t[size_t(i - k)]);
        }
        sum += kWeights[q] * prod;
    }
    return 0.5 * (b - a) * sum;
}

Result<Tensor> sample_lms(const Denoiser& model, Tensor x, std::span<const float> sigmas, NoiseSource&,
                          const StepCallback& cb) {
    constexpr int kOrder = 4;
    const int n = detail::n_steps(sigmas);
    std::deque<Tensor> ds;  // newest last, at most kOrder
    for (int i = 0; i < n; ++i) {
        Tensor denoised = model(x, sigmas[i]);
        ds.push_back(to_d(x, sigmas[i], denoised));
        if (int(ds.size()) > kOrder) ds.pop_front();
        if (!notify(cb, i, n, x, denoised)) return cancelled(i, n);
        const int cur_order = std::min(i + 1, kOrder);
        Tensor next = x.clone();
        for (int j = 0; j < cur_order; ++j) {  // coefficient j pairs with the j-th newest derivative
            const double c = linear_multistep_coeff(cur_order, sigmas, i, j);
            const Tensor& d = ds[ds.size() - 1 - size_t(j)];
            float* o = next.data();
            for (int64_t e = 0; e < next.numel(); ++e) o[e] = float(o[e] + c * double(d.data()[e]));
        }
        x = std::move(next);
    }
    return x;
}

Result<Tensor> sample_dpmpp_2m(const Denoiser& model, Tensor x, std::span<const float> sigmas, NoiseSource&,
                               const StepCallback& cb) {
    const int n = detail::n_steps(sigmas);
    Tensor old_denoised;
    for (int i = 0; i < n; ++i) {
        Tensor denoised = model(x, sigmas[i]);
        if (!notify(cb, i, n, x, denoised)) return cancelled(i, n);
        const double s = sigmas[i], s_next = sigmas[i + 1];
        if (s_next == 0) {  // t_next = inf: x = denoised
            x = denoised.clone();
        } else {
            const double t = -std::log(s), t_next = -std::log(s_next), h = t_next - t;
            const double a = s_next / s, b = -std::expm1(-h);
            if (!old_denoised.defined()) {
                x = lincomb({{a, &x}, {b, &denoised}});
            } else {
                const double h_last = t + std::log(double(sigmas[i - 1]));
                const double r = h_last / h;
                x = lincomb({{a, &x}, {b * (1 + 1 / (2 * r)), &denoised}, {-b / (2 * r), &old_denoised}});
            }
        }
        old_denoised = std::move(denoised);
    }
    return x;
}

}  // namespace nb::sampling
