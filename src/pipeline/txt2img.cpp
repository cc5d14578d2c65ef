#include "pipeline/txt2img.h"

#include <chrono>

#include <filesystem>

#include "image/edit.h"
#include "models/esrgan/model.h"
#include "pipeline/denoiser.h"
#include "pipeline/stages.h"
#include "pipeline/upscale.h"

namespace nb::pipeline {

namespace {

// 9-channel inpainting UNets without a mask (A1111 txt2img_image_conditioning, and img2img_image_conditioning
// with no mask): the whole image is "masked": mask = 1, masked image = the VAE encoding (mean) of a mid-grey
// image.
Tensor unmasked_inpaint_conditioning(const SDModel& m, int64_t h, int64_t w) {
    Tensor grey(Shape{1, 3, h * 8, w * 8});  // 0 in [-1, 1] = 0.5 grey
    Tensor z = encode_latent(m, grey);
    Tensor c(Shape{1, 5, h, w});
    const int64_t hw = h * w;
    for (int64_t i = 0; i < hw; ++i) c.data()[i] = 1.f;
    std::copy(z.data(), z.data() + 4 * hw, c.data() + hw);
    return c;
}

// An upscaler model file for hires fix: a path, or a file name (with or without extension) in `dir`.
Result<std::string> find_upscaler(const std::string& name, const std::string& dir) {
    namespace fs = std::filesystem;
    if (fs::is_regular_file(name)) return name;
    if (!dir.empty()) {
        for (const char* ext : {"", ".pth", ".safetensors"})
            if (fs::is_regular_file(fs::path(dir) / (name + ext))) return (fs::path(dir) / (name + ext)).string();
    }
    return make_error(Errc::invalid_argument,
                      "hr_upscaler '{}' is neither a latent mode (Latent, Latent (bicubic), ...), Lanczos, Nearest, "
                      "nor an upscaler model file{}",
                      name, dir.empty() ? "" : " in " + dir);
}

}  // namespace

std::pair<int, int> hires_size(const GenerateParams& p) {
    int w = int(float(p.width) * p.hr_scale), h = int(float(p.height) * p.hr_scale);
    if (p.hr_resize_x > 0 && p.hr_resize_y > 0) {
        w = p.hr_resize_x;
        h = p.hr_resize_y;
    } else if (p.hr_resize_x > 0) {
        w = p.hr_resize_x;
        h = p.hr_resize_x * p.height / p.width;
    } else if (p.hr_resize_y > 0) {
        h = p.hr_resize_y;
        w = p.hr_resize_y * p.width / p.height;
    }
    return {w / 8 * 8, h / 8 * 8};
}

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

    // Hires fix plan, checked before any work.
    const bool hires = p.enable_hr;
    const int hr_steps = p.hr_second_pass_steps > 0 ? p.hr_second_pass_steps : p.steps;
    const auto [hr_w, hr_h] = hires ? hires_size(p) : std::pair{0, 0};
    const Img2ImgSteps hr_cut = img2img_steps(hr_steps, p.denoising_strength, /*fixed=*/true);
    std::optional<LatentResize> hr_latent_mode;
    std::string hr_model_path;
    ResolvedSampler hr_choice;
    if (hires) {
        if (hr_w < 8 || hr_h < 8 || hr_w > 8192 || hr_h > 8192)
            return make_error(Errc::invalid_argument, "hires fix size {}x{} is out of range", hr_w, hr_h);
        if (!(p.denoising_strength > 0.f && p.denoising_strength <= 1.f))
            return make_error(Errc::invalid_argument, "denoising strength for hires fix must be in (0, 1] (got {})",
                              p.denoising_strength);
        hr_latent_mode = latent_resize_mode(p.hr_upscaler);
        if (!hr_latent_mode && p.hr_upscaler != "Lanczos" && p.hr_upscaler != "Nearest" && p.hr_upscaler != "None") {
            NB_TRY(path, find_upscaler(p.hr_upscaler, req.upscaler_dir));
            hr_model_path = path;
        }
        NB_TRY(c, choose_sampler(m, p.sampler, p.scheduler, hr_cut.steps));
        hr_choice = std::move(c);
    }

    using clock = std::chrono::steady_clock;
    auto lap = [&, t0 = clock::now()](double PhaseTimes::*field) mutable {
        const auto t = clock::now();
        if (req.times) req.times->*field += std::chrono::duration<double>(t - t0).count();
        t0 = t;
    };
    if (auto r = m.clip_weights.acquire(); !r) return std::unexpected(r.error());
    const Conditioning cond =
        encode_conditioning(m, p.prompt, p.negative_prompt, p.steps, p.clip_skip, {p.height, p.width});
    Conditioning hr_cond;
    if (hires)
        hr_cond = encode_conditioning(m, p.hr_prompt.empty() ? p.prompt : p.hr_prompt,
                                      p.hr_negative_prompt.empty() ? p.negative_prompt : p.hr_negative_prompt,
                                      hr_steps, p.clip_skip, {hr_h, hr_w});
    done_with(m.clip_weights);
    lap(&PhaseTimes::encode_s);
    const int64_t h = p.height / 8, w = p.width / 8;
    CFGOptions cfg = cfg_options(p, choice.timesteps, h, w);
    CFGOptions hr_cfg = cfg_options(p, hr_choice.timesteps, hr_h / 8, hr_w / 8);
    if (m.unet.config().in_channels == 9) {
        if (auto r = m.vae_weights.acquire(); !r) return std::unexpected(r.error());
        cfg.c_concat = unmasked_inpaint_conditioning(m, h, w);
        if (hires) hr_cfg.c_concat = unmasked_inpaint_conditioning(m, hr_h / 8, hr_w / 8);
        done_with(m.vae_weights);
    }
    const int first_total = !choice.sigmas.empty() ? int(choice.sigmas.size()) - 1 : int(choice.ddim.timesteps.size());
    const int hr_total = !hr_choice.sigmas.empty() ? hr_cut.t_enc + 1 : hr_cut.t_enc;
    const int total = first_total + (hires ? hr_total : 0);

    std::unique_ptr<esrgan::Model> hr_model;
    if (!hr_model_path.empty()) {
        NB_TRY(model, esrgan::Model::load(hr_model_path));
        hr_model = std::make_unique<esrgan::Model>(std::move(model));
    }

    lap(&PhaseTimes::encode_s);  // the inpainting UNet's mask conditioning, the hires upscaler's load
    if (auto r = m.unet_weights.acquire(); !r) return std::unexpected(r.error());
    std::vector<Txt2ImgOutput> out;
    for (int i = 0; i < std::max(1, p.batch_count); ++i) {
        const SeedSpec spec = image_seed(p, rng_kind, req.seed, req.subseed, i);
        ImageRng rng(spec, {4, h, w});
        auto cb = [&](int step, int, const Tensor&, const Tensor& d) { return !on_step || on_step(i, step, total, d); };
        SampleJob job;
        job.sampler = &choice;
        bool interrupted = false;
        job.keep_partial = p.keep_interrupted;
        job.interrupted = &interrupted;
        Result<Tensor> latent = run_sampler(m, cond, cfg, job, rng, cb);
        if (interrupted) {  // A1111: the interrupted image is kept as it stands (no hires pass) and the run ends
            out.push_back(Txt2ImgOutput{*latent, {}, spec.seed, {}, spec.subseed, true});
            break;
        }
        if (latent && hires) {
            Tensor start;
            if (hr_latent_mode) {
                start = resize_latent(*latent, hr_h / 8, hr_w / 8, *hr_latent_mode);
            } else {  // A1111: decode, upscale the 8-bit picture, encode again
                if (auto r = m.vae_weights.acquire(); !r) return std::unexpected(r.error());
                Image first = image_from_tensor(decode_latent(m, *latent), 0);
                Image up;
                if (hr_model) {
                    auto r = upscale_image(*hr_model, first, hr_w, hr_h, UpscaleTiling{}, {});
                    if (!r) return std::unexpected(r.error());
                    up = std::move(*r);
                } else {
                    up = pil_resize(first, hr_w, hr_h, p.hr_upscaler == "Nearest" ? Resample::nearest : Resample::lanczos);
                }
                start = encode_latent(m, tensor_from_image(up));
            }
            ImageRng hr_rng(spec, {4, hr_h / 8, hr_w / 8});  // A1111: a new ImageRNG with the same seeds
            auto hr_cb = [&](int step, int, const Tensor&, const Tensor& d) {
                return !on_step || on_step(i, first_total + step, total, d);
            };
            SampleJob hr_job{&hr_choice, start, hr_cut.t_enc};
            hr_job.keep_partial = p.keep_interrupted;
            hr_job.interrupted = &interrupted;
            latent = run_sampler(m, hr_cond, hr_cfg, hr_job, hr_rng, hr_cb);
            if (interrupted) {
                out.push_back(Txt2ImgOutput{*latent, {}, spec.seed, {}, spec.subseed, true});
                break;
            }
        }
        // Cancelled during a later image of a batch: the finished ones are decoded and returned (A1111 keeps them).
        if (!latent && latent.error().code == Errc::cancelled && !out.empty()) break;
        if (!latent) return std::unexpected(latent.error());
        out.push_back(Txt2ImgOutput{*latent, {}, spec.seed, {}, spec.subseed});
    }
    done_with(m.unet_weights);
    lap(&PhaseTimes::sample_s);

    if (!decodes_with_taesd(m))
        if (auto r = m.vae_weights.acquire(); !r) return std::unexpected(r.error());
    for (auto& o : out) o.image = decode_latent(m, o.latent);
    done_with(m.vae_weights);
    lap(&PhaseTimes::decode_s);
    return out;
}

}  // namespace nb::pipeline
