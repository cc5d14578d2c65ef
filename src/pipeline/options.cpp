// validate(LoadOptions), validate(GenerateParams) (include/nanobanana/engine.h) and the option-name parsers.
#include "pipeline/options.h"

#include <cmath>

#include "image/edit.h"
#include "nanobanana/engine.h"
#include "pipeline/model_family.h"
#include "sampling/registry.h"
#include "sampling/rng.h"
#include "sampling/schedule.h"

namespace nb {

Result<PrecisionMode> parse_precision(const std::string& name) {
    // Whole bf16 moved the golden pipeline's decoded image by 1.5-2.5 % (pipeline_test), more than the 1e-2 a
    // default may change it, so it stays an explicit choice; auto takes only attention to bf16 (options.h).
    if (name == "auto" || name.empty()) return PrecisionMode::automatic;
    if (name == "fp32") return PrecisionMode::fp32;
    if (name == "bf16") return PrecisionMode::bf16;
    return make_error(Errc::invalid_argument, "precision must be auto, bf16 or fp32 (got '{}')", name);
}

Result<ops::WeightStorage> parse_weight_type(const std::string& name) {
    if (name == "auto" || name.empty()) return ops::WeightStorage::exact;
    if (name == "f32") return ops::WeightStorage::f32;
    if (name == "q8_0") return ops::WeightStorage::q8_0;  // needs fp32 precision: validate(LoadOptions)
    return make_error(Errc::invalid_argument, "weight type must be auto, f32 or q8_0 (got '{}')", name);
}

Result<void> validate(const LoadOptions& o) {
    NB_TRY(precision, parse_precision(o.precision));
    NB_TRY(storage, parse_weight_type(o.weight_type));
    if (storage == ops::WeightStorage::q8_0 && precision == PrecisionMode::bf16)
        return make_error(Errc::invalid_argument, "weight type q8_0 needs --precision fp32 (bf16 keeps bf16 weights)");
    if (o.backend != "cpu" && o.backend != "ref" && !o.backend.empty())
        return make_error(Errc::invalid_argument, "backend must be cpu or ref (got '{}')", o.backend);
    if (o.threads < 0 || o.threads > 1024)
        return make_error(Errc::invalid_argument, "threads must be 0 (all cores) .. 1024 (got {})", o.threads);
    if (auto r = pipeline::parse_prediction(o.prediction); !r) return std::unexpected(r.error());
    return {};
}

Result<void> validate(const GenerateParams& p) {
    constexpr int kMaxSide = 8192;
    for (auto [name, v] : {std::pair{"width", p.width}, std::pair{"height", p.height}})
        if (v <= 0 || v % 8 || v > kMaxSide)
            return make_error(Errc::invalid_argument, "{} must be a positive multiple of 8 up to {} (got {})", name,
                              kMaxSide, v);
    if (p.steps < 1 || p.steps > 1000) return make_error(Errc::invalid_argument, "steps must be 1..1000 (got {})", p.steps);
    // Bounds on what a request can make the engine do before it samples: each 75 tokens of prompt is one text
    // encoder pass, each LoRA tag one merge into the weights (seconds for SD 1.5). 32 KiB is ~8,000 tokens (~110
    // chunks), far beyond any prompt people write; a 1 MB prompt took 20 s of text encoding on the demo model and
    // 10,000 LoRA tags minutes of merging before this refused them.
    constexpr size_t kMaxPromptBytes = 32 << 10;
    constexpr size_t kMaxLoras = 64;
    size_t loras = p.loras.size();
    for (auto [name, text] : {std::pair{"prompt", &p.prompt}, std::pair{"negative prompt", &p.negative_prompt},
                              std::pair{"hires prompt", &p.hr_prompt},
                              std::pair{"hires negative prompt", &p.hr_negative_prompt}}) {
        if (text->size() > kMaxPromptBytes)
            return make_error(Errc::invalid_argument, "{} is {} bytes; at most {} are accepted", name, text->size(),
                              kMaxPromptBytes);
        for (const char* tag : {"<lora:", "<lyco:"})
            for (size_t at = text->find(tag); at != std::string::npos; at = text->find(tag, at + 1)) ++loras;
    }
    if (loras > kMaxLoras)
        return make_error(Errc::invalid_argument, "{} LoRAs given (tags and files); at most {} are accepted", loras,
                          kMaxLoras);
    if (!std::isfinite(p.cfg_scale) || p.cfg_scale < 0 || p.cfg_scale > 100)
        return make_error(Errc::invalid_argument, "cfg scale must be 0..100 (got {})", p.cfg_scale);
    if (p.batch_count < 1 || p.batch_count > 1000)
        return make_error(Errc::invalid_argument, "batch count must be 1..1000 (got {})", p.batch_count);
    if (p.clip_skip > 12)  // the most any SD text encoder has (CLIP ViT-L: 12 layers); the model's own in generate()
        return make_error(Errc::invalid_argument, "clip skip must be 1..12 (got {})", p.clip_skip);
    if (auto r = sampling::find_sampler(p.sampler); !r) return std::unexpected(r.error());
    if (!p.scheduler.empty() && p.scheduler != "automatic" && p.scheduler != "Automatic")
        if (auto r = sampling::parse_scheduler(p.scheduler); !r) return std::unexpected(r.error());
    if (auto r = sampling::parse_rng_kind(p.rng); !r) return std::unexpected(r.error());
    if (!p.cache_mode.empty() && p.cache_mode != "none" && p.cache_mode != "deepcache")
        return make_error(Errc::invalid_argument, "cache mode must be none or deepcache (got '{}')", p.cache_mode);
    if (p.cache_mode == "deepcache") {
        if (p.cache_interval < 2 || p.cache_interval > 10)
            return make_error(Errc::invalid_argument, "cache interval must be 2..10 (got {})", p.cache_interval);
        // A sampler that adds fresh noise every step needs the whole UNet every step: the reused deep features
        // predict the previous step's noise (on the demo model Euler a fell from 98 % to 34 % colour adherence).
        if (auto s = sampling::find_sampler(p.sampler); s && s->sampler->stochastic)
            return make_error(Errc::invalid_argument,
                              "cache mode deepcache needs a sampler without per-step noise (Euler, Heun, DPM2, DPM++ "
                              "2M, LMS, DDIM); {} adds fresh noise at every step, which cached features cannot follow",
                              s->sampler->label);
    }
    if (!std::isfinite(p.subseed_strength) || p.subseed_strength < 0 || p.subseed_strength > 1)
        return make_error(Errc::invalid_argument, "subseed strength must be 0..1 (got {})", p.subseed_strength);
    for (auto [name, v] : {std::pair{"seed_resize_from_w", p.seed_resize_from_w}, {"seed_resize_from_h", p.seed_resize_from_h}})
        if (v < 0 || v > kMaxSide)
            return make_error(Errc::invalid_argument, "{} must be 0..{} (got {})", name, kMaxSide, v);
    const bool edit = !p.init_image.pixels.empty();
    if (edit || p.enable_hr)
        if (!std::isfinite(p.denoising_strength) || p.denoising_strength < 0 || p.denoising_strength > 1)
            return make_error(Errc::invalid_argument, "denoising strength must be 0..1 (got {})", p.denoising_strength);
    if (edit) {
        const Image& im = p.init_image;
        if (im.width <= 0 || im.height <= 0 || (im.channels != 3 && im.channels != 4 && im.channels != 1) ||
            im.pixels.size() != size_t(im.width) * size_t(im.height) * size_t(im.channels))
            return make_error(Errc::invalid_argument, "init image is malformed ({}x{}, {} channels)", im.width,
                              im.height, im.channels);
        if (p.resize_mode < 0 || p.resize_mode > 3)
            return make_error(Errc::invalid_argument, "resize mode must be 0..3 (got {})", p.resize_mode);
        if (p.inpainting_fill < -1 || p.inpainting_fill > 3)
            return make_error(Errc::invalid_argument, "inpainting fill must be 0..3 (got {})", p.inpainting_fill);
        if (p.mask_blur < 0 || p.mask_blur > 256)
            return make_error(Errc::invalid_argument, "mask blur must be 0..256 (got {})", p.mask_blur);
        if (p.inpaint_full_res_padding < 0 || p.inpaint_full_res_padding > kMaxSide)
            return make_error(Errc::invalid_argument, "only-masked padding must be 0..{} (got {})", kMaxSide,
                              p.inpaint_full_res_padding);
        if (!std::isfinite(p.inpainting_mask_weight) || p.inpainting_mask_weight < 0 || p.inpainting_mask_weight > 1)
            return make_error(Errc::invalid_argument, "inpainting mask weight must be 0..1 (got {})",
                              p.inpainting_mask_weight);
        for (int v : {p.outpaint_left, p.outpaint_top, p.outpaint_right, p.outpaint_bottom})
            if (v < 0 || v > kMaxSide)
                return make_error(Errc::invalid_argument, "outpaint sizes must be 0..{} pixels (got {})", kMaxSide, v);
        const bool outpaint = p.outpaint_left || p.outpaint_top || p.outpaint_right || p.outpaint_bottom;
        if (outpaint && !p.mask.pixels.empty())
            return make_error(Errc::invalid_argument, "outpaint makes its own mask: give no mask with it");
        if (!p.mask.pixels.empty()) {
            if (p.mask.width <= 0 || p.mask.height <= 0 ||
                p.mask.pixels.size() != size_t(p.mask.width) * size_t(p.mask.height) * size_t(p.mask.channels))
                return make_error(Errc::invalid_argument, "mask image is malformed");
            Image m = mask_to_l(p.mask);
            if (p.inpainting_mask_invert) m = invert(m);
            if (!mask_bbox(m)) return make_error(Errc::invalid_argument, "mask is empty: nothing to repaint");
        }
        if (p.enable_hr) return make_error(Errc::invalid_argument, "hires fix is for txt2img (no init image)");
    } else if (!p.mask.pixels.empty()) {
        return make_error(Errc::invalid_argument, "a mask needs an init image");
    }
    if (p.enable_hr) {
        if (!std::isfinite(p.hr_scale) || p.hr_scale < 1 || p.hr_scale > 8)
            return make_error(Errc::invalid_argument, "hires scale must be 1..8 (got {})", p.hr_scale);
        if (p.hr_second_pass_steps < 0 || p.hr_second_pass_steps > 1000)
            return make_error(Errc::invalid_argument, "hires steps must be 0..1000 (got {})", p.hr_second_pass_steps);
        if (p.denoising_strength <= 0)
            return make_error(Errc::invalid_argument, "hires fix needs a denoising strength above 0");
        for (auto [name, v] : {std::pair{"hr_resize_x", p.hr_resize_x}, {"hr_resize_y", p.hr_resize_y}})
            if (v < 0 || v > kMaxSide) return make_error(Errc::invalid_argument, "{} must be 0..{} (got {})", name, kMaxSide, v);
    }
    return {};
}

namespace pipeline {

Result<std::optional<Prediction>> parse_prediction(std::string_view name, std::string_view field) {
    if (name.empty() || name == "auto") return std::optional<Prediction>{};
    if (name == "eps") return Prediction::eps;
    if (name == "v") return Prediction::v;
    return make_error(Errc::invalid_argument, "{} must be auto, eps or v (got '{}')", field, name);
}

}  // namespace pipeline

}  // namespace nb
