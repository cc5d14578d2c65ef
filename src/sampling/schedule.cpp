#include "sampling/schedule.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

namespace nb::sampling {

std::vector<float> linspace_f32(float start, float end, int n) {
    std::vector<float> out(size_t(std::max(n, 0)));
    if (n == 1) out[0] = start;
    if (n <= 1) return out;
    const float step = (end - start) / float(n - 1);
    const int halfway = n / 2;
    for (int i = 0; i < n; ++i) out[i] = i < halfway ? start + step * float(i) : end - step * float(n - 1 - i);
    return out;
}

DiscreteSchedule DiscreteSchedule::sd_default() {
    const int n = 1000;
    const double a = std::sqrt(0.00085), b = std::sqrt(0.012);
    std::vector<double> betas(n);
    const double step = (b - a) / (n - 1);
    for (int i = 0; i < n; ++i) {
        double v = i < n / 2 ? a + step * i : b - step * (n - 1 - i);  // torch.linspace float64
        betas[i] = v * v;
    }
    return from_betas(betas);
}

DiscreteSchedule DiscreteSchedule::from_betas(const std::vector<double>& betas) {
    std::vector<float> ac(betas.size());
    double prod = 1.0;  // np.cumprod(1 - betas) in float64, stored as float32 (ldm register_schedule)
    for (size_t i = 0; i < betas.size(); ++i) ac[i] = float(prod *= 1.0 - betas[i]);
    return from_alphas_cumprod(std::move(ac));
}

DiscreteSchedule DiscreteSchedule::from_alphas_cumprod(std::vector<float> alphas_cumprod) {
    DiscreteSchedule s;
    s.alphas_cumprod_ = std::move(alphas_cumprod);
    for (float ac : s.alphas_cumprod_) {
        float sigma = std::sqrt((1.0f - ac) / ac);
        s.sigmas_.push_back(sigma);
        s.log_sigmas_.push_back(std::log(sigma));
    }
    return s;
}

double DiscreteSchedule::sigma_to_t(double sigma) const {
    const double ls = std::log(sigma);
    const int n = n_timesteps();
    // low = last index with log_sigmas[i] <= log(sigma) (0 if none), clamped to n - 2.
    int low = 0;
    for (int i = 0; i < n; ++i)
        if (ls - log_sigmas_[i] >= 0) low = i;
    low = std::min(low, n - 2);
    const double lo = log_sigmas_[low], hi = log_sigmas_[low + 1];
    const double w = std::clamp((lo - ls) / (lo - hi), 0.0, 1.0);
    return (1 - w) * low + w * (low + 1);
}

static double interp_log_sigma(const std::vector<float>& log_sigmas, double t) {
    t = std::clamp(t, 0.0, double(log_sigmas.size() - 1));
    const int lo = int(std::floor(t)), hi = int(std::ceil(t));
    const double w = t - lo;
    return std::exp((1 - w) * log_sigmas[lo] + w * log_sigmas[hi]);
}

double DiscreteSchedule::t_to_sigma(double t) const { return interp_log_sigma(log_sigmas_, t); }

// LCM: alphas_cumprod_valid[k] = alphas_cumprod[20k + 19], k = 0..49 (A1111 sd_samplers_lcm.py).
constexpr int kLcmOriginal = 50;

std::vector<float> DiscreteSchedule::lcm_sigmas() const {
    const int skip = n_timesteps() / kLcmOriginal;
    std::vector<float> out;
    for (int k = 0; k < kLcmOriginal; ++k) out.push_back(sigmas_[size_t(skip * k + skip - 1)]);
    return out;
}

double DiscreteSchedule::lcm_sigma_to_t(double sigma) const {
    const int skip = n_timesteps() / kLcmOriginal;
    const std::vector<float> s50 = lcm_sigmas();
    int best = 0;
    double best_d = INFINITY;
    for (int k = 0; k < kLcmOriginal; ++k) {
        double d = std::fabs(std::log(sigma) - std::log(double(s50[k])));
        if (d < best_d) best_d = d, best = k;  // first minimum, as argmin
    }
    return double(best * skip + skip - 1);
}

double DiscreteSchedule::lcm_t_to_sigma(double t) const {
    const int skip = n_timesteps() / kLcmOriginal;
    std::vector<float> log50;
    for (float s : lcm_sigmas()) log50.push_back(std::log(s));
    return interp_log_sigma(log50, (t - (skip - 1)) / skip);
}

// ---- sigma lists ----------------------------------------------------------------------------------

namespace {

std::vector<float> sigmas_normal(const DiscreteSchedule& s, int n) {
    std::vector<float> out;
    for (float t : linspace_f32(float(s.n_timesteps() - 1), 0.0f, n)) out.push_back(float(s.t_to_sigma(t)));
    return out;
}

// k-diffusion get_sigmas_karras; sigma_min/max are Python floats of the float32 table ends (A1111).
std::vector<float> sigmas_karras(double sigma_min, double sigma_max, int n, double rho = 7.0) {
    const double min_inv = std::pow(sigma_min, 1 / rho), max_inv = std::pow(sigma_max, 1 / rho);
    std::vector<float> out;
    for (float ramp : linspace_f32(0.0f, 1.0f, n)) out.push_back(float(std::pow(max_inv + ramp * (min_inv - max_inv), rho)));
    return out;
}

std::vector<float> sigmas_exponential(double sigma_min, double sigma_max, int n) {
    std::vector<float> out;
    for (float l : linspace_f32(float(std::log(sigma_max)), float(std::log(sigma_min)), n))
        out.push_back(std::exp(l));
    return out;
}

// ComfyUI / A1111 sgm_uniform: n + 1 timesteps from t(sigma_max) to t(sigma_min), the last dropped.
std::vector<float> sigmas_sgm_uniform(const DiscreteSchedule& s, int n) {
    const float t_max = float(s.sigma_to_t(s.sigma_max())), t_min = float(s.sigma_to_t(s.sigma_min()));
    std::vector<float> ts = linspace_f32(t_max, t_min, n + 1);
    std::vector<float> out;
    for (int i = 0; i < n; ++i) out.push_back(float(s.t_to_sigma(ts[size_t(i)])));
    return out;
}

// A1111 LCMCompVisDenoiser.get_sigmas: t = linspace(sigma_to_t(sigma_max), sigma_to_t(sigma_min), n).
std::vector<float> sigmas_lcm(const DiscreteSchedule& s, int n) {
    const std::vector<float> s50 = s.lcm_sigmas();
    const float start = float(s.lcm_sigma_to_t(s50.back())), end = float(s.lcm_sigma_to_t(s50.front()));
    std::vector<float> out;
    for (float t : linspace_f32(start, end, n)) out.push_back(float(s.lcm_t_to_sigma(t)));
    return out;
}

}  // namespace

std::vector<float> get_sigmas(const DiscreteSchedule& schedule, Scheduler kind, int n) {
    std::vector<float> out;
    if (n <= 0) return {0.0f};
    switch (kind) {
        case Scheduler::normal: out = sigmas_normal(schedule, n); break;
        case Scheduler::karras: out = sigmas_karras(schedule.sigma_min(), schedule.sigma_max(), n); break;
        case Scheduler::exponential: out = sigmas_exponential(schedule.sigma_min(), schedule.sigma_max(), n); break;
        case Scheduler::sgm_uniform: out = sigmas_sgm_uniform(schedule, n); break;
        case Scheduler::lcm: out = sigmas_lcm(schedule, n); break;
    }
    out.push_back(0.0f);  // append_zero
    return out;
}

std::vector<float> get_sigmas_discard_penultimate(const DiscreteSchedule& schedule, Scheduler kind, int n) {
    std::vector<float> s = get_sigmas(schedule, kind, n + 1);
    if (s.size() >= 2) s.erase(s.end() - 2);
    return s;
}

// ---- names ------------------------------------------------------------------------------------------

Result<Scheduler> parse_scheduler(std::string_view name) {
    std::string s(name);
    std::ranges::transform(s, s.begin(), [](unsigned char c) { return c == ' ' || c == '-' ? '_' : char(std::tolower(c)); });
    // "Uniform" is A1111's label for the model's own sigmas (its "Normal" is another schedule).
    if (s == "discrete" || s == "uniform") return Scheduler::normal;
    if (s == "karras") return Scheduler::karras;
    if (s == "exponential") return Scheduler::exponential;
    if (s == "sgm_uniform") return Scheduler::sgm_uniform;
    if (s == "lcm") return Scheduler::lcm;
    return make_error(Errc::invalid_argument,
                      "unknown scheduler '{}' (valid: discrete, karras, exponential, sgm_uniform, lcm, automatic; or the A1111 "
                      "labels Uniform, Karras, Exponential, SGM Uniform)", name);
}

const char* scheduler_name(Scheduler s) {
    switch (s) {
        case Scheduler::normal: return "discrete";
        case Scheduler::karras: return "karras";
        case Scheduler::exponential: return "exponential";
        case Scheduler::sgm_uniform: return "sgm_uniform";
        case Scheduler::lcm: return "lcm";
    }
    return "?";
}

const char* scheduler_label(Scheduler s) {
    switch (s) {
        case Scheduler::normal: return "Uniform";  // A1111's "Uniform" is the model's own get_sigmas
        case Scheduler::karras: return "Karras";
        case Scheduler::exponential: return "Exponential";
        case Scheduler::sgm_uniform: return "SGM Uniform";
        case Scheduler::lcm: return "LCM";
    }
    return "?";
}

}  // namespace nb::sampling
