// One table mapping user-facing sampler names (CLI, API, A1111 labels / PNG metadata) to sampler functions
// and their "Automatic" scheduler (STYLE.md #10).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "sampling/sampler.h"
#include "sampling/schedule.h"

namespace nb::sampling {

enum class SamplerKind {
    euler, euler_a, heun, dpm2, dpm2_a, dpmpp_2s_a, dpmpp_2m, dpmpp_2m_sde, dpmpp_sde, dpmpp_3m_sde, lms, lcm, ddim, tcd,
};

struct SamplerInfo {
    SamplerKind kind;
    const char* name;             // CLI name: "dpm++2m"
    const char* label;            // A1111 label: "DPM++ 2M"
    SamplerFn fn;                 // nullptr for ddim (sample_ddim takes a DdimPlan) and tcd (sample_tcd: alphas)
    Scheduler default_scheduler;  // A1111 >= 1.9 "Automatic"
    bool discard_penultimate;     // A1111 discard_next_to_last_sigma
    bool stochastic;              // adds fresh noise at every step (ancestral, SDE, LCM)
};

std::span<const SamplerInfo> all_samplers();

struct SamplerChoice {
    const SamplerInfo* sampler = nullptr;
    std::optional<Scheduler> scheduler;  // set by legacy labels such as "DPM++ 2M Karras"
};

// Case-insensitive; accepts CLI names, A1111 labels (spaces/underscores ignored), k-diffusion function
// names (dpmpp_2m, euler_ancestral), A1111 aliases (k_dpmpp_2m) and legacy "<label> Karras/Exponential".
// Unknown names: Errc::invalid_argument listing the valid names.
Result<SamplerChoice> find_sampler(std::string_view name);

// Explicit scheduler if given, else the legacy label's, else the sampler's Automatic default.
Scheduler resolve_scheduler(const SamplerChoice& choice, std::optional<Scheduler> requested = std::nullopt);

// The sigma list the sampler runs on for `steps` steps (discarding the penultimate sigma where A1111 does).
std::vector<float> sampler_sigmas(const SamplerInfo& info, const DiscreteSchedule& schedule, Scheduler scheduler,
                                  int steps);

// PNG metadata (A1111 infotext): "Sampler: DPM++ 2M", "Schedule type: Karras".
struct MetadataLabels {
    std::string sampler;
    std::string schedule_type;
};
MetadataLabels metadata_labels(const SamplerInfo& info, Scheduler scheduler);

}  // namespace nb::sampling
