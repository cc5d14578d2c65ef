// The stages every generation mode is made of (A1111 processing.py): conditioning, the per-image noise
// (ImageRNG with variation seeds), the img2img step cut, sampling with the inpaint latent-mask blend, VAE
// encode/decode and latent resampling. txt2img, img2img / inpaint / outpaint and hires fix are compositions
// of these (txt2img.cpp, img2img.cpp).
#pragma once

#include <memory>
#include <string>

#include "core/tensor.h"
#include "pipeline/conditioning.h"
#include "pipeline/denoiser.h"
#include "pipeline/sd_model.h"
#include "pipeline/txt2img.h"
#include "sampling/rng.h"

namespace nb::pipeline {

// ---- conditioning ----
struct Conditioning {
    std::vector<CondPart> cond;  // one per AND part of the prompt
    CondSchedule uncond;
};
// A1111 get_multicond_learned_conditioning for the prompt (split on AND, ":weight" per part, each distinct part
// encoded once) and get_learned_conditioning for the negative prompt: one context per prompt-editing entry.
// SDXL: each entry's vector from `size` (the picture's); an empty negative prompt is A1111's
// force_zero_embeddings: zero context and zero pooled part (the size embeddings stay).
Conditioning encode_conditioning(const SDModel& m, const std::string& prompt, const std::string& negative, int steps,
                                 int clip_skip, const SizeCond& size = {});

// ---- noise ----
struct SeedSpec {
    sampling::RngKind kind = sampling::RngKind::philox;
    int64_t seed = 0;
    int64_t subseed = 0;
    float subseed_strength = 0.f;
    int seed_resize_from_w = 0, seed_resize_from_h = 0;  // pixels; 0 = off
    int64_t eta_noise_seed_delta = 0;                    // after first(): the generator is reseeded seed + ENSD
};

// Image i of a request (A1111 process_images): seeds advance per image unless a variation seed is used; then
// the seed stays and the subseed advances.
SeedSpec image_seed(const GenerateParams& p, sampling::RngKind kind, int64_t seed, int64_t subseed, int i);

// A1111 ImageRNG for one image of latent shape [C, h, w]. first() is the initial noise [1, C, h, w]:
// randn(seed) from the image's generator, slerped toward randn(subseed) (a fresh generator) by
// subseed_strength, and with seed resizing made at the old size and pasted centred into a draw of the
// image's generator. sample() (the sampler's noise) continues the image's generator.
class ImageRng final : public sampling::NoiseSource {
public:
    ImageRng(const SeedSpec& spec, Shape item_shape);
    Tensor first();
    Tensor sample(double, double) override;

private:
    SeedSpec spec_;
    Shape shape_;
    std::unique_ptr<sampling::Rng> gen_;
};

// A1111 slerp(val, low, high) on [C, H, W] noises: norms and dot products over dim 1 (H) as A1111 computes
// them, with its lerp fallback (low * val + high * (1 - val)) when the mean dot product exceeds 0.9995.
Tensor slerp(float val, const Tensor& low, const Tensor& high);

// ---- img2img steps (A1111 sd_samplers_common.setup_img2img_steps) ----
struct Img2ImgSteps {
    int steps = 0;  // S': the schedule is built for this many steps
    int t_enc = 0;  // sampler steps run = t_enc + 1, over the last t_enc + 2 sigmas
};
// img2img: S' = steps, t_enc = int(min(strength, 0.999) * steps). Hires fix (`fixed`, A1111 passes the step
// count): S' = int(steps / min(strength, 0.999)), t_enc = steps - 1.
Img2ImgSteps img2img_steps(int steps, float strength, bool fixed);

// ---- sampling ----
// Inpainting latent mask, [1, C, h, w] each: mask = 1 where the original is kept, nmask = 1 - mask.
struct LatentMask {
    Tensor mask, nmask;
};

struct SampleJob {
    const ResolvedSampler* sampler = nullptr;  // resolved for the schedule's step count (S' for img2img)
    Tensor init_latent;                        // img2img: z0 [1, 4, h, w]; undefined = txt2img
    int t_enc = 0;                             // img2img only
    const LatentMask* mask = nullptr;          // inpaint: the denoiser's outputs and the result are blended
    // A1111's Interrupt / Skip: a cancel from the step callback ends sampling with the last step's denoised
    // prediction (masked as the result would be) instead of Errc::cancelled, and sets *interrupted. A cancel
    // before the first step still gives Errc::cancelled.
    bool keep_partial = false;
    bool* interrupted = nullptr;
};
// txt2img: x = first() * sigmas[0] over the whole schedule. img2img: x = z0 + first() * sigma_sched[0] over
// sigma_sched = sigmas[S' - t_enc - 1 :]; DDIM: z0 noised to the plan's timestep t_enc (A1111
// sd_samplers_timesteps). Inpaint: each denoised = z0 * mask + nmask * denoised (DDIM: the model input is
// blended instead, A1111's mask_before_denoising), and the result once more.
// The CFG denoiser's options for a request's sampling pass over h x w latents: its CFG scale, the sampler's
// timestep mode, batching by size and the request's step caching.
CFGOptions cfg_options(const GenerateParams& p, TimestepMode timesteps, int64_t h, int64_t w);

Result<Tensor> run_sampler(const SDModel& m, const Conditioning& c, const CFGOptions& cfg, const SampleJob& job,
                           ImageRng& rng, const sampling::StepCallback& cb);

// ---- decode ----
// Whether the final decode runs on the TAESD decoder (LoadOptions::taesd with taesd_decode) instead of the VAE.
bool decodes_with_taesd(const SDModel& m);
// The sampler's latents [N, 4, h, w] -> pictures [N, 3, 8h, 8w] in ~[-1, 1]: the VAE (tiled when large), or TAESD.
Tensor decode_latent(const SDModel& m, const Tensor& z);
// A live preview of a step's denoised prediction [1, 4, h, w]: TAESD at full size when the model has one,
// else A1111's "Approx cheap" (a fixed 4x3 matrix per latent pixel) at latent size.
Image preview_image(const SDModel& m, const Tensor& denoised);

// ---- VAE ----
// x [1, 3, H, W] in [-1, 1] -> vae.scale() * posterior mean [1, 4, H/8, W/8] (the golden rule: A1111 samples the
// posterior with torch's global RNG, which nothing can reproduce; the mean is what a real VAE's sample is
// within ~1e-4).
Tensor encode_latent(const SDModel& m, const Tensor& x);

// ---- latent resampling (torch.nn.functional.interpolate, align_corners=False) ----
enum class LatentResize { bilinear, bilinear_aa, bicubic, bicubic_aa, nearest, nearest_exact };
// A1111 latent upscaler names: "Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic
// antialiased)", "Latent (nearest)", "Latent (nearest-exact)". Unknown names: nullopt.
std::optional<LatentResize> latent_resize_mode(const std::string& upscaler_name);
Tensor resize_latent(const Tensor& x, int64_t h, int64_t w, LatentResize mode);

}  // namespace nb::pipeline
