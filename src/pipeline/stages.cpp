#include "pipeline/stages.h"

#include <algorithm>
#include <cmath>

#include "image/image.h"
#include "pipeline/conditioning.h"
#include "text/prompt.h"

namespace nb::pipeline {

// ---- conditioning ----

namespace {
CondSchedule encode_schedule(const SDModel& m, const std::string& prompt, int steps, int clip_skip,
                             const SizeCond& size, bool negative) {
    CondSchedule s;
    for (const auto& e : text::prompt_schedules(prompt, steps)) {
        EncodedPrompt p = encode_prompt(m, e.text, clip_skip);
        Cond c{p.context, {}};
        if (m.sdxl()) {
            // A1111 sd_models_xl.get_learned_conditioning: an all-empty negative prompt is encoded with
            // force_zero_embeddings=['txt']: both towers' outputs (context and pooled) are zeros.
            if (negative && e.text.empty()) {
                for (float& v : p.context.span()) v = 0.f;
                for (float& v : p.pooled.span()) v = 0.f;
            }
            c.vector = sdxl_vector(m, p.pooled, size);
        }
        s.entries.emplace_back(e.end_step, std::move(c));
    }
    return s;
}
}  // namespace

Conditioning encode_conditioning(const SDModel& m, const std::string& prompt, const std::string& negative, int steps,
                                 int clip_skip, const SizeCond& size) {
    clip_skip = std::max(1, clip_skip);
    const text::MultiCond mc = text::and_split(prompt);
    std::vector<CondSchedule> sub;
    for (const std::string& s : mc.subprompts) sub.push_back(encode_schedule(m, s, steps, clip_skip, size, false));
    Conditioning c;
    for (const text::AndPart& part : mc.parts) c.cond.push_back(CondPart{sub[size_t(part.index)], part.weight});
    c.uncond = encode_schedule(m, negative, steps, clip_skip, size, true);
    return c;
}

// ---- noise ----

SeedSpec image_seed(const GenerateParams& p, sampling::RngKind kind, int64_t seed, int64_t subseed, int i) {
    return SeedSpec{kind, seed + (p.subseed_strength == 0.f ? i : 0), subseed + i, p.subseed_strength,
                    p.seed_resize_from_w, p.seed_resize_from_h, p.eta_noise_seed_delta};
}

ImageRng::ImageRng(const SeedSpec& spec, Shape item_shape)
    : spec_(spec), shape_(std::move(item_shape)), gen_(sampling::make_rng(spec.kind, uint64_t(spec.seed))) {}

Tensor ImageRng::first() {
    const int64_t C = shape_[0], H = shape_[1], W = shape_[2];
    Shape noise_shape = shape_;
    if (spec_.seed_resize_from_w > 0 && spec_.seed_resize_from_h > 0)
        noise_shape = {C, spec_.seed_resize_from_h / 8, spec_.seed_resize_from_w / 8};
    const bool resized = noise_shape != shape_;
    Tensor subnoise;
    if (spec_.subseed_strength != 0.f)
        subnoise = sampling::make_rng(spec_.kind, uint64_t(spec_.subseed))->randn(noise_shape);
    Tensor noise = resized ? sampling::make_rng(spec_.kind, uint64_t(spec_.seed))->randn(noise_shape)
                           : gen_->randn(shape_);
    if (subnoise.defined()) noise = slerp(spec_.subseed_strength, noise, subnoise);
    if (resized) {  // paste the old-size noise centred into a draw at the real size
        Tensor x = gen_->randn(shape_);
        const int64_t nh = noise_shape[1], nw = noise_shape[2];
        int64_t dx = (W - nw) / 2, dy = (H - nh) / 2;
        if ((W - nw) < 0 && (W - nw) % 2) dx = (W - nw - 1) / 2;  // Python floor division
        if ((H - nh) < 0 && (H - nh) % 2) dy = (H - nh - 1) / 2;
        const int64_t w = dx >= 0 ? nw : nw + 2 * dx, h = dy >= 0 ? nh : nh + 2 * dy;
        const int64_t tx = dx < 0 ? 0 : dx, ty = dy < 0 ? 0 : dy;
        const int64_t sx = std::max<int64_t>(-dx, 0), sy = std::max<int64_t>(-dy, 0);
        for (int64_t c = 0; c < C; ++c)
            for (int64_t y = 0; y < h; ++y)
                for (int64_t i = 0; i < w; ++i)
                    x.data()[(c * H + ty + y) * W + tx + i] = noise.data()[(c * nh + sy + y) * nw + sx + i];
        noise = x;
    }
    // A1111 ImageRNG.first(): with eta_noise_seed_delta the sampler's noise comes from a fresh generator.
    if (spec_.eta_noise_seed_delta != 0)
        gen_ = sampling::make_rng(spec_.kind, uint64_t(spec_.seed + spec_.eta_noise_seed_delta));
    return noise.reshape({1, C, H, W});
}

Tensor ImageRng::sample(double, double) {
    Tensor t = gen_->randn(shape_);
    return t.reshape({1, shape_[0], shape_[1], shape_[2]});
}

Tensor slerp(float val, const Tensor& low, const Tensor& high) {
    const int64_t C = low.dim(0), H = low.dim(1), W = low.dim(2);
    std::vector<float> dot(size_t(C * W));
    double dot_sum = 0;
    for (int64_t c = 0; c < C; ++c)
        for (int64_t x = 0; x < W; ++x) {
            float nl = 0, nh = 0;
            for (int64_t y = 0; y < H; ++y) {
                const float l = low.data()[(c * H + y) * W + x], h = high.data()[(c * H + y) * W + x];
                nl += l * l;
                nh += h * h;
            }
            nl = std::sqrt(nl);
            nh = std::sqrt(nh);
            float d = 0;
            for (int64_t y = 0; y < H; ++y)
                d += (low.data()[(c * H + y) * W + x] / nl) * (high.data()[(c * H + y) * W + x] / nh);
            dot[size_t(c * W + x)] = d;
            dot_sum += d;
        }
    Tensor out = Tensor::empty(low.shape());
    if (dot_sum / double(C * W) > 0.9995) {
        for (int64_t i = 0; i < low.numel(); ++i) out.data()[i] = low.data()[i] * val + high.data()[i] * (1.f - val);
        return out;
    }
    for (int64_t c = 0; c < C; ++c)
        for (int64_t x = 0; x < W; ++x) {
            const float omega = std::acos(dot[size_t(c * W + x)]), so = std::sin(omega);
            const float a = std::sin((1.f - val) * omega) / so, b = std::sin(val * omega) / so;
            for (int64_t y = 0; y < H; ++y) {
                const int64_t i = (c * H + y) * W + x;
                out.data()[i] = a * low.data()[i] + b * high.data()[i];
            }
        }
    return out;
}

// ---- steps ----

Img2ImgSteps img2img_steps(int steps, float strength, bool fixed) {
    const float d = std::min(strength, 0.999f);
    if (fixed) return {strength > 0 ? int(float(steps) / d) : 0, steps - 1};
    return {steps, int(d * float(steps))};
}

// ---- sampling ----

namespace {
Tensor blend(const Tensor& z0, const LatentMask& m, const Tensor& x) {
    Tensor out = Tensor::empty(x.shape());
    for (int64_t i = 0; i < x.numel(); ++i)
        out.data()[i] = z0.data()[i] * m.mask.data()[i] + m.nmask.data()[i] * x.data()[i];
    return out;
}
}  // namespace

CFGOptions cfg_options(const GenerateParams& p, TimestepMode timesteps, int64_t h, int64_t w) {
    CFGOptions o{p.cfg_scale, {}, timesteps, batch_cond_uncond_for(h * w)};
    if (p.cache_mode == "deepcache") o.deepcache_interval = p.cache_interval;
    return o;
}

Result<Tensor> run_sampler(const SDModel& m, const Conditioning& c, const CFGOptions& cfg, const SampleJob& job,
                           ImageRng& rng, const sampling::StepCallback& cb) {
    const ResolvedSampler& s = *job.sampler;
    const bool img2img = job.init_latent.defined();
    const Tensor z0 = job.init_latent;
    sampling::Denoiser den = make_cfg_denoiser(m, c.cond, c.uncond, cfg);
    Tensor noise = rng.first();
    Tensor partial;  // the denoised prediction of the step that was cancelled (keep_partial)
    const sampling::StepCallback step_cb = [&](int step, int total, const Tensor& x, const Tensor& d) {
        if (!cb || cb(step, total, x, d)) return true;
        if (job.keep_partial) partial = d.clone();
        return false;
    };
    Result<Tensor> out = [&]() -> Result<Tensor> {
        if (s.sigmas.empty()) {  // DDIM works in VP space on ldm's timesteps
            sampling::DdimPlan plan = s.ddim;
            Tensor x = noise;
            if (img2img) {
                const int t_enc = std::clamp(job.t_enc, 0, int(plan.timesteps.size()) - 1);
                const double a = m.schedule.alphas_cumprod()[size_t(plan.timesteps[size_t(t_enc)])];
                x = Tensor::empty(z0.shape());
                for (int64_t i = 0; i < x.numel(); ++i)
                    x.data()[i] = float(z0.data()[i] * std::sqrt(a) + noise.data()[i] * std::sqrt(1.0 - a));
                for (auto* v : {&plan.alphas, &plan.alphas_prev, &plan.sigmas, &plan.k_sigmas}) v->resize(size_t(t_enc));
                plan.timesteps.resize(size_t(t_enc));
                if (job.mask) {  // A1111 mask_before_denoising: the VP-space model input is blended with z0
                    den = [inner = den, z0, mask = *job.mask](const Tensor& xk, float sigma) {
                        const float k = std::sqrt(1.f + sigma * sigma);
                        Tensor xb = Tensor::empty(xk.shape());
                        for (int64_t i = 0; i < xk.numel(); ++i)
                            xb.data()[i] = (z0.data()[i] * mask.mask.data()[i] + mask.nmask.data()[i] * xk.data()[i] / k) * k;
                        Tensor d = inner(xb, sigma);  // the sampler reads eps = (xk - out) / sigma: keep eps(xb)
                        for (int64_t i = 0; i < xk.numel(); ++i) d.data()[i] += xk.data()[i] - xb.data()[i];
                        return d;
                    };
                }
            }
            return sampling::sample_ddim(den, x, plan, rng, step_cb);
        }
        std::span<const float> sigmas(s.sigmas);
        std::span<const float> tcd_alpha(s.tcd_alpha);
        auto run = [&](Tensor x) -> Result<Tensor> {
            if (!tcd_alpha.empty()) return sampling::sample_tcd(den, std::move(x), sigmas, tcd_alpha, sampling::kTcdGamma, rng, step_cb);
            return s.fn(den, std::move(x), sigmas, rng, step_cb);
        };
        if (img2img) {
            const int S = int(sigmas.size()) - 1;
            const int t_enc = std::clamp(job.t_enc, 0, S - 1);
            sigmas = sigmas.subspan(size_t(S - t_enc - 1));
            if (!tcd_alpha.empty()) tcd_alpha = tcd_alpha.subspan(size_t(S - t_enc - 1));
            if (job.mask)
                den = [inner = den, z0, mask = *job.mask](const Tensor& x, float sigma) {
                    return blend(z0, mask, inner(x, sigma));
                };
            Tensor x = Tensor::empty(z0.shape());
            for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = z0.data()[i] + noise.data()[i] * sigmas[0];
            return run(std::move(x));
        }
        Tensor x = noise;
        for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] *= sigmas[0];
        return run(std::move(x));
    }();
    if (!out && out.error().code == Errc::cancelled && partial.defined()) {
        if (job.interrupted) *job.interrupted = true;
        out = partial;
    }
    if (!out) return out;
    if (img2img && job.mask) return blend(z0, *job.mask, *out);
    return out;
}

// ---- decode ----

bool decodes_with_taesd(const SDModel& m) { return m.taesd && m.taesd->has_decoder() && m.taesd_decode; }

Tensor decode_latent(const SDModel& m, const Tensor& z) {
    if (!decodes_with_taesd(m)) return m.vae.decode_auto(z);
    Tensor x = m.taesd->decode(z);  // [0, 1] -> [-1, 1], as the VAE's
    for (float& v : x.span()) v = v * 2.f - 1.f;
    return x;
}

namespace {
// A1111's "Approx cheap" live preview (sd_vae_approx.cheap_approximation): each latent pixel's 4 channels
// times a fixed 4x3 matrix (SD 1.x), mapped from [-1, 1] to 8 bits; latent resolution.
Image cheap_preview(const Tensor& z) {
    static constexpr float kCoefs[4][3] = {
        {0.298f, 0.207f, 0.208f}, {0.187f, 0.286f, 0.173f}, {-0.158f, 0.189f, 0.264f}, {-0.184f, -0.271f, -0.473f}};
    if (!z.defined() || z.shape().size() != 4 || z.dim(1) != 4) return {};
    const int h = int(z.dim(2)), w = int(z.dim(3));
    Image im{w, h, 3, std::vector<uint8_t>(size_t(w) * size_t(h) * 3)};
    for (int i = 0; i < h * w; ++i)
        for (int c = 0; c < 3; ++c) {
            float v = 0;
            for (int l = 0; l < 4; ++l) v += z.data()[size_t(l) * size_t(h * w) + size_t(i)] * kCoefs[l][c];
            im.pixels[size_t(i) * 3 + size_t(c)] = uint8_t(std::clamp((v + 1.f) / 2.f, 0.f, 1.f) * 255.f);
        }
    return im;
}

}  // namespace

Image preview_image(const SDModel& m, const Tensor& denoised) {
    if (m.taesd && m.taesd->has_decoder() && denoised.defined() && denoised.dim(1) == m.taesd->config().latent_channels) {
        Tensor x = m.taesd->decode(denoised.slice0(0, 1));
        for (float& v : x.span()) v = v * 2.f - 1.f;
        return image_from_tensor(x, 0);
    }
    return cheap_preview(denoised);
}

// ---- VAE ----

Tensor encode_latent(const SDModel& m, const Tensor& x) {
    Tensor moments = m.vae.encode_moments_auto(x);  // [1, 8, h, w]: mean, logvar
    const int64_t h = moments.dim(2), w = moments.dim(3), hw = h * w;
    const float scale = m.vae.scale();  // the family's (SD 1.x / 2.x: 0.18215)
    Tensor z(Shape{1, 4, h, w});
    for (int64_t i = 0; i < 4 * hw; ++i) z.data()[i] = moments.data()[i] * scale;
    return z;
}

// ---- latent resampling ----

std::optional<LatentResize> latent_resize_mode(const std::string& name) {
    if (name == "Latent" || name == "latent") return LatentResize::bilinear;
    if (name == "Latent (antialiased)") return LatentResize::bilinear_aa;
    if (name == "Latent (bicubic)") return LatentResize::bicubic;
    if (name == "Latent (bicubic antialiased)") return LatentResize::bicubic_aa;
    if (name == "Latent (nearest)") return LatentResize::nearest;
    if (name == "Latent (nearest-exact)") return LatentResize::nearest_exact;
    return std::nullopt;
}

namespace {

// One axis of a separable resampling: out[i] = sum_k w[i][k] * in[idx[i][k]].
struct Axis {
    std::vector<std::vector<std::pair<int64_t, float>>> taps;
};

float cubic1(float x, float a) { return ((a + 2) * x - (a + 3)) * x * x + 1; }           // |x| <= 1
float cubic2(float x, float a) { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a; }     // 1 < |x| < 2

Axis make_axis(int64_t in, int64_t out, LatentResize mode) {
    Axis ax;
    ax.taps.resize(size_t(out));
    const float scale = float(in) / float(out);
    for (int64_t i = 0; i < out; ++i) {
        auto& t = ax.taps[size_t(i)];
        switch (mode) {
        case LatentResize::nearest:
            t.push_back({std::min(int64_t(std::floor(float(i) * scale)), in - 1), 1.f});
            break;
        case LatentResize::nearest_exact:
            t.push_back({std::min(int64_t(std::floor((float(i) + 0.5f) * scale)), in - 1), 1.f});
            break;
        case LatentResize::bilinear: {
            float src = std::max(scale * (float(i) + 0.5f) - 0.5f, 0.f);
            const int64_t i0 = int64_t(src), i1 = i0 + (i0 < in - 1 ? 1 : 0);
            const float l1 = src - float(i0);
            t.push_back({i0, 1.f - l1});
            t.push_back({i1, l1});
            break;
        }
        case LatentResize::bicubic: {
            const float a = -0.75f, src = scale * (float(i) + 0.5f) - 0.5f;
            const float f = std::floor(src), x = src - f;
            const float w[4] = {cubic2(x + 1, a), cubic1(x, a), cubic1(1 - x, a), cubic2(2 - x, a)};
            for (int k = 0; k < 4; ++k) t.push_back({std::clamp(int64_t(f) - 1 + k, int64_t(0), in - 1), w[k]});
            break;
        }
        case LatentResize::bilinear_aa:
        case LatentResize::bicubic_aa: {  // torch _upsample_*_aa: the kernel widened by the scale when shrinking
            const bool cubic = mode == LatentResize::bicubic_aa;
            auto filter = [&](float x) {
                x = std::fabs(x);
                if (!cubic) return x < 1 ? 1 - x : 0.f;
                return x < 1 ? cubic1(x, -0.5f) : x < 2 ? cubic2(x, -0.5f) : 0.f;
            };
            const float support = (cubic ? 2.f : 1.f) * std::max(scale, 1.f);
            const float invscale = scale >= 1 ? 1 / scale : 1.f, center = scale * (float(i) + 0.5f);
            const int64_t xmin = std::max(int64_t(center - support + 0.5f), int64_t(0));
            const int64_t xmax = std::min(int64_t(center + support + 0.5f), in);
            float total = 0;
            for (int64_t j = xmin; j < xmax; ++j) total += filter((float(j) - center + 0.5f) * invscale);
            for (int64_t j = xmin; j < xmax; ++j)
                t.push_back({j, total != 0 ? filter((float(j) - center + 0.5f) * invscale) / total : 0.f});
            break;
        }
        }
    }
    return ax;
}

}  // namespace

Tensor resize_latent(const Tensor& x, int64_t h, int64_t w, LatentResize mode) {
    const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
    const Axis ay = make_axis(H, h, mode), axx = make_axis(W, w, mode);
    Tensor out = Tensor::empty({N, C, h, w});
    for (int64_t nc = 0; nc < N * C; ++nc) {
        const float* src = x.data() + nc * H * W;
        float* dst = out.data() + nc * h * w;
        for (int64_t i = 0; i < h; ++i)
            for (int64_t j = 0; j < w; ++j) {
                float acc = 0;
                for (const auto& [yi, wy] : ay.taps[size_t(i)]) {
                    float row = 0;
                    for (const auto& [xi, wx] : axx.taps[size_t(j)]) row += wx * src[yi * W + xi];
                    acc += wy * row;
                }
                dst[i * w + j] = acc;
            }
    }
    return out;
}

}  // namespace nb::pipeline
