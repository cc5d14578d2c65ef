// k-diffusion samplers (crowsonkb/k-diffusion sampling.py, A1111's sample_lcm) and ldm's DDIM as small pure
// functions over a denoiser callback (STYLE.md #10). They see the model only through `Denoiser`.
#pragma once

#include <functional>
#include <span>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "sampling/rng.h"
#include "sampling/schedule.h"

namespace nb::sampling {

// x: [N, C, H, W] in k-diffusion space (x = x0 + sigma * eps) -> denoised x0 prediction, same shape.
using Denoiser = std::function<Tensor(const Tensor& x, float sigma)>;
// Called once per step after the model call (k-diffusion's callback): step in [0, total). Return false to
// cancel; the sampler then returns Errc::cancelled.
using StepCallback = std::function<bool(int step, int total, const Tensor& x, const Tensor& denoised)>;

// Every sampler: x = initial noise * sigmas[0]; sigmas = [n + 1] ending in 0; noise drawn from `noise`
// in the same order as k-diffusion's noise_sampler(sigma, sigma_next) calls. Returns the final x.
using SamplerFn = Result<Tensor> (*)(const Denoiser& model, Tensor x, std::span<const float> sigmas,
                                     NoiseSource& noise, const StepCallback& callback);

Result<Tensor> sample_euler(const Denoiser&, Tensor x, std::span<const float> sigmas, NoiseSource&, const StepCallback&);
Result<Tensor> sample_euler_ancestral(const Denoiser&, Tensor x, std::span<const float> sigmas, NoiseSource&,
                                      const StepCallback&);  // eta 1
Result<Tensor> sample_heun(const Denoiser&, Tensor x, std::span<const float> sigmas, NoiseSource&, const StepCallback&);
Result<Tensor> sample_dpm_2(const Denoiser&, Tensor x, std::span<const float> sigmas, NoiseSource&, const StepCallback&);
Result<Tensor> sample_dpm_2_ancestral(const Denoiser&, Tensor x, std::span<const float> sigmas, NoiseSource&,
                                      const StepCallback&);  // eta 1
Result<Tensor> sample_lms(const Denoiser&, Tensor x, std::span<const float> sigmas, NoiseSource&,
                          const StepCallback&);  // order 4
Result<Tensor> sample_dpmpp_2s_ancestral(const Denoiser&, Tensor x, std::span<const float> sigmas, NoiseSource&,
                                         const StepCallback&);  // eta 1
Result<Tensor> sample_dpmpp_sde(const Denoiser&, Tensor x, std::span<const float> sigmas, NoiseSource&,
                                const StepCallback&);  // eta 1, r = 1/2 (2 noise draws per step)
Result<Tensor> sample_dpmpp_2m(const Denoiser&, Tensor x, std::span<const float> sigmas, NoiseSource&,
                               const StepCallback&);
Result<Tensor> sample_dpmpp_2m_sde(const Denoiser&, Tensor x, std::span<const float> sigmas, NoiseSource&,
                                   const StepCallback&);  // eta 1, midpoint
Result<Tensor> sample_dpmpp_3m_sde(const Denoiser&, Tensor x, std::span<const float> sigmas, NoiseSource&,
                                   const StepCallback&);  // eta 1
Result<Tensor> sample_lcm(const Denoiser&, Tensor x, std::span<const float> sigmas, NoiseSource&,
                          const StepCallback&);  // A1111 sd_samplers_lcm.sample_lcm

// TCD (Trajectory Consistency Distillation, Zheng et al. 2024) as ComfyUI's SamplerTCD: each step predicts x0 and
// eps, moves both to the intermediate timestep s' = floor((1 - gamma) t(sigma_next)) (VP form, alpha_prod_s[i+1]
// = alphas_cumprod[s'], the last s' = 0), then adds fresh noise from s' up to sigma_next. gamma 0 is a
// deterministic step (Euler's, x0 + sigma_next eps); gamma 1 jumps to x0 and renoises, as LCM does.
std::vector<float> tcd_alpha_prod_s(const DiscreteSchedule& schedule, std::span<const float> sigmas, double gamma);
Result<Tensor> sample_tcd(const Denoiser&, Tensor x, std::span<const float> sigmas, std::span<const float> alpha_prod_s,
                          double gamma, NoiseSource&, const StepCallback&);
inline constexpr double kTcdGamma = 0.3;  // ComfyUI's SamplerTCD and the paper's default

// ∫ over [sigmas[i], sigmas[i+1]] of the Lagrange basis polynomial j built on sigmas[i], ..., sigmas[i-order+1]
// (k-diffusion linear_multistep_coeff; integrated exactly with Gauss-Legendre).
double linear_multistep_coeff(int order, std::span<const float> sigmas, int i, int j);

// ---- DDIM (ldm DDIMSampler, ddim_discretize "uniform", A1111 timestep grid) ------------------------------

struct DdimPlan {
    std::vector<int> timesteps;                 // ascending: range(0, T, T / steps) + 1, clipped to T - 1
    std::vector<float> alphas, alphas_prev;     // [S] alphas_cumprod at t_i and t_{i-1} (alphas_cumprod[0] for i = 0)
    std::vector<float> sigmas;                  // [S] eta * sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
    std::vector<float> k_sigmas;                // [S] sigmas_table[t_i]: the sigma the Denoiser is called with
};
DdimPlan make_ddim_plan(const DiscreteSchedule& schedule, int steps, double eta);

// x_T: [N, C, H, W] in VP space (= the initial noise, NOT scaled by a sigma); returns ldm's x_0 (VP space,
// what the VAE decodes). Steps run from the last timestep to the first. The model is the same k-space
// Denoiser as for the other samplers: x_k = x_vp * sqrt(1 + sigma^2), eps = (x_k - D(x_k, sigma)) / sigma.
// One noise draw per step even when eta = 0 (ldm calls noise_like every step; keeps streams aligned).
// The callback gets (step, total, x after the step, pred_x0).
Result<Tensor> sample_ddim(const Denoiser& model, Tensor x_T, const DdimPlan& plan, NoiseSource& noise,
                           const StepCallback& callback);

}  // namespace nb::sampling
