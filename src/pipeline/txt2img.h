// txt2img as A1111 runs it: per image i, seed + i; initial latent = first draw of a fresh generator
// (Philox or torch-CPU) times sigmas[0]; sampler noise continues that generator; CFG denoiser; VAE decode.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "image/image.h"
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
    std::vector<float> tcd_alpha;      // TCD only: alphas_cumprod at each sigma's intermediate timestep [steps + 1]
    TimestepMode timesteps = TimestepMode::continuous;
};
Result<ResolvedSampler> choose_sampler(const SDModel& m, const std::string& sampler, const std::string& scheduler,
                                     int steps);

struct Txt2ImgOutput {
    Tensor latent;  // [1, 4, h, w] final sampler output
    Tensor image;   // [1, 3, H, W] decoded, ~[-1, 1]
    int64_t seed = 0;
    Image pixels;   // the final picture when it is not image_from_tensor(image) (inpaint overlay, strength 0)
    int64_t subseed = 0;
    bool interrupted = false;  // from the last step's prediction (GenerateParams::keep_interrupted)
};

// Seconds spent per phase of txt2img (summed over a batch's images).
struct PhaseTimes {
    double encode_s = 0;  // tokenizing and the text encoders
    double sample_s = 0;  // every sampling step (hires fix included)
    double decode_s = 0;  // VAE or TAESD decode
};

struct Txt2ImgRequest {
    GenerateParams params;      // prompt text must already be free of <lora:...> tags
    int64_t seed = 0;           // resolved (non-negative) seed of the first image
    int64_t subseed = 0;        // resolved variation seed of the first image (when subseed_strength != 0)
    std::string upscaler_dir;   // hires fix: where upscaler models named by file name are found
    // Frugal: each component's weights leave memory once its phase is over (text encoder after the
    // prompts, UNet after the last image's sampling) and come back from the checkpoint on next use; weights
    // named in `keep` (LoRA-merged) always stay. Off: everything stays resident for the next request.
    bool release_idle_weights = false;
    std::set<std::string> keep;
    // When set, txt2img adds the wall time of its phases here (bench --scenario).
    PhaseTimes* times = nullptr;
};


// `on_step(image, step, total)` returns false to cancel: Errc::cancelled during the first image; later, the
// finished images only (fewer than the batch count).
// `denoised` is the sampler's current x0 prediction [1, 4, h, w] (for live previews).
using StepFn = std::function<bool(int image, int step, int total, const Tensor& denoised)>;

// Phases: text encoding (all prompts of the schedule), sampling of every image, then decoding of every image,
// so that with release_idle_weights one component's weights are resident at a time.
// Hires fix (params.enable_hr): each image's first-pass latent is upscaled (in latent space, or decoded, upscaled
// in pixels and encoded again) and refined by an img2img pass with fresh noise of the same seed (A1111
// sample_hr_pass); `total` then counts both passes.
Result<std::vector<Txt2ImgOutput>> txt2img(SDModel& m, const Txt2ImgRequest& req, const StepFn& on_step);

// img2img, inpaint and outpaint (params.init_image set; A1111 StableDiffusionProcessingImg2Img), img2img.cpp.
Result<std::vector<Txt2ImgOutput>> img2img(SDModel& m, const Txt2ImgRequest& req, const StepFn& on_step);

// The hires-fix target size: hr_resize_x/y when set (one of them keeps the aspect), else size * hr_scale;
// rounded down to multiples of 8.
std::pair<int, int> hires_size(const GenerateParams& p);

}  // namespace nb::pipeline
