// Stochastic k-diffusion samplers (sampling.py @ ab527a9, eta 1, s_noise 1), A1111's sample_lcm and TCD.
// Noise comes from noise.sample(sigma, sigma_next) exactly where the reference calls noise_sampler.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "sampling/sampler.h"
#include "sampling/sampler_util.h"

namespace nb::sampling {

using detail::ancestral_step;
using detail::cancelled;
using detail::lincomb;
using detail::notify;
using detail::to_d;

Result<Tensor> sample_euler_ancestral(const Denoiser& model, Tensor x, std::span<const float> sigmas,
                                      NoiseSource& noise, const StepCallback& cb) {
    const int n = detail::n_steps(sigmas);
    for (int i = 0; i < n; ++i) {
        const double s = sigmas[i], s_next = sigmas[i + 1];
        Tensor denoised = model(x, sigmas[i]);
        auto [down, up] = ancestral_step(s, s_next);
        if (!notify(cb, i, n, x, denoised)) return cancelled(i, n);
        Tensor d = to_d(x, s, denoised);
        x = lincomb({{1.0, &x}, {down - s, &d}});
        if (s_next > 0) {
            Tensor z = noise.sample(s, s_next);
            x = lincomb({{1.0, &x}, {up, &z}});
        }
    }
    return x;
}

Result<Tensor> sample_dpm_2_ancestral(const Denoiser& model, Tensor x, std::span<const float> sigmas,
                                      NoiseSource& noise, const StepCallback& cb) {
    const int n = detail::n_steps(sigmas);
    for (int i = 0; i < n; ++i) {
        const double s = sigmas[i], s_next = sigmas[i + 1];
        Tensor denoised = model(x, sigmas[i]);
        auto [down, up] = ancestral_step(s, s_next);
        if (!notify(cb, i, n, x, denoised)) return cancelled(i, n);
        Tensor d = to_d(x, s, denoised);
        if (down == 0) {
            x = lincomb({{1.0, &x}, {down - s, &d}});
            continue;
        }
        const float s_mid = float(std::exp(0.5 * (std::log(s) + std::log(float(down)))));
        Tensor x_2 = lincomb({{1.0, &x}, {s_mid - s, &d}});
        Tensor denoised_2 = model(x_2, s_mid);
        Tensor d_2 = to_d(x_2, s_mid, denoised_2);
        Tensor z = noise.sample(s, s_next);
        x = lincomb({{1.0, &x}, {down - s, &d_2}, {up, &z}});
    }
    return x;
}

// DPM-Solver++ in t = -log(sigma): sigma_fn(t) = exp(-t).
Result<Tensor> sample_dpmpp_2s_ancestral(const Denoiser& model, Tensor x, std::span<const float> sigmas,
                                         NoiseSource& noise, const StepCallback& cb) {
    const int n = detail::n_steps(sigmas);
    for (int i = 0; i < n; ++i) {
        const double s = sigmas[i], s_next = sigmas[i + 1];
        Tensor denoised = model(x, sigmas[i]);
        auto [down, up] = ancestral_step(s, s_next);
        if (!notify(cb, i, n, x, denoised)) return cancelled(i, n);
        if (down == 0) {
            Tensor d = to_d(x, s, denoised);
            x = lincomb({{1.0, &x}, {down - s, &d}});
        } else {
            const double t = -std::log(s), t_next = -std::log(down), h = t_next - t, t_mid = t + 0.5 * h;
            Tensor x_2 = lincomb({{std::exp(-t_mid) / s, &x}, {-std::expm1(-0.5 * h), &denoised}});
            Tensor denoised_2 = model(x_2, float(std::exp(-t_mid)));
            x = lincomb({{down / s, &x}, {-std::expm1(-h), &denoised_2}});
        }
        if (s_next > 0) {
            Tensor z = noise.sample(s, s_next);
            x = lincomb({{1.0, &x}, {up, &z}});
        }
    }
    return x;
}

// One ancestral DPM-Solver++ substep from sigma s (t) towards sigma_target with x0 estimate `den`:
// x = (sd / s) x - expm1(t - t(sd)) den + su * noise(s, sigma_target).
static Tensor sde_substep(const Tensor& x, const Tensor& den, double s, double sigma_target, NoiseSource& noise) {
    auto [sd, su] = ancestral_step(s, sigma_target);
    Tensor z = noise.sample(s, sigma_target);
    return lincomb({{sd / s, &x}, {-std::expm1(std::log(sd) - std::log(s)), &den}, {su, &z}});
}

Result<Tensor> sample_dpmpp_sde(const Denoiser& model, Tensor x, std::span<const float> sigmas, NoiseSource& noise,
                                const StepCallback& cb) {
    const int n = detail::n_steps(sigmas);
    constexpr double r = 0.5;  // fac = 1 / (2r) = 1: the second step uses denoised_2 alone
    for (int i = 0; i < n; ++i) {
        const double s = sigmas[i], s_next = sigmas[i + 1];
        Tensor denoised = model(x, sigmas[i]);
        if (!notify(cb, i, n, x, denoised)) return cancelled(i, n);
        if (s_next == 0) {
            Tensor d = to_d(x, s, denoised);
            x = lincomb({{1.0, &x}, {s_next - s, &d}});
            continue;
        }
        const double t = -std::log(s), h = -std::log(s_next) - t;
        const double s_mid = std::exp(-(t + h * r));
        Tensor x_2 = sde_substep(x, denoised, s, s_mid, noise);
        Tensor denoised_2 = model(x_2, float(s_mid));
        const double fac = 1 / (2 * r);
        Tensor denoised_d = lincomb({{1 - fac, &denoised}, {fac, &denoised_2}});
        x = sde_substep(x, denoised_d, s, s_next, noise);
    }
    return x;
}

Result<Tensor> sample_dpmpp_2m_sde(const Denoiser& model, Tensor x, std::span<const float> sigmas,
                                   NoiseSource& noise, const StepCallback& cb) {
    const int n = detail::n_steps(sigmas);
    constexpr double eta = 1.0;
    Tensor old_denoised;
    double h_last = 0;
    for (int i = 0; i < n; ++i) {
        const double s = sigmas[i], s_next = sigmas[i + 1];
        Tensor denoised = model(x, sigmas[i]);
        if (!notify(cb, i, n, x, denoised)) return cancelled(i, n);
        double h = h_last;
        if (s_next == 0) {
            x = denoised.clone();
        } else {
            h = std::log(s) - std::log(s_next);
            const double eta_h = eta * h, phi = -std::expm1(-h - eta_h);
            x = lincomb({{s_next / s * std::exp(-eta_h), &x}, {phi, &denoised}});
            if (old_denoised.defined()) {  // midpoint correction, r = h_last / h
                const double c = 0.5 * phi * (h / h_last);
                x = lincomb({{1.0, &x}, {c, &denoised}, {-c, &old_denoised}});
            }
            Tensor z = noise.sample(s, s_next);
            x = lincomb({{1.0, &x}, {s_next * std::sqrt(-std::expm1(-2 * eta_h)), &z}});
        }
        old_denoised = std::move(denoised);
        h_last = h;
    }
    return x;
}

Result<Tensor> sample_dpmpp_3m_sde(const Denoiser& model, Tensor x, std::span<const float> sigmas,
                                   NoiseSource& noise, const StepCallback& cb) {
    const int n = detail::n_steps(sigmas);
    constexpr double eta = 1.0;
    Tensor den_1, den_2;                      // previous two x0 estimates
    double h = NAN, h_1 = NAN, h_2 = NAN;     // NaN = not yet set (None in the reference)
    for (int i = 0; i < n; ++i) {
        const double s = sigmas[i], s_next = sigmas[i + 1];
        Tensor denoised = model(x, sigmas[i]);
        if (!notify(cb, i, n, x, denoised)) return cancelled(i, n);
        if (s_next == 0) {
            x = denoised.clone();
        } else {
            h = std::log(s) - std::log(s_next);
            const double h_eta = h * (eta + 1);
            x = lincomb({{std::exp(-h_eta), &x}, {-std::expm1(-h_eta), &denoised}});
            const double phi_2 = std::expm1(-h_eta) / h_eta + 1;
            if (!std::isnan(h_2)) {
                const double r0 = h_1 / h, r1 = h_2 / h;
                // d1_0 = (D - D1) / r0, d1_1 = (D1 - D2) / r1; d1 = d1_0 + (d1_0 - d1_1) r0 / (r0 + r1);
                // d2 = (d1_0 - d1_1) / (r0 + r1); x += phi_2 d1 - phi_3 d2.
                const double phi_3 = phi_2 / h_eta - 0.5;
                const double k = r0 / (r0 + r1), q = 1 / (r0 + r1);
                const double c0 = (phi_2 * (1 + k) - phi_3 * q) / r0;  // coefficient of d1_0
                const double c1 = (-phi_2 * k + phi_3 * q) / r1;       // coefficient of d1_1
                x = lincomb({{1.0, &x}, {c0, &denoised}, {c1 - c0, &den_1}, {-c1, &den_2}});
            } else if (!std::isnan(h_1)) {
                const double c = phi_2 / (h_1 / h);
                x = lincomb({{1.0, &x}, {c, &denoised}, {-c, &den_1}});
            }
            Tensor z = noise.sample(s, s_next);
            x = lincomb({{1.0, &x}, {s_next * std::sqrt(-std::expm1(-2 * h * eta)), &z}});
        }
        den_2 = std::move(den_1);
        den_1 = std::move(denoised);
        h_2 = h_1;
        h_1 = h;
    }
    return x;
}

Result<Tensor> sample_lcm(const Denoiser& model, Tensor x, std::span<const float> sigmas, NoiseSource& noise,
                          const StepCallback& cb) {
    const int n = detail::n_steps(sigmas);
    for (int i = 0; i < n; ++i) {
        Tensor denoised = model(x, sigmas[i]);
        if (!notify(cb, i, n, x, denoised)) return cancelled(i, n);
        x = denoised.clone();
        if (sigmas[i + 1] > 0) {
            Tensor z = noise.sample(sigmas[i], sigmas[i + 1]);
            x = lincomb({{1.0, &x}, {double(sigmas[i + 1]), &z}});
        }
    }
    return x;
}

std::vector<float> tcd_alpha_prod_s(const DiscreteSchedule& schedule, std::span<const float> sigmas, double gamma) {
    std::vector<float> a(sigmas.size());
    const auto& ac = schedule.alphas_cumprod();
    for (size_t i = 0; i < sigmas.size(); ++i) {
        // floor((1 - gamma) * t(sigma)), the last one 0 (ComfyUI's SamplerTCD, timesteps_s[-1] = 0)
        // (+1e-4: a sigma of the table must give its own timestep, which sigma_to_t's double arithmetic can
        // return a hair below; ComfyUI's float32 lookup returns it exactly.)
        int t = 0;
        if (i + 1 < sigmas.size() && sigmas[i] > 0)
            t = std::clamp(int(std::floor((1.0 - gamma) * schedule.sigma_to_t(sigmas[i]) + 1e-4)), 0, int(ac.size()) - 1);
        a[i] = ac[size_t(t)];
    }
    return a;
}

Result<Tensor> sample_tcd(const Denoiser& model, Tensor x, std::span<const float> sigmas,
                          std::span<const float> alpha_prod_s, double gamma, NoiseSource& noise,
                          const StepCallback& cb) {
    const int n = detail::n_steps(sigmas);
    if (alpha_prod_s.size() != sigmas.size())
        return make_error(Errc::internal, "TCD: {} alpha values for {} sigmas", alpha_prod_s.size(), sigmas.size());
    for (int i = 0; i < n; ++i) {
        Tensor denoised = model(x, sigmas[i]);
        if (!notify(cb, i, n, x, denoised)) return cancelled(i, n);  // previews and interrupts show x0
        // eps from the prediction, then both moved to the intermediate timestep s' = (1 - gamma) s in VP form.
        const double a = alpha_prod_s[size_t(i) + 1], sa = std::sqrt(a), sb = std::sqrt(1.0 - a);
        const double inv = 1.0 / double(sigmas[i]);
        Tensor x_s = lincomb({{sa - sb * inv, &denoised}, {sb * inv, &x}});  // sqrt(a) x0 + sqrt(1-a) eps
        const double next = sigmas[i + 1];
        if (gamma > 0 && next > 0) {
            // Back to k-diffusion's VE space at s' (divide by sqrt(a)), then fresh noise up to sigma_next:
            // variance sigma_next^2 - sigma_s'^2 = sigma_next^2 + 1 - 1 / a.
            Tensor z = noise.sample(sigmas[i], next);
            const double up = std::sqrt(std::max(0.0, next * next + 1.0 - 1.0 / a));
            x = lincomb({{1.0 / sa, &x_s}, {up, &z}});
        } else {
            x = lincomb({{std::sqrt(1.0 + next * next), &x_s}});  // s' = the next timestep: VP -> VE there
        }
    }
    return x;
}

}  // namespace nb::sampling
