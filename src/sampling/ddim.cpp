// ldm DDIMSampler (ddim.py, ddim_discretize "uniform") driven by the k-space Denoiser.
#include <algorithm>
#include <cmath>
#include <limits>

#include "sampling/sampler.h"
#include "sampling/sampler_util.h"

namespace nb::sampling {

DdimPlan make_ddim_plan(const DiscreteSchedule& schedule, int steps, double eta) {
    DdimPlan p;
    const int T = schedule.n_timesteps();
    const int stride = std::max(1, T / std::max(steps, 1));
    for (int t = 0; t < T; t += stride) p.timesteps.push_back(std::min(t + 1, T - 1));  // A1111 clips to 999
    const auto& ac = schedule.alphas_cumprod();
    for (size_t i = 0; i < p.timesteps.size(); ++i) {
        const float a = ac[size_t(p.timesteps[i])];
        const float a_prev = i == 0 ? ac[0] : ac[size_t(p.timesteps[i - 1])];  // ldm: alphas_cumprod[0], not 1
        p.alphas.push_back(a);
        p.alphas_prev.push_back(a_prev);
        p.sigmas.push_back(float(eta * std::sqrt((1.0 - a_prev) / (1.0 - a) * (1.0 - double(a) / a_prev))));
        p.k_sigmas.push_back(schedule.sigmas()[size_t(p.timesteps[i])]);
    }
    return p;
}

// eps prediction from the k-space denoiser at VP input x (t with sigma = sqrt((1 - a_t) / a_t)).
static Tensor eps_from_denoiser(const Denoiser& model, const Tensor& x_vp, float sigma) {
    const double scale = std::sqrt(1.0 + double(sigma) * sigma);
    Tensor x_k = detail::lincomb({{scale, &x_vp}});
    Tensor denoised = model(x_k, sigma);
    return detail::lincomb({{1.0 / sigma, &x_k}, {-1.0 / sigma, &denoised}});
}

Result<Tensor> sample_ddim(const Denoiser& model, Tensor x, const DdimPlan& plan, NoiseSource& noise,
                           const StepCallback& cb) {
    const int total = int(plan.timesteps.size());
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (int i = 0; i < total; ++i) {
        const size_t idx = size_t(total - 1 - i);  // from the last (noisiest) timestep down
        const double a_t = plan.alphas[idx], a_prev = plan.alphas_prev[idx], sigma_t = plan.sigmas[idx];
        Tensor e = eps_from_denoiser(model, x, plan.k_sigmas[idx]);
        // pred_x0 = (x - sqrt(1 - a_t) e) / sqrt(a_t)
        Tensor pred_x0 = detail::lincomb({{1.0 / std::sqrt(a_t), &x}, {-std::sqrt(1.0 - a_t) / std::sqrt(a_t), &e}});
        Tensor z = noise.sample(nan, nan);  // drawn every step, as ldm's noise_like
        // x_prev = sqrt(a_prev) pred_x0 + sqrt(1 - a_prev - sigma_t^2) e + sigma_t z
        const double dir = std::sqrt(std::max(0.0, 1.0 - a_prev - sigma_t * sigma_t));
        x = detail::lincomb({{std::sqrt(a_prev), &pred_x0}, {dir, &e}, {sigma_t, &z}});
        if (!detail::notify(cb, i, total, x, pred_x0)) return detail::cancelled(i, total);
    }
    return x;
}

}  // namespace nb::sampling
