#include "sampling/registry.h"
#include "pipeline/txt2img.h"

namespace nb::pipeline {

Result<ResolvedSampler> choose_sampler(const SDModel& m, const std::string& sampler, const std::string& scheduler,
                                       int steps) {
    NB_TRY(found, sampling::find_sampler(sampler));
    std::optional<sampling::Scheduler> requested;
    if (!scheduler.empty() && scheduler != "automatic" && scheduler != "Automatic") {
        NB_TRY(s, sampling::parse_scheduler(scheduler));
        requested = s;
    }
    const sampling::Scheduler sched = sampling::resolve_scheduler(found, requested);
    const auto labels = sampling::metadata_labels(*found.sampler, sched);
    ResolvedSampler r;
    r.fn = found.sampler->fn;
    r.label = labels.sampler;
    r.schedule_label = labels.schedule_type;
    if (found.sampler->kind == sampling::SamplerKind::lcm) r.timesteps = TimestepMode::lcm;
    if (found.sampler->kind == sampling::SamplerKind::ddim) r.timesteps = TimestepMode::integer;
    if (found.sampler->kind == sampling::SamplerKind::ddim)
        r.ddim = sampling::make_ddim_plan(m.schedule, steps, /*eta=*/0.0);
    else
        r.sigmas = sampling::sampler_sigmas(*found.sampler, m.schedule, sched, steps);
    if (found.sampler->kind == sampling::SamplerKind::tcd)
        r.tcd_alpha = sampling::tcd_alpha_prod_s(m.schedule, r.sigmas, sampling::kTcdGamma);
    return r;
}

}  // namespace nb::pipeline

namespace nb {

std::vector<NamedChoice> sampler_names() {
    std::vector<NamedChoice> out;
    for (const auto& s : sampling::all_samplers()) out.push_back({s.name, s.label});
    return out;
}

std::vector<NamedChoice> scheduler_names() {
    std::vector<NamedChoice> out;
    for (auto s : {sampling::Scheduler::normal, sampling::Scheduler::karras, sampling::Scheduler::exponential,
                   sampling::Scheduler::sgm_uniform, sampling::Scheduler::lcm})
        out.push_back({sampling::scheduler_name(s), sampling::scheduler_label(s)});
    return out;
}

}  // namespace nb
