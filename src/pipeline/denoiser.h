// The model as the samplers see it: k-diffusion's CompVisDenoiser / CompVisVDenoiser around the UNet, and
// A1111's CFGDenoiser (cond and uncond in one UNet batch, prompt editing by call count).
#pragma once

#include <vector>

#include "core/tensor.h"
#include "models/unet/model.h"
#include "pipeline/sd_model.h"
#include "sampling/sampler.h"
#include "sampling/schedule.h"

namespace nb::pipeline {

// x [N, 4, h, w] in k-diffusion space, one sigma per item, ctx [N, T, D], c_concat [N, 5, h, w] or undefined
// (inpainting UNets) -> denoised [N, 4, h, w].
//   eps: c_in = 1/sqrt(s^2+1), denoised = x - s * eps(x c_in, t(s))
//   v:   denoised = v(x c_in, t(s)) * (-s/sqrt(s^2+1)) + x / (s^2+1)
// How a sigma becomes the UNet's timestep.
enum class TimestepMode {
    continuous,  // k-diffusion CompVisDenoiser.sigma_to_t (fractional t)
    lcm,         // A1111 LCMCompVisDenoiser: quantised to the 50 LCM timesteps
    integer,     // DDIM: sigmas come from the table, t is snapped back to the integer it came from
};

// y [N, adm]: SDXL's vector conditioning (undefined for the other families).
Tensor denoise(const unet::UNet& unet, const sampling::DiscreteSchedule& schedule, Prediction pred, const Tensor& x,
               const std::vector<float>& sigmas, const Tensor& ctx, const Tensor& c_concat = {},
               TimestepMode mode = TimestepMode::continuous, const Tensor& y = {},
               unet::DeepCacheSlot* cache = nullptr, bool reuse_cache = false);

// What one prompt conditions the UNet with: the cross-attention context [1, T, D] and, for SDXL, the vector
// [1, adm] (pooled text + size embeddings; undefined otherwise).
struct Cond {
    Tensor context;
    Tensor vector;
};

// One prompt-editing schedule: (last model call index it applies to, its conditioning).
struct CondSchedule {
    std::vector<std::pair<int, Cond>> entries;
    const Cond& at(int call) const;  // first entry whose end >= call (A1111 reconstruct_cond_batch)
};

struct CFGOptions {
    float cfg_scale = 7.f;
    Tensor c_concat;  // [1, 5, h, w] for inpainting UNets
    TimestepMode timesteps = TimestepMode::continuous;
    bool batch_cond_uncond = true;  // see batch_cond_uncond_for
    // DeepCache (--cache-mode deepcache): every `deepcache_interval`-th model call runs the whole UNet and
    // refreshes the cached deep features, the calls between run only its shallow branch on them (one slot per
    // UNet call of a model call: cond, uncond, or their batch). 0 or 1 = off.
    int deepcache_interval = 0;
    int deepcache_branch = 1;  // unet::DeepCacheSlot::branch
};

// Whether cond and uncond share one UNet batch for latents of `latent_pixels` (h x w). Batching halves the
// weight traffic, which matters at small sizes (at 256x256 the batched step is ~7 % faster); from 64x64
// latents (512x512 images) the kernels are busy either way (measured within this machine's noise) while the
// batch doubles the activations (~0.08 GB at 512x512), so large images run cond and uncond one after another.
bool batch_cond_uncond_for(int64_t latent_pixels);

// One AND part of a prompt (A1111 composable diffusion, "a cat :1.2 AND a hat :0.8"): its prompt-editing
// schedule and its weight (negative weights push away from the part).
struct CondPart {
    CondSchedule schedule;
    double weight = 1.0;
};

// A1111 CFGDenoiser + combine_denoised for one image: denoised = d_u + sum_i (d_i - d_u) * weight_i * cfg_scale
// over the parts i (one part of weight 1: d_u + (d_c - d_u) * cfg_scale). The parts and the uncond share one
// UNet batch [x, ..., x] with contexts [c_1, ..., c_n, uncond] (SDXL: and vectors, A1111 catenate_conds) when opt.batch_cond_uncond and their token
// counts agree (else one call each, as A1111 without batch_cond_uncond); cfg_scale 1 with one part of weight 1
// skips the uncond pass (the result is d_c either way). Prompt editing advances per model call, as A1111's
// CFGDenoiser.step does.
sampling::Denoiser make_cfg_denoiser(const SDModel& m, std::vector<CondPart> cond, CondSchedule uncond,
                                     CFGOptions opt);
// One part of weight 1.
sampling::Denoiser make_cfg_denoiser(const SDModel& m, const CondSchedule& cond, const CondSchedule& uncond,
                                     CFGOptions opt);

}  // namespace nb::pipeline
