#include "sampling/registry.h"

#include <array>
#include <cctype>
#include <string>

namespace nb::sampling {

namespace {

// Automatic schedulers as A1111 1.9+ modules/sd_samplers_kdiffusion.py samplers_k_diffusion options
// (Euler/Euler a/LMS/Heun use the model's own sigmas = "normal"); LCM uses LCMCompVisDenoiser's schedule;
// DDIM runs on its own timestep grid (scheduler unused).
// Columns: kind, CLI name, A1111 label, function, Automatic scheduler, discard_penultimate, stochastic.
constexpr std::array<SamplerInfo, 14> kSamplers = {{
    {SamplerKind::euler, "euler", "Euler", sample_euler, Scheduler::normal, false, false},
    {SamplerKind::euler_a, "euler_a", "Euler a", sample_euler_ancestral, Scheduler::normal, false, true},
    {SamplerKind::heun, "heun", "Heun", sample_heun, Scheduler::normal, false, false},
    {SamplerKind::dpm2, "dpm2", "DPM2", sample_dpm_2, Scheduler::karras, true, false},
    {SamplerKind::dpm2_a, "dpm2_a", "DPM2 a", sample_dpm_2_ancestral, Scheduler::karras, true, true},
    {SamplerKind::dpmpp_2s_a, "dpm++2s_a", "DPM++ 2S a", sample_dpmpp_2s_ancestral, Scheduler::karras, false, true},
    {SamplerKind::dpmpp_2m, "dpm++2m", "DPM++ 2M", sample_dpmpp_2m, Scheduler::karras, false, false},
    {SamplerKind::dpmpp_2m_sde, "dpm++2m_sde", "DPM++ 2M SDE", sample_dpmpp_2m_sde, Scheduler::exponential, false, true},
    {SamplerKind::dpmpp_sde, "dpm++_sde", "DPM++ SDE", sample_dpmpp_sde, Scheduler::karras, false, true},
    {SamplerKind::dpmpp_3m_sde, "dpm++3m_sde", "DPM++ 3M SDE", sample_dpmpp_3m_sde, Scheduler::exponential, true, true},
    {SamplerKind::lms, "lms", "LMS", sample_lms, Scheduler::normal, false, false},
    {SamplerKind::lcm, "lcm", "LCM", sample_lcm, Scheduler::lcm, false, true},
    {SamplerKind::ddim, "ddim", "DDIM", nullptr, Scheduler::normal, false, false},
    // Not in A1111 (ComfyUI's and stable-diffusion.cpp's "tcd"); Automatic = SGM uniform, the schedule ComfyUI
    // pairs with its few-step samplers (the model's own timesteps, evenly spaced, on the standard denoiser).
    {SamplerKind::tcd, "tcd", "TCD", nullptr, Scheduler::sgm_uniform, false, true},
}};

// Replaces the first `from` in s by `to` (a new string: GCC 12 warns falsely on in-place replace).
std::string replace_first(const std::string& s, std::string_view from, std::string_view to) {
    const auto p = s.find(from);
    if (p == std::string::npos) return s;
    return s.substr(0, p) + std::string(to) + s.substr(p + from.size());
}

// Lower case, spaces / underscores / dashes removed, "dpmpp" spelled "dpm++", "ancestral" as "a",
// A1111's leading "k_" dropped.
std::string normalize(std::string_view name) {
    if (name.size() > 2 && (name[0] == 'k' || name[0] == 'K') && name[1] == '_') name.remove_prefix(2);
    std::string s;
    for (unsigned char c : name)
        if (c != ' ' && c != '_' && c != '-') s += char(std::tolower(c));
    return replace_first(replace_first(s, "dpmpp", "dpm++"), "ancestral", "a");
}

const SamplerInfo* match(const std::string& key) {
    for (const auto& info : kSamplers)
        if (normalize(info.name) == key || normalize(info.label) == key) return &info;
    return nullptr;
}

}  // namespace

std::span<const SamplerInfo> all_samplers() { return kSamplers; }

Result<SamplerChoice> find_sampler(std::string_view name) {
    const std::string key = normalize(name);
    if (const SamplerInfo* info = match(key)) return SamplerChoice{info, std::nullopt};
    // Legacy A1111 labels carried the schedule: "DPM++ 2M Karras", "DPM++ 3M SDE Exponential".
    const std::pair<const char*, Scheduler> suffixes[] = {
        {"karras", Scheduler::karras}, {"exponential", Scheduler::exponential}, {"sgmuniform", Scheduler::sgm_uniform}};
    for (auto [suffix, sched] : suffixes) {
        if (key.size() > std::string_view(suffix).size() && key.ends_with(suffix))
            if (const SamplerInfo* info = match(key.substr(0, key.size() - std::string_view(suffix).size())))
                return SamplerChoice{info, sched};
    }
    std::string valid;
    for (const auto& info : kSamplers) valid += std::string(valid.empty() ? "" : ", ") + info.name;
    return make_error(Errc::invalid_argument, "unknown sampler '{}' (valid: {})", name, valid);
}

Scheduler resolve_scheduler(const SamplerChoice& choice, std::optional<Scheduler> requested) {
    if (requested) return *requested;
    if (choice.scheduler) return *choice.scheduler;
    return choice.sampler->default_scheduler;
}

std::vector<float> sampler_sigmas(const SamplerInfo& info, const DiscreteSchedule& schedule, Scheduler scheduler,
                                  int steps) {
    if (info.discard_penultimate) return get_sigmas_discard_penultimate(schedule, scheduler, steps);
    return get_sigmas(schedule, scheduler, steps);
}

MetadataLabels metadata_labels(const SamplerInfo& info, Scheduler scheduler) {
    return {info.label, scheduler_label(scheduler)};
}

}  // namespace nb::sampling
