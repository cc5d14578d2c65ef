// `nanobanana generate`: txt2img, img2img, inpaint, outpaint and hires fix, with stable-diffusion.cpp's flag names
// and A1111's behaviour.
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "commands.h"
#include "progress.h"

namespace nb::cli {

namespace {

struct GenerateArgs {
    LoadOptions load;
    GenerateParams p;
    std::string output = "output.png";
    std::string aspect;
    int base = 512;
    bool grid = false;
    std::string params_from;
    std::string lora_dir;
    std::string embd_dir;            // --embd-dir; default: embeddings/ beside the model
    std::vector<std::string> loras;  // --lora PATH[:WEIGHT | :TE_WEIGHT:UNET_WEIGHT], repeatable
    bool verbose = false;
    std::string upscale_model;  // generate then upscale (cmd_upscale.cpp)
    UpscaleParams upscale{};    // scale 0: the upscaler's own factor, as `upscale`
    // Editing (img2img / inpaint / outpaint) and hires fix
    std::string init_img, mask_img, inpainting_fill, outpaint, resize_mode, seed_resize_from;
    bool strength_from_png = false;  // --params-from gave a denoising strength
    CLI::App* cmd = nullptr;    // to tell flags given on the command line from defaults
    bool given(const char* flag) const { return cmd->count(flag) > 0; }
};

// --lora PATH:W (te = unet = W), PATH:TE:UNET, or PATH (1.0): trailing ':number' fields are weights.
bool parse_lora(const std::string& spec, LoraWeight& out) {
    std::string path = spec;
    std::vector<float> w;
    for (size_t colon; w.size() < 2 && (colon = path.rfind(':')) != std::string::npos;) {
        const std::string num = path.substr(colon + 1);
        char* end = nullptr;
        const float v = std::strtof(num.c_str(), &end);
        if (num.empty() || *end != '\0') break;
        w.insert(w.begin(), v);
        path.resize(colon);
    }
    if (path.empty()) return false;
    out = {path, w.empty() ? 1.f : w[0], w.empty() ? 1.f : w.back()};
    return true;
}

// "out.png" -> out.png, out_1.png, ...; a name containing %d gets the index formatted in.
std::string output_name(const std::string& pattern, int i) {
    if (pattern.find("%d") != std::string::npos || pattern.find("%0") != std::string::npos) {
        std::vector<char> buf(pattern.size() + 32);
        std::snprintf(buf.data(), buf.size(), pattern.c_str(), i);
        return buf.data();
    }
    if (i == 0) return pattern;
    std::filesystem::path p(pattern);
    return (p.parent_path() / (p.stem().string() + "_" + std::to_string(i) + p.extension().string())).string();
}

// --aspect W:H with the longer side = base, both rounded to multiples of 8.
bool apply_aspect(const std::string& aspect, int base, GenerateParams& p) {
    int a = 0, b = 0;
    if (std::sscanf(aspect.c_str(), "%d:%d", &a, &b) != 2 || a <= 0 || b <= 0) return false;
    const double longer = std::max(a, b);
    auto r8 = [](double v) { return std::max(8, int(std::lround(v / 8.0)) * 8); };
    p.width = r8(base * a / longer);
    p.height = r8(base * b / longer);
    return true;
}

Image contact_sheet(const std::vector<GeneratedImage>& imgs) {
    const int n = int(imgs.size()), cols = int(std::ceil(std::sqrt(double(n)))), rows = (n + cols - 1) / cols;
    const int w = imgs[0].image.width, h = imgs[0].image.height;
    Image g{w * cols, h * rows, 3, std::vector<uint8_t>(size_t(w * cols) * size_t(h * rows) * 3, 0)};
    for (int i = 0; i < n; ++i)
        for (int y = 0; y < h; ++y)
            std::copy_n(imgs[size_t(i)].image.at(0, y), size_t(w) * 3, g.at((i % cols) * w, (i / cols) * h + y));
    return g;
}

// --params-from: the PNG's infotext fills every setting the command line did not give (A1111's "send to
// txt2img, then edit": explicit flags win).
Result<void> apply_params_from(GenerateArgs& a) {
    auto text = read_png_parameters(a.params_from);
    if (!text) return std::unexpected(text.error());
    if (text->empty()) return std::unexpected(Error{Errc::missing, a.params_from + ": no A1111 'parameters' text chunk"});
    GenerateParams from = a.p;
    if (auto r = params_from_infotext(*text, from); !r) return r;
    GenerateParams& p = a.p;
    if (!a.given("--prompt")) p.prompt = from.prompt;
    if (!a.given("--negative-prompt")) p.negative_prompt = from.negative_prompt;
    if (!a.given("--steps")) p.steps = from.steps;
    if (!a.given("--cfg-scale")) p.cfg_scale = from.cfg_scale;
    if (!a.given("--seed")) p.seed = from.seed;
    if (!a.given("--sampling-method")) p.sampler = from.sampler;
    if (!a.given("--scheduler")) p.scheduler = from.scheduler;
    if (!a.given("--clip-skip")) p.clip_skip = from.clip_skip;
    if (!a.given("--rng")) p.rng = from.rng;
    if (!a.given("--cache-mode")) p.cache_mode = from.cache_mode;
    if (!a.given("--cache-interval")) p.cache_interval = from.cache_interval;
    if (!a.given("--width") && a.aspect.empty()) p.width = from.width;
    if (!a.given("--height") && a.aspect.empty()) p.height = from.height;
    // Hires fix, variation seeds and the editing knobs travel too (an init image and mask do not: give -i).
    if (!a.given("--hires-fix") && from.enable_hr) {
        p.enable_hr = true;
        p.hr_scale = from.hr_scale;
        p.hr_resize_x = from.hr_resize_x;
        p.hr_resize_y = from.hr_resize_y;
        if (!a.given("--hr-upscaler")) p.hr_upscaler = from.hr_upscaler;
        if (!a.given("--hr-steps")) p.hr_second_pass_steps = from.hr_second_pass_steps;
        if (!a.given("--hr-prompt")) p.hr_prompt = from.hr_prompt;
        p.hr_negative_prompt = from.hr_negative_prompt;
    }
    a.strength_from_png = text->find("Denoising strength: ") != std::string::npos;
    if (!a.given("--strength") && !a.given("--hr-strength")) p.denoising_strength = from.denoising_strength;
    if (!a.given("--subseed")) p.subseed = from.subseed;
    if (!a.given("--ensd")) p.eta_noise_seed_delta = from.eta_noise_seed_delta;
    if (!a.given("--subseed-strength")) p.subseed_strength = from.subseed_strength;
    if (!a.given("--seed-resize-from"))
        p.seed_resize_from_w = from.seed_resize_from_w, p.seed_resize_from_h = from.seed_resize_from_h;
    if (!a.given("--mask-blur")) p.mask_blur = from.mask_blur;
    if (!a.given("--inpainting-fill")) p.inpainting_fill = from.inpainting_fill;
    if (!a.given("--only-masked")) p.inpaint_full_res = from.inpaint_full_res;
    if (!a.given("--only-masked-padding")) p.inpaint_full_res_padding = from.inpaint_full_res_padding;
    if (!a.given("--mask-invert")) p.inpainting_mask_invert = from.inpainting_mask_invert;
    if (!a.given("--mask-weight")) p.inpainting_mask_weight = from.inpainting_mask_weight;
    return {};
}

template <class... A>
std::unexpected<Error> bad(fmt::format_string<A...> f, A&&... args) {
    return std::unexpected(Error{Errc::invalid_argument, fmt::format(f, std::forward<A>(args)...)});
}

// --init-img / --mask / --outpaint / --inpainting-fill / --resize-mode / --hires-fix into GenerateParams. With an
// init image and no -W/-H, the processing size is the picture's (grown by --outpaint), rounded down to
// multiples of 8.
Result<void> apply_edit_args(GenerateArgs& a) {
    GenerateParams& p = a.p;
    if (!a.inpainting_fill.empty()) {
        static const char* kNames[] = {"fill", "original", "latent-noise", "latent-nothing"};
        p.inpainting_fill = -2;
        for (int i = 0; i < 4; ++i)
            if (a.inpainting_fill == kNames[i] || a.inpainting_fill == std::to_string(i)) p.inpainting_fill = i;
        if (p.inpainting_fill == -2)
            return bad(
                              "--inpainting-fill must be original, fill, latent-noise or latent-nothing (got '{}')",
                              a.inpainting_fill);
    }
    if (!a.resize_mode.empty()) {
        static const char* kNames[] = {"just-resize", "crop", "fill", "latent"};
        p.resize_mode = -1;
        for (int i = 0; i < 4; ++i)
            if (a.resize_mode == kNames[i] || a.resize_mode == std::to_string(i)) p.resize_mode = i;
        if (p.resize_mode < 0)
            return bad(
                              "--resize-mode must be just-resize, crop, fill or latent (0-3) (got '{}')", a.resize_mode);
    }
    if (!a.outpaint.empty()) {
        int v[4] = {0, 0, 0, 0};
        char tail = 0;
        if (std::sscanf(a.outpaint.c_str(), "%d,%d,%d,%d%c", &v[0], &v[1], &v[2], &v[3], &tail) != 4 ||
            *std::min_element(v, v + 4) < 0 || *std::max_element(v, v + 4) > 8192)
            return bad(
                              "--outpaint must be LEFT,TOP,RIGHT,BOTTOM pixels, each 0..8192 (got '{}')", a.outpaint);
        p.outpaint_left = v[0], p.outpaint_top = v[1], p.outpaint_right = v[2], p.outpaint_bottom = v[3];
        if (a.init_img.empty()) return bad("--outpaint needs -i/--init-img");
    }
    if (!a.seed_resize_from.empty()) {
        char tail = 0;
        if (std::sscanf(a.seed_resize_from.c_str(), "%dx%d%c", &p.seed_resize_from_w, &p.seed_resize_from_h, &tail) != 2)
            return bad("--seed-resize-from must be WxH (got '{}')", a.seed_resize_from);
    }
    if (!a.mask_img.empty() && a.init_img.empty()) return bad("--mask needs -i/--init-img");
    if (a.init_img.empty()) {
        if (a.given("--strength")) return bad("--strength needs -i/--init-img");
        if (!p.enable_hr) {
            for (const char* f : {"--hr-scale", "--hr-upscaler", "--hr-steps", "--hr-strength"})
                if (a.given(f)) return bad("{} needs --hires-fix", f);
        } else if (!a.given("--hr-strength") && !a.strength_from_png) {
            p.denoising_strength = 0.7f;  // A1111's hires-fix default
        }
        return {};
    }
    if (p.enable_hr) return bad("--hires-fix is for txt2img: drop -i/--init-img");
    auto img = load_image(a.init_img);
    if (!img) return std::unexpected(Error{img.error().code, "-i/--init-img: " + img.error().message});
    p.init_image = std::move(*img);
    if (!a.mask_img.empty()) {
        auto m = load_image(a.mask_img);
        if (!m) return std::unexpected(Error{m.error().code, "--mask: " + m.error().message});
        p.mask = std::move(*m);
    }
    auto r8 = [](int v) { return std::max(8, v / 8 * 8); };
    if (!a.given("--width") && a.aspect.empty())
        p.width = r8(p.init_image.width + p.outpaint_left + p.outpaint_right);
    if (!a.given("--height") && a.aspect.empty())
        p.height = r8(p.init_image.height + p.outpaint_top + p.outpaint_bottom);
    return {};
}

// txt2img sizes not given (no -W/-H, --aspect without --base, no PNG to take them from) are the model family's
// (SD 1.x 512, SD 2.x 768-v 768): known once the model is loaded. Editing takes its size from the picture, the
// demo model keeps kDemoSize.
void apply_model_size(GenerateArgs& a, const ModelInfo& info) {
    if (!a.init_img.empty() || !a.params_from.empty()) return;
    if (!a.aspect.empty()) {
        if (!a.given("--base")) apply_aspect(a.aspect, std::max(info.default_width, info.default_height), a.p);
        return;
    }
    if (!a.given("--width")) a.p.width = info.default_width;
    if (!a.given("--height")) a.p.height = info.default_height;
}

int run_generate(GenerateArgs& a) {
    auto fail = [](const Error& e) {
        std::fprintf(stderr, "nanobanana: %s\n", e.message.c_str());
        return exit_code(e);
    };
    const bool demo = a.load.model_path.empty();
    if (demo) {
        // The demo model's pictures are kDemoSize square: each side not given otherwise takes that size.
        if (!a.given("--width")) a.p.width = kDemoSize;
        if (!a.given("--height")) a.p.height = kDemoSize;
    }
    if (!a.params_from.empty())
        if (auto r = apply_params_from(a); !r) return fail(r.error());
    if (!a.aspect.empty() && !apply_aspect(a.aspect, a.base, a.p))
        return fail({Errc::invalid_argument, "--aspect must look like 16:9 (got '" + a.aspect + "')"});
    if (auto r = apply_edit_args(a); !r) return fail(r.error());
    // Everything that needs no model is checked before the (possibly minutes long) load and sampling.
    if (auto r = validate(a.p); !r) return fail(r.error());
    if (auto r = validate(a.load); !r) return fail(r.error());
    if (auto r = check_output_png(a.output, "-o/--output"); !r) return fail(r.error());
    if (a.upscale.scale != 0 && (a.upscale.scale < 1 || a.upscale.scale > 8))
        return fail({Errc::invalid_argument, "--upscale-scale must be 1..8"});
    std::vector<LoraWeight> flag_loras;
    for (const auto& spec : a.loras) {
        LoraWeight lw;
        if (!parse_lora(spec, lw))
            return fail({Errc::invalid_argument, "--lora must be PATH[:WEIGHT] (got '" + spec + "')"});
        std::error_code ec;
        if (!std::filesystem::is_regular_file(lw.path, ec))
            return fail({Errc::missing, "--lora: no such file: " + lw.path});
        flag_loras.push_back(lw);
    }
    if (a.load.vae != "auto" && a.load.vae != "none" && a.load.vae != "Automatic" && a.load.vae != "None") {
        std::error_code ec;  // a missing file fails before the (possibly long) load
        if (!std::filesystem::is_regular_file(a.load.vae, ec))
            return fail({Errc::missing, "--vae: no such file: " + a.load.vae});
    }
    if (demo) {
        a.load.model_path = find_demo_model();
        if (a.load.model_path.empty()) return fail({Errc::invalid_argument, "no model given: pass -m/--model PATH"});
        std::fprintf(stderr, "no -m given: using the built-in demo model\n");
        // Its LoRA (<lora:demo_monochrome:0.8>) ships beside it.
        if (a.lora_dir.empty())
            a.lora_dir = (std::filesystem::path(a.load.model_path).parent_path() / "lora").string();
    }
    std::unique_ptr<Upscaler> upscaler;  // loaded first so a bad upscaler fails before sampling
    if (!a.upscale_model.empty()) {
        auto u = Upscaler::load(a.upscale_model, a.load.threads);
        if (!u) return fail(u.error());
        upscaler = std::move(*u);
    }
    a.load.lora_dir = a.lora_dir;
    a.load.embedding_dir = !a.embd_dir.empty()
                               ? a.embd_dir
                               : (std::filesystem::path(a.load.model_path).parent_path() / "embeddings").string();
    a.p.loras = flag_loras;
    install_interrupt_handler();
    // One generation per process: each component is converted when its phase starts and freed after it.
    a.load.release_idle_weights = true;
    std::fprintf(stderr, "loading %s\n", a.load.model_path.c_str());
    auto engine = Engine::load(a.load);
    if (!engine) return fail(engine.error());
    for (const auto& w : (*engine)->load_warnings()) std::fprintf(stderr, "warning: %s\n", w.c_str());
    if (!demo) apply_model_size(a, (*engine)->info());
    ProgressBar bar;
    auto images = (*engine)->generate(a.p, [&](const Progress& pr) { return bar.update(pr); });
    if (!images) return fail(images.error());
    // Ctrl-C during a batch: the images finished before it are kept (the engine decoded them).
    if (!images->empty())
        for (const auto& w : images->front().warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    for (size_t i = 0; i < images->size(); ++i) {
        const auto& g = (*images)[i];
        const std::string path = output_name(a.output, int(i));
        if (auto r = save_generated(path, g.image, g.parameters, upscaler.get(), a.upscale); !r) return fail(r.error());
        std::fprintf(stderr, "saved %s (seed %lld)\n", path.c_str(), (long long)g.seed);
    }
    if (a.grid && images->size() > 1) {
        std::filesystem::path p(a.output);
        const std::string path = (p.parent_path() / (p.stem().string() + "_grid.png")).string();
        if (auto r = save_png(path, contact_sheet(*images), (*images)[0].parameters); !r) return fail(r.error());
        std::fprintf(stderr, "saved %s\n", path.c_str());
    }
    bar.finish();
    if (interrupted()) {
        std::fprintf(stderr, "interrupted: kept %zu of %d images\n", images->size(), a.p.batch_count);
        return 130;
    }
    if (a.verbose) {
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        std::fprintf(stderr, "peak RSS: %.1f MB\n", double(ru.ru_maxrss) / 1024.0);
    }
    return 0;
}

}  // namespace

CommandRunner register_generate(CLI::App& app) {
    auto a = std::make_shared<GenerateArgs>();
    auto* s = app.add_subcommand("generate", "Generate images: txt2img, or img2img / inpaint / outpaint with -i");
    a->cmd = s;
    s->add_option("-m,--model", a->load.model_path, "Checkpoint: .safetensors file or diffusers folder");
    s->add_option("--vocab", a->load.vocab_path, "CLIP vocabulary (bpe_simple_vocab_16e6.txt.gz or vocab.json folder)");
    s->add_option("-p,--prompt", a->p.prompt, "Prompt (A1111 syntax)");
    s->add_option("-n,--negative-prompt", a->p.negative_prompt, "Negative prompt");
    s->add_option("--steps", a->p.steps, "Sampling steps")->capture_default_str()->check(CLI::Range(1, 1000));
    s->add_option("--cfg-scale", a->p.cfg_scale, "Classifier-free guidance scale")->capture_default_str();
    s->add_option("-s,--seed", a->p.seed, "Seed (-1 = random)")->capture_default_str();
    s->add_option("--sampling-method", a->p.sampler,
                  "euler, euler_a, heun, dpm2, dpm2_a, dpm++2s_a, dpm++2m, dpm++2m_sde, dpm++_sde, dpm++3m_sde, lms, "
                  "lcm, ddim, or an A1111 name such as \"DPM++ 2M Karras\"")
        ->capture_default_str();
    s->add_option("--scheduler", a->p.scheduler,
                  "discrete, karras, exponential, sgm_uniform, lcm, or an A1111 label (Uniform, Karras, ...) "
                  "[automatic: A1111's choice per sampler]");
    s->add_option("-W,--width", a->p.width,
                  "Width in pixels, multiple of 8 [the model's: 512, SD 2.x 768-v 768; the demo model: 64]");
    s->add_option("-H,--height", a->p.height,
                  "Height in pixels, multiple of 8 [the model's: 512, SD 2.x 768-v 768; the demo model: 64]");
    s->add_option("--aspect", a->aspect, "Aspect preset 1:1, 16:9, 9:16, 4:3, 3:4 ... (longer side = --base)");
    s->add_option("--base", a->base, "Longer side for --aspect [the model's default size]");
    s->add_option("--clip-skip", a->p.clip_skip, "A1111 clip skip (1 = last layer)")->capture_default_str();
    s->add_option("-b,--batch-count", a->p.batch_count, "Images to generate (seeds seed, seed+1, ...)")
        ->capture_default_str();
    s->add_option("--rng", a->p.rng, "Noise source: cuda (A1111 GPU/Philox) or cpu (torch CPU)")->capture_default_str();
    s->add_option("--cache-mode", a->p.cache_mode,
                  "Step caching: none, or deepcache (reuse the UNet's deep features between steps: faster, slightly "
                  "different images)")
        ->default_str("none");
    s->add_option("--cache-interval", a->p.cache_interval,
                  "deepcache: run the whole UNet every N-th model call (2..10)")
        ->capture_default_str();
    s->add_option("-o,--output", a->output, "Output PNG (out.png, out_1.png, ...; or a %d pattern)")
        ->capture_default_str();
    s->add_flag("--grid", a->grid, "Also write a contact sheet of all images (<output>_grid.png)");
    s->add_option("--params-from", a->params_from, "Take prompt and settings from an A1111 PNG's parameters");
    s->add_option("--lora-model-dir", a->lora_dir, "Folder searched for <lora:name:weight> files");
    s->add_option("--embd-dir", a->embd_dir,
                  "Folder of textual-inversion embeddings (.safetensors/.pt/.bin; a prompt word naming one is "
                  "replaced by its vectors) [embeddings/ beside the model]");
    s->add_option("--lora", a->loras, "LoRA file to merge: PATH[:WEIGHT] or PATH:TE_WEIGHT:UNET_WEIGHT (repeatable)");
    s->add_option("-t,--threads", a->load.threads, "Threads (0 = all cores)")->capture_default_str();
    s->add_option("--precision", a->load.precision, "auto (fp32, attention in bf16 where the CPU has it natively), bf16 (faster, ~2 % image change) or fp32 (exact)")
        ->capture_default_str();
    s->add_option("--type", a->load.weight_type,
                  "UNet weights in memory: auto (exact; 16-bit where lossless), f32, or q8_0 (8-bit, lossy, ~1 GB less)")
        ->capture_default_str();
    s->add_option("--backend", a->load.backend, "cpu, or ref (scalar reference kernels: slow, for checking)")
        ->capture_default_str();
    s->add_option("--prediction", a->load.prediction,
                  "What the UNet predicts: auto (file metadata, else A1111's SD 2.x test forward, else eps), eps or v")
        ->capture_default_str();
    s->add_option("--taesd", a->load.taesd,
                  "TAESD decoder (taesd_decoder.pth / .safetensors): fast low-quality final decode and live previews");
    s->add_option("--vae", a->load.vae,
                  "VAE file replacing the checkpoint's (.safetensors or .pt; LDM or diffusers names), or auto "
                  "(<model>.vae.safetensors beside the checkpoint, else its own) or none (the checkpoint's own)")
        ->capture_default_str();
    s->add_option("--upscale-model", a->upscale_model, "Upscale each image with this Real-ESRGAN model");
    s->add_option("--upscale-scale", a->upscale.scale, "Factor for --upscale-model, 1..8 [the model's own]");
    // Editing: stable-diffusion.cpp's names where it has them (-i, --mask, --strength), A1111's knobs otherwise.
    s->add_option("-i,--init-img", a->init_img, "img2img / inpaint / outpaint: the starting picture (PNG or JPEG)");
    s->add_option("--mask", a->mask_img, "Inpaint mask (PNG or JPEG): white = repaint; a transparent PNG: its alpha");
    s->add_option("--strength", a->p.denoising_strength, "img2img denoising strength 0..1 (0 = the input unchanged)")
        ->capture_default_str();
    s->add_option("--resize-mode", a->resize_mode,
                  "How the init image meets -W/-H: just-resize (default), crop, fill, latent (0-3 as A1111)");
    s->add_option("--mask-blur", a->p.mask_blur, "Mask feather in pixels (Gaussian sigma)")->capture_default_str();
    s->add_option("--inpainting-fill", a->inpainting_fill,
                  "What the masked area starts from: original (default), fill, latent-noise (outpaint default), "
                  "latent-nothing");
    s->add_flag("--only-masked", a->p.inpaint_full_res, "Inpaint only the masked region at full -W/-H, pasted back");
    s->add_option("--only-masked-padding", a->p.inpaint_full_res_padding, "Pixels around the mask for --only-masked")
        ->capture_default_str();
    s->add_flag("--mask-invert", a->p.inpainting_mask_invert, "Repaint what is NOT masked");
    s->add_option("--mask-weight", a->p.inpainting_mask_weight,
                  "Inpainting models: how strongly the mask conditions (A1111 inpainting_mask_weight)")
        ->capture_default_str();
    s->add_option("--outpaint", a->outpaint, "Grow the canvas by LEFT,TOP,RIGHT,BOTTOM pixels and paint the new area");
    s->add_flag("--hires-fix", a->p.enable_hr, "txt2img at -W/-H, then upscale and refine (A1111 hires fix)");
    s->add_option("--hr-scale", a->p.hr_scale, "Hires fix factor")->capture_default_str();
    s->add_option("--hr-upscaler", a->p.hr_upscaler,
                  "Latent, \"Latent (bicubic)\", \"Latent (nearest-exact)\", ..., Lanczos, Nearest, or a Real-ESRGAN "
                  "model file")
        ->capture_default_str();
    s->add_option("--hr-steps", a->p.hr_second_pass_steps, "Hires second-pass steps [0 = --steps]");
    s->add_option("--hr-strength", a->p.denoising_strength, "Hires fix denoising strength [0.7]");
    s->add_option("--hr-prompt", a->p.hr_prompt, "Prompt for the hires pass [the prompt]");
    s->add_option("--subseed", a->p.subseed, "Variation seed (-1 = random)")->capture_default_str();
    s->add_option("--subseed-strength", a->p.subseed_strength, "How far toward the variation seed's noise, 0..1")
        ->capture_default_str();
    s->add_option("--seed-resize-from", a->seed_resize_from, "WxH: keep a seed's look from that size");
    s->add_option("--ensd", a->p.eta_noise_seed_delta, "A1111 eta noise seed delta (e.g. 31337; 0 = off)")
        ->capture_default_str();
    s->add_flag("-v,--verbose", a->verbose, "Report peak memory at the end");
    return [a] { return run_generate(*a); };
}

}  // namespace nb::cli
