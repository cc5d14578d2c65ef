// Noise schedules of SD (ldm / k-diffusion): the discrete DDPM table and the sigma lists samplers run on.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace nb::sampling {

// k-diffusion DiscreteSchedule over ldm's alphas_cumprod. All tables are float32 as the reference keeps them.
class DiscreteSchedule {
public:
    // SD1/SD2 default: ldm make_beta_schedule("linear", 1000, 0.00085, 0.012) =
    // linspace(sqrt(0.00085), sqrt(0.012), 1000)^2 in float64 ("scaled_linear" in diffusers).
    static DiscreteSchedule sd_default();
    static DiscreteSchedule from_betas(const std::vector<double>& betas);
    // From a checkpoint's alphas_cumprod buffer (float32); sigmas = ((1 - ac) / ac)^0.5 in float32.
    static DiscreteSchedule from_alphas_cumprod(std::vector<float> alphas_cumprod);

    int n_timesteps() const { return int(alphas_cumprod_.size()); }
    const std::vector<float>& alphas_cumprod() const { return alphas_cumprod_; }
    const std::vector<float>& sigmas() const { return sigmas_; }          // [T], increasing
    const std::vector<float>& log_sigmas() const { return log_sigmas_; }  // [T]
    float sigma_min() const { return sigmas_.front(); }
    float sigma_max() const { return sigmas_.back(); }

    // k-diffusion DiscreteSchedule.sigma_to_t (quantize=False): linear in log-sigma between table entries.
    double sigma_to_t(double sigma) const;
    // k-diffusion DiscreteSchedule.t_to_sigma: exp of the lerp of log_sigmas at floor/ceil(t).
    double t_to_sigma(double t) const;

    // A1111 LCMCompVisDenoiser: 50 "original" timesteps 19, 39, ..., 999 (skip 20).
    std::vector<float> lcm_sigmas() const;           // [50] sigmas of those timesteps
    double lcm_sigma_to_t(double sigma) const;       // argmin |log s - log_sigmas50| * 20 + 19
    double lcm_t_to_sigma(double t) const;           // t -> (t - 19) / 20, interpolated in the 50-table

private:
    std::vector<float> alphas_cumprod_, sigmas_, log_sigmas_;
};

enum class Scheduler {
    normal,       // CompVisDenoiser.get_sigmas: t = linspace(T-1, 0, n) (A1111 "Uniform", sd.cpp "discrete")
    karras,       // Karras et al. rho = 7 between the table's sigma_min and sigma_max
    exponential,  // uniform in log sigma
    sgm_uniform,  // t = linspace(t_max, t_min, n + 1)[:-1]
    lcm,          // A1111 LCMCompVisDenoiser.get_sigmas
};

// "discrete" (A1111 label "Uniform"), "karras", "exponential", "sgm_uniform" ("SGM Uniform"), "lcm";
// case-insensitive.
Result<Scheduler> parse_scheduler(std::string_view name);
const char* scheduler_name(Scheduler s);   // CLI name: "discrete", "karras", ...
const char* scheduler_label(Scheduler s);  // A1111 "Schedule type" label: "Uniform", "Karras", ...

// n sigmas from high to low followed by 0: [n + 1].
std::vector<float> get_sigmas(const DiscreteSchedule& schedule, Scheduler kind, int n);
// A1111 discard_next_to_last_sigma (DPM2, DPM2 a, DPM++ 3M SDE): get_sigmas(n + 1), drop sigmas[-2].
std::vector<float> get_sigmas_discard_penultimate(const DiscreteSchedule& schedule, Scheduler kind, int n);

// torch.linspace for float32 (CPU kernel: start + step*i for the first half, end - step*(n-1-i) after).
std::vector<float> linspace_f32(float start, float end, int n);

}  // namespace nb::sampling
