// img2img, inpaint ("whole picture" and "only masked"), 9-channel inpainting models and outpaint, as A1111's
// StableDiffusionProcessingImg2Img.init / .sample and process_images_inner do them. The pixel stages (mask
// blur, resizes, overlay, masked-content fill) are Pillow/OpenCV-exact in image/edit.h; the step-by-step
// description with golden data is ../shared/golden/README.md, section "edit/".
#include <algorithm>
#include <cmath>

#include "image/edit.h"
#include "pipeline/denoiser.h"
#include "pipeline/stages.h"
#include "pipeline/txt2img.h"

namespace nb::pipeline {

namespace {

// Outpaint: the picture on a canvas grown by (left, top, right, bottom), black outside; the mask is white
// exactly where the canvas is new (the mask blur feathers the seam).
std::pair<Image, Image> outpaint_canvas(const Image& rgb, int left, int top, int right, int bottom) {
    Image canvas{rgb.width + left + right, rgb.height + top + bottom, 3, {}};
    canvas.pixels.assign(size_t(canvas.width) * size_t(canvas.height) * 3, 0);
    Image mask{canvas.width, canvas.height, 1, {}};
    mask.pixels.assign(size_t(canvas.width) * size_t(canvas.height), 255);
    for (int y = 0; y < rgb.height; ++y) {
        std::copy(rgb.at(0, y), rgb.at(0, y) + size_t(rgb.width) * 3, canvas.at(left, y + top));
        std::fill(mask.at(left, y + top), mask.at(left, y + top) + rgb.width, uint8_t(0));
    }
    return {canvas, mask};
}

// An L image from resize_image's result (modes 1 and 2 return RGB even for masks).
Image as_l(const Image& im) { return im.channels == 1 ? im : to_l(im); }

// [1, 4, h, w] latent mask from the processing mask M4: nmask = round(BICUBIC(M4 -> w x h) / 255).
LatentMask latent_mask(const Image& m4, int64_t h, int64_t w) {
    const Image small = pil_resize(m4, int(w), int(h), Resample::bicubic);
    LatentMask lm{Tensor(Shape{1, 4, h, w}), Tensor(Shape{1, 4, h, w})};
    for (int64_t c = 0; c < 4; ++c)
        for (int64_t i = 0; i < h * w; ++i) {
            const float n = std::nearbyint(float(small.pixels[size_t(i)]) / 255.f);  // half to even, as np.around
            lm.nmask.data()[c * h * w + i] = n;
            lm.mask.data()[c * h * w + i] = 1.f - n;
        }
    return lm;
}

// 9-channel conditioning (A1111 inpainting_image_condition): cm = round(M4 / 255) at full resolution (no mask:
// all ones), masked image = lerp(x, x * (1 - cm), weight) with x in [-1, 1], encoded; result
// [1, 5, h, w] = cat(nearest(cm -> h x w), vae.scale() * mean(encode(masked image))).
Tensor inpaint_conditioning(const SDModel& m, const Tensor& x, const Image* m4, float weight) {
    const int64_t H = x.dim(2), W = x.dim(3), h = H / 8, w = W / 8;
    std::vector<float> cm(size_t(H * W), 1.f);
    if (m4)
        for (size_t i = 0; i < cm.size(); ++i) cm[i] = std::nearbyint(float(m4->pixels[i]) / 255.f);
    Tensor masked = Tensor::empty(x.shape());
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t i = 0; i < H * W; ++i) {
            const float a = x.data()[c * H * W + i], b = a * (1.f - cm[size_t(i)]);
            masked.data()[c * H * W + i] = weight < 0.5f ? a + weight * (b - a) : b - (b - a) * (1.f - weight);  // torch.lerp
        }
    Tensor zc = encode_latent(m, masked);
    Tensor out(Shape{1, 5, h, w});
    for (int64_t y = 0; y < h; ++y)
        for (int64_t i = 0; i < w; ++i) out.data()[y * w + i] = cm[size_t(y * 8 * W + i * 8)];
    std::copy(zc.data(), zc.data() + 4 * h * w, out.data() + h * w);
    return out;
}

}  // namespace

Result<std::vector<Txt2ImgOutput>> img2img(SDModel& m, const Txt2ImgRequest& req, const StepFn& on_step) {
    const GenerateParams& p = req.params;
    const int W = p.width, H = p.height;
    const int64_t h = H / 8, w = W / 8;
    if (W <= 0 || H <= 0 || W % 8 || H % 8)
        return make_error(Errc::invalid_argument, "width and height must be positive multiples of 8 (got {}x{})", W, H);
    if (p.init_image.width <= 0 || p.init_image.height <= 0 || p.init_image.pixels.empty())
        return make_error(Errc::invalid_argument, "init image is empty");
    if (!(p.denoising_strength >= 0.f && p.denoising_strength <= 1.f))
        return make_error(Errc::invalid_argument, "denoising strength must be in [0, 1] (got {})", p.denoising_strength);
    if (p.resize_mode < 0 || p.resize_mode > 3)
        return make_error(Errc::invalid_argument, "resize mode must be 0..3 (got {})", p.resize_mode);
    const bool outpaint = p.outpaint_left > 0 || p.outpaint_top > 0 || p.outpaint_right > 0 || p.outpaint_bottom > 0;
    if (std::min({p.outpaint_left, p.outpaint_top, p.outpaint_right, p.outpaint_bottom}) < 0)
        return make_error(Errc::invalid_argument, "outpaint sizes must be >= 0");
    if (outpaint && !p.mask.pixels.empty())
        return make_error(Errc::invalid_argument, "outpaint makes its own mask: give no mask with it");
    const int fill = p.inpainting_fill >= 0 ? p.inpainting_fill : outpaint ? 2 : 1;
    if (fill > 3) return make_error(Errc::invalid_argument, "inpainting fill must be 0..3 (got {})", fill);
    if (p.mask_blur < 0 || p.mask_blur > 256) return make_error(Errc::invalid_argument, "mask blur must be 0..256");
    if (p.inpaint_full_res_padding < 0) return make_error(Errc::invalid_argument, "only-masked padding must be >= 0");
    NB_TRY(rng_kind, sampling::parse_rng_kind(p.rng));
    const Img2ImgSteps cut = img2img_steps(p.steps, p.denoising_strength, /*fixed=*/false);
    NB_TRY(choice, choose_sampler(m, p.sampler, p.scheduler, cut.steps));
    auto done_with = [&](nn::WeightSet& ws) {
        if (req.release_idle_weights) ws.release(req.keep);
    };

    // ---- pixels: mask (M1, M2, M3, M4), overlay (O1), processing image (I1-I3) ----
    Image image = flatten(p.init_image);
    Image mask_l;
    if (outpaint) {
        std::tie(image, mask_l) = outpaint_canvas(image, p.outpaint_left, p.outpaint_top, p.outpaint_right,
                                                  p.outpaint_bottom);
    } else if (!p.mask.pixels.empty()) {
        mask_l = mask_to_l(p.mask);
        if (mask_l.width != image.width || mask_l.height != image.height)  // a mask drawn at another size
            mask_l = pil_resize(mask_l, image.width, image.height, Resample::lanczos);
    }
    const bool inpaint = !mask_l.pixels.empty();
    const int rmode = inpaint && p.resize_mode == 3 ? 0 : p.resize_mode;  // latent upscale: img2img only
    Image m4, overlay, full;
    std::optional<Box> paste_to;
    if (inpaint) {
        if (p.inpainting_mask_invert) mask_l = invert(mask_l);
        if (!mask_bbox(mask_l)) return make_error(Errc::invalid_argument, "mask is empty: nothing to repaint");
        Image m2 = gaussian_blur_mask(mask_l, p.mask_blur, p.mask_blur);
        Image m3;
        if (p.inpaint_full_res) {
            paste_to = crop_region(m2, p.inpaint_full_res_padding, W, H);
            m4 = as_l(resize_image(2, crop(m2, *paste_to), W, H));
            m3 = m2;
        } else {
            m4 = as_l(resize_image(rmode, m2, W, H));
            m3 = m4;
            for (auto& v : m3.pixels) v = uint8_t(std::min(2 * int(v), 255));
            image = resize_image(rmode, image, W, H);
        }
        overlay = make_overlay(image, m3);
        full = image;
        if (paste_to) image = resize_image(2, crop(image, *paste_to), W, H);
    } else if (rmode != 3) {
        image = resize_image(rmode, image, W, H);
    } else if (image.width % 8 || image.height % 8) {  // latent upscale: encoded at its own size (a multiple of 8)
        image = resize_image(0, image, std::max(8, image.width / 8 * 8), std::max(8, image.height / 8 * 8));
    }

    // Strength 0 changes nothing: the (resized) input comes back as it is, without a model call.
    if (p.denoising_strength == 0.f) {
        std::vector<Txt2ImgOutput> out;
        const Image same = to_rgb(inpaint ? full : rmode == 3 ? resize_image(0, image, W, H) : image);
        for (int i = 0; i < std::max(1, p.batch_count); ++i) {
            const SeedSpec spec = image_seed(p, rng_kind, req.seed, req.subseed, i);
            out.push_back(Txt2ImgOutput{{}, {}, spec.seed, same, spec.subseed});
        }
        return out;
    }
    if (inpaint && fill != 1) image = masking_fill(image, m4);

    // ---- latents: z0 (L1), latent mask (L2), masked content (L3), 9-channel conditioning (L4) ----
    if (auto r = m.clip_weights.acquire(); !r) return std::unexpected(r.error());
    const Conditioning cond = encode_conditioning(m, p.prompt, p.negative_prompt, p.steps, p.clip_skip, {H, W});
    done_with(m.clip_weights);
    if (auto r = m.vae_weights.acquire(); !r) return std::unexpected(r.error());
    const Tensor x = tensor_from_image(to_rgb(image));
    Tensor z0 = encode_latent(m, x);
    if (rmode == 3 && (z0.dim(2) != h || z0.dim(3) != w))
        z0 = resize_latent(z0, h, w, LatentResize::bilinear);
    std::optional<LatentMask> lmask;
    if (inpaint) {
        lmask = latent_mask(m4, h, w);
        if (fill == 2) {  // A1111 fills with the first seed's noise for every image of the run
            Tensor n0 = sampling::make_rng(rng_kind, uint64_t(req.seed))->randn({4, h, w});
            for (int64_t i = 0; i < z0.numel(); ++i)
                z0.data()[i] = z0.data()[i] * lmask->mask.data()[i] + n0.data()[i] * lmask->nmask.data()[i];
        } else if (fill == 3) {
            for (int64_t i = 0; i < z0.numel(); ++i) z0.data()[i] *= lmask->mask.data()[i];
        }
    }
    CFGOptions cfg = cfg_options(p, choice.timesteps, h, w);
    if (m.unet.config().in_channels == 9)
        // Latent upscale encodes the picture at its own size; the conditioning needs the processing size.
        cfg.c_concat = inpaint_conditioning(m, rmode == 3 ? tensor_from_image(to_rgb(resize_image(0, image, W, H))) : x,
                                            inpaint ? &m4 : nullptr, p.inpainting_mask_weight);
    done_with(m.vae_weights);

    // ---- sampling (S1-S5) ----
    if (auto r = m.unet_weights.acquire(); !r) return std::unexpected(r.error());
    const int total = !choice.sigmas.empty() ? cut.t_enc + 1 : cut.t_enc;  // DDIM has no sigma list
    std::vector<Txt2ImgOutput> out;
    for (int i = 0; i < std::max(1, p.batch_count); ++i) {
        const SeedSpec spec = image_seed(p, rng_kind, req.seed, req.subseed, i);
        ImageRng rng(spec, {4, h, w});
        auto cb = [&](int step, int, const Tensor&, const Tensor& d) { return !on_step || on_step(i, step, total, d); };
        bool interrupted = false;
        SampleJob job{&choice, z0, cut.t_enc, lmask ? &*lmask : nullptr, p.keep_interrupted, &interrupted};
        Result<Tensor> latent = run_sampler(m, cond, cfg, job, rng, cb);
        if (interrupted) {  // kept as it stands (A1111's Interrupt / Skip); the run ends
            out.push_back(Txt2ImgOutput{*latent, {}, spec.seed, {}, spec.subseed, true});
            break;
        }
        if (!latent && latent.error().code == Errc::cancelled && !out.empty()) break;
        if (!latent) return std::unexpected(latent.error());
        out.push_back(Txt2ImgOutput{*latent, {}, spec.seed, {}, spec.subseed});
    }
    done_with(m.unet_weights);

    // ---- decode (D1) and overlay (D2) ----
    if (!decodes_with_taesd(m))
        if (auto r = m.vae_weights.acquire(); !r) return std::unexpected(r.error());
    for (auto& o : out) {
        o.image = decode_latent(m, o.latent);
        if (inpaint) o.pixels = apply_overlay(image_from_tensor(o.image, 0), paste_to, overlay);
    }
    done_with(m.vae_weights);
    return out;
}

}  // namespace nb::pipeline
