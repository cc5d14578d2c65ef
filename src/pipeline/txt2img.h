// txt2img as A1111 runs it: per image i, seed + i; initial latent = first draw of a fresh generator
// (Philox or torch-CPU) times sigmas[0]; sampler noise continues that generator; CFG denoiser; VAE decode.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nanobanana/engine.h"
#include "pipeline/denoiser.h"
#include "pipeline/sd_model.h"
#include "sampling/rng.h"
#include "sampling/sampler.h"

namespace nb::pipeline {

// A sampler resolved from user-facing names, with its sigma list for the requested steps.
struct ResolvedSampler {
    sampling::SamplerFn fn = nullptr;  // k-diffusion sampler, or null for DDIM
    std::string label;                 // A1111 "Sampler:" value, e.g. "DPM++ 2M"
    std::string schedule_label;        // A1111 "Schedule type:" value, e.g. "Karras"
    std::vector<float> sigmas;         // [steps + 1] (k-diffusion samplers)
    sampling::DdimPlan ddim;           // DDIM only
    TimestepMode timesteps = TimestepMode::continuous;
};
Result<ResolvedSampler> choose_sampler(const SDModel& m, const std::string& sampler, const std::string& scheduler,
                                     int steps);

struct Txt2ImgOutput {
    Tensor latent;  // [1, 4, h, w] final sampler output
    Tensor image;   // [1, 3, H, W] decoded, ~[-1, 1]
    int64_t seed = 0;
};

struct Txt2ImgRequest {
    GenerateParams params;      // prompt text must already be free of <lora:...> tags
    int64_t seed = 0;           // resolved (non-negative) seed of the first image
    // Frugal: each component's weights leave memory once its phase is over (text encoder after the
    // prompts, UNet after the last image's sampling) and come back from the checkpoint on next use; weights
    // named in `keep` (LoRA-merged) always stay. Off: everything stays resident for the next request.
    bool release_idle_weights = false;
    std::set<std::string> keep;
};

// `on_step(image, step, total)` returns false to cancel: Errc::cancelled during the first image; later, the
// finished images only (fewer than the batch count).
using StepFn = std::function<bool(int image, int step, int total)>;

// Phases: text encoding (all prompts of the schedule), sampling of every image, then decoding of every image,
// so that with release_idle_weights one component's weights are resident at a time.
Result<std::vector<Txt2ImgOutput>> txt2img(SDModel& m, const Txt2ImgRequest& req, const StepFn& on_step);

}  // namespace nb::pipeline
