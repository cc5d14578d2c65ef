#include "pipeline/txt2img.h"

#include "pipeline/conditioning.h"
#include "pipeline/denoiser.h"
#include "text/prompt.h"

namespace nb::pipeline {

namespace {

// A1111 get_learned_conditioning: one context per prompt-editing schedule entry.
CondSchedule encode_schedule(const SDModel& m, const std::string& prompt, int steps, int clip_skip) {
    CondSchedule s;
    for (const auto& e : text::prompt_schedules(prompt, steps))
        s.entries.emplace_back(e.end_step, encode_prompt(m, e.text, clip_skip).context);
    return s;
}

// 9-channel inpainting UNets in txt2img (A1111 txt2img_image_conditioning): the whole image is "masked":
// mask = 1, masked image = the VAE encoding (mean) of a mid-grey image.
Tensor txt2img_inpaint_conditioning(const SDModel& m, int64_t h, int64_t w) {
    Tensor grey(Shape{1, 3, h * 8, w * 8});  // 0 in [-1, 1] = 0.5 grey
    Tensor moments = m.vae.encode_moments_auto(grey);
    Tensor c(Shape{1, 5, h, w});
    const int64_t hw = h * w;
    for (int64_t i = 0; i < hw; ++i) c.data()[i] = 1.f;
    for (int64_t ch = 0; ch < 4; ++ch)
        for (int64_t i = 0; i < hw; ++i) c.data()[(1 + ch) * hw + i] = moments.data()[ch * hw + i] * vae::VAE::kScale;
    return c;
}

}  // namespace

Result<std::vector<Txt2ImgOutput>> txt2img(SDModel& m, const Txt2ImgRequest& req, const StepFn& on_step) {
    const GenerateParams& p = req.params;
    if (p.width <= 0 || p.height <= 0 || p.width % 8 || p.height % 8)
        return make_error(Errc::invalid_argument, "width and height must be positive multiples of 8 (got {}x{})",
                          p.width, p.height);
    if (p.steps < 1 || p.steps > 1000) return make_error(Errc::invalid_argument, "steps must be 1..1000 (got {})", p.steps);
    NB_TRY(rng_kind, sampling::parse_rng_kind(p.rng));
    NB_TRY(choice, choose_sampler(m, p.sampler, p.scheduler, p.steps));
    auto done_with = [&](nn::WeightSet& w) {
        if (req.release_idle_weights) w.release(req.keep);
        };

    if (auto r = m.clip_weights.acquire(); !r) return std::unexpected(r.error());
    const int clip_skip = std::max(1, p.clip_skip);
    CondSchedule cond = encode_schedule(m, p.prompt, p.steps, clip_skip);
    CondSchedule uncond = encode_schedule(m, p.negative_prompt, p.steps, clip_skip);
    done_with(m.clip_weights);
    const int64_t h = p.height / 8, w = p.width / 8;
    CFGOptions cfg{p.cfg_scale, {}, choice.timesteps, batch_cond_uncond_for(h * w)};
    if (m.unet.config().in_channels == 9) {
        if (auto r = m.vae_weights.acquire(); !r) return std::unexpected(r.error());
        cfg.c_concat = txt2img_inpaint_conditioning(m, h, w);
        done_with(m.vae_weights);
    }

    if (auto r = m.unet_weights.acquire(); !r) return std::unexpected(r.error());
    std::vector<Txt2ImgOutput> out;
    for (int i = 0; i < std::max(1, p.batch_count); ++i) {
        const int64_t seed = req.seed + i;
        auto noise = sampling::ImageNoise::from_seeds(rng_kind, {uint64_t(seed)}, {4, h, w});
        Tensor x = noise.draw();  // [1, 4, h, w]
        auto denoiser = make_cfg_denoiser(m, cond, uncond, cfg);
        auto cb = [&](int step, int total, const Tensor&, const Tensor&) { return !on_step || on_step(i, step, total); };
        Result<Tensor> latent = [&]() -> Result<Tensor> {
            if (!choice.fn) return sampling::sample_ddim(denoiser, x, choice.ddim, noise, cb);
            ops::scale_(x, choice.sigmas[0]);
            return choice.fn(denoiser, x, choice.sigmas, noise, cb);
        }();
        // Cancelled during a later image of a batch: the finished ones are decoded and returned (A1111 keeps them).
        if (!latent && latent.error().code == Errc::cancelled && !out.empty()) break;
        if (!latent) return std::unexpected(latent.error());
        out.push_back(Txt2ImgOutput{*latent, {}, seed});
    }
    done_with(m.unet_weights);

    if (auto r = m.vae_weights.acquire(); !r) return std::unexpected(r.error());
    for (auto& o : out) o.image = m.vae.decode_auto(o.latent);
    done_with(m.vae_weights);
    return out;
}

}  // namespace nb::pipeline
