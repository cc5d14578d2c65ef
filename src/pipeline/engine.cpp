// include/nanobanana/engine.h: the public face of the pipeline layer.
#include "nanobanana/engine.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include <fmt/format.h>

#include "backend/context.h"
#include "backend/weights.h"
#include "image/edit.h"
#include "image/image.h"
#include "io/hash.h"
#include "pipeline/infotext.h"
#include "pipeline/lora.h"
#include "pipeline/options.h"
#include "pipeline/stages.h"
#include "pipeline/txt2img.h"
#include "sampling/registry.h"
#include "sampling/rng.h"
#include "sampling/schedule.h"
#include "text/prompt.h"

#ifndef NB_VERSION
#define NB_VERSION "0.1.0"
#endif

namespace nb {

struct Engine::Impl {
    // The kernels' settings and caches for this engine, made current on the thread of each call (first
    // member: it outlives the model).
    std::unique_ptr<backend::Context> ctx;
    std::unique_ptr<pipeline::SDModel> model;
    std::string hash10;  // A1111 "Model hash", computed on first use
    std::string vae_hash10;  // A1111 "VAE hash" of the external VAE in use, computed on first use
    std::string lora_dir;
    pipeline::LoraSet loras;  // the LoRAs merged into `model` now
    bool release_idle_weights = false;
    std::string upscaler_dir;
    std::vector<std::string> load_warnings;  // embedding files skipped
};

Engine::Engine() : impl_(std::make_unique<Impl>()) {}
Engine::~Engine() = default;

namespace {

// Nothing throws across the public API: a kernel's logic error (or an allocation failure) becomes an error
// result naming what was being done.
template <class F>
auto guarded(const char* doing, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const std::bad_alloc&) {
        return make_error(Errc::internal, "out of memory while {}", doing);
    } catch (const std::exception& e) {
        return make_error(Errc::internal, "internal error while {}: {}", doing, e.what());
    }
}

}  // namespace

Result<std::unique_ptr<Engine>> Engine::load(const LoadOptions& opt) {
    return guarded("loading", [&] { return load_impl(opt); });
}

Result<std::unique_ptr<Engine>> Engine::load_impl(const LoadOptions& opt) {
    if (auto r = validate(opt); !r) return std::unexpected(r.error());
    NB_TRY(precision, parse_precision(opt.precision));
    NB_TRY(storage, parse_weight_type(opt.weight_type));
    NB_TRY(prediction, pipeline::parse_prediction(opt.prediction));
    backend::Settings settings;
    settings.backend = opt.backend == "ref" ? ops::Backend::ref : ops::Backend::cpu;
    apply_precision(precision, ops::kAllOps, settings);
    settings.threads = opt.threads;
    auto ctx = std::make_unique<backend::Context>(settings);
    backend::Scope scope(*ctx);
    NB_TRY(model, pipeline::SDModel::load(opt.model_path, opt.vocab_path, opt.release_idle_weights, storage, prediction,
                                          pipeline::resolve_vae(opt.vae, opt.model_path)));
    if (!opt.taesd.empty()) {
        NB_TRY(tiny, taesd::Model::load(opt.taesd));
        if (!tiny.has_decoder())
            return make_error(Errc::invalid_argument, "taesd: {} holds no decoder (a taesd_decoder file is needed)",
                              opt.taesd);
        if (tiny.config().latent_channels != model->unet.config().out_channels)
            return make_error(Errc::invalid_argument, "taesd: {} decodes {}-channel latents ({}); this model's have {}",
                              opt.taesd, tiny.config().latent_channels, tiny.config().summary(),
                              model->unet.config().out_channels);
        model->taesd = std::move(tiny);
        model->taesd_decode = opt.taesd_decode;
    }
    std::unique_ptr<Engine> e(new Engine());
    e->impl_->ctx = std::move(ctx);
    e->impl_->model = std::move(model);
    e->impl_->lora_dir = opt.lora_dir;
    e->impl_->upscaler_dir = opt.upscaler_dir;
    e->impl_->release_idle_weights = opt.release_idle_weights;
    if (!opt.embedding_dir.empty()) {
        auto& m = *e->impl_->model;
        auto set = std::make_shared<pipeline::EmbeddingSet>(
            pipeline::EmbeddingSet::load(opt.embedding_dir, m.clip.config().hidden, &m.tokenizer));
        e->impl_->load_warnings = set->warnings();
        m.embeddings = std::move(set);
    }
    return e;
}

std::vector<EmbeddingInfo> Engine::embeddings() const {
    std::vector<EmbeddingInfo> out;
    if (const auto& set = impl_->model->embeddings) {
        for (const auto& e : set->loaded()) out.push_back(e.info);
        out.insert(out.end(), set->skipped().begin(), set->skipped().end());
    }
    return out;
}

std::vector<std::string> Engine::load_warnings() const { return impl_->load_warnings; }

const std::string& Engine::model_name() const { return impl_->model->name; }

std::string Engine::model_hash() {
    auto& m = *impl_->model;
    if (impl_->hash10.empty() && m.store->format() != "diffusers")
        if (auto h = sha256_file_cached(m.path)) impl_->hash10 = h->substr(0, 10);
    return impl_->hash10;
}

Result<void> Engine::set_vae(const std::string& vae) {
    return guarded("loading the VAE", [&]() -> Result<void> {
        auto& m = *impl_->model;
        const std::string file = pipeline::resolve_vae(vae, m.path);
        if (file == m.vae_path) return {};
        backend::Scope scope(*impl_->ctx);  // the new weights are converted and packed in this engine's context
        if (auto r = m.use_vae(file); !r) return r;
        impl_->vae_hash10.clear();
        ops::return_free_memory();  // the old VAE's weights
        return {};
    });
}

ModelInfo Engine::info() const {
    const auto& m = *impl_->model;
    const pipeline::FamilyPreset& f = m.family_preset();
    ModelInfo i;
    i.family = f.name;
    for (const auto& te : f.text_encoders) i.text_encoders.push_back(te.name);
    i.prediction = pipeline::prediction_name(m.prediction);
    i.prediction_source = pipeline::source_name(m.prediction_source);
    i.vae_scale = m.vae.scale();
    i.default_width = i.default_height = m.default_size();
    i.vae = m.vae_path;
    return i;
}

namespace {

// "1.6 GB f16 + 2.1 MB f32": what a component's weights cost now, by the type they are held in.
std::string held_summary(const nn::WeightSet& w) {
    std::string out;
    for (const auto& [type, bytes] : w.held_bytes()) {
        if (!out.empty()) out += " + ";
        out += bytes >= (int64_t(1) << 30) ? fmt::format("{:.2f} GB {}", double(bytes) / double(1 << 30), type)
                                           : fmt::format("{:.1f} MB {}", double(bytes) / double(1 << 20), type);
    }
    return out.empty() ? "released" : out;
}

}  // namespace

std::string Engine::describe() const {
    const auto& m = *impl_->model;
    const auto& u = m.unet.config();
    const auto& c = m.clip.config();
    const ModelInfo i = info();
    // SD 1.x UNets keep the name their block list gives (compact BK-SDM variants, tiny test models).
    const bool sd1 = m.family == pipeline::ModelFamily::sd1 || m.family == pipeline::ModelFamily::sd1_inpaint;
    return fmt::format(
        "family: {}\narchitecture: {}\nunet: {}\ntext encoder: {}, {} layers, width {}, {} heads\n"
        "prediction: {} (from {})\nvae scale: {}\ndefault size: {}x{}\nweights held: text encoder {}, unet {}, vae {}",
        i.family, sd1 ? u.family() : i.family, u.summary(), i.text_encoders.front(), c.layers, c.hidden, c.heads,
        i.prediction, i.prediction_source, i.vae_scale, i.default_width, i.default_height,
        held_summary(m.clip_weights), held_summary(m.unet_weights), held_summary(m.vae_weights)) +
           (m.has_clip2 ? fmt::format("\ntext encoder 2: {}, {} layers, width {}, {} heads", i.text_encoders.back(),
                                      m.clip2.config().layers, m.clip2.config().hidden, m.clip2.config().heads)
                        : "") +
           (m.vae_path.empty() ? "" : "\nvae file: " + m.vae_path);
}

namespace {

// A1111's "TI hashes": each text-encoder call (negative prompt, then prompt) puts the embeddings it used in
// front of those already listed, so the prompt's come first, then the negative prompt's (an embedding in both
// is listed twice, as A1111 does); distinct hires prompts, encoded after them, come before all.
std::string ti_hashes(const pipeline::SDModel& m, const GenerateParams& p, const std::string& prompt) {
    if (!m.embeddings || m.embeddings->loaded().empty()) return "";
    auto group = [&](const std::string& text) {
        std::vector<int> used;
        for (const auto& e : text::prompt_schedules(text, p.steps))
            for (int i : m.embeddings->used_by(m.tokenizer, e.text))
                if (std::ranges::find(used, i) == used.end()) used.push_back(i);
        return m.embeddings->hashes(used);
    };
    std::vector<std::string> parts;
    const bool hr_prompts = p.enable_hr && ((!p.hr_prompt.empty() && p.hr_prompt != p.prompt) ||
                                            (!p.hr_negative_prompt.empty() && p.hr_negative_prompt != p.negative_prompt));
    if (hr_prompts) {
        parts.push_back(group(p.hr_prompt.empty() ? prompt : p.hr_prompt));
        parts.push_back(group(p.hr_negative_prompt.empty() ? p.negative_prompt : p.hr_negative_prompt));
    }
    parts.push_back(group(prompt));
    parts.push_back(group(p.negative_prompt));
    std::string out;
    for (const auto& s : parts)
        if (!s.empty()) out += (out.empty() ? "" : ", ") + s;
    return out;
}

// A weight as A1111 writes it in a tag: shortest form ("0.8", "1").
std::string tag_weight(float w) { return pipeline::format_number(w); }

// The external VAE as A1111's infotext names it: file name with extension, first 10 hex of its sha256.
struct VaeLabel {
    std::string name, hash;
};

std::string infotext_for(const GenerateParams& p, const pipeline::ResolvedSampler& s, int64_t seed, int64_t subseed,
                         const std::string& model, const std::string& hash, const VaeLabel& vae,
                         const std::string& lora_hashes, const std::string& ti_hashes) {
    pipeline::Infotext it;
    it.prompt = p.prompt;
    // LoRAs given as files travel as prompt tags (A1111 knows no other way), so the image can be remade from
    // its infotext with the file in the LoRA folder.
    for (const auto& l : p.loras) {
        const std::string name = std::filesystem::path(l.path).stem().string();
        it.prompt += " <lora:" + name + ":" + tag_weight(l.te_weight) +
                     (l.te_weight != l.unet_weight ? ":" + tag_weight(l.unet_weight) : "") + ">";
    }
    it.negative_prompt = p.negative_prompt;
    it.set("Steps", std::to_string(p.steps));
    it.set("Sampler", s.label);
    if (!s.schedule_label.empty()) it.set("Schedule type", s.schedule_label);
    it.set("CFG scale", pipeline::format_number(p.cfg_scale));
    it.set("Seed", std::to_string(seed));
    it.set("Size", fmt::format("{}x{}", p.width, p.height));
    if (!hash.empty()) it.set("Model hash", hash);
    it.set("Model", model);
    // A1111 create_infotext: both only while a VAE file replaces the checkpoint's (sd_vae.loaded_vae_file).
    if (!vae.hash.empty()) it.set("VAE hash", vae.hash);
    if (!vae.name.empty()) it.set("VAE", vae.name);
    if (p.clip_skip > 1) it.set("Clip skip", std::to_string(p.clip_skip));
    if (p.subseed_strength != 0) {
        it.set("Variation seed", std::to_string(subseed));
        it.set("Variation seed strength", pipeline::format_number(p.subseed_strength));
    }
    if (p.seed_resize_from_w > 0 && p.seed_resize_from_h > 0)
        it.set("Seed resize from", fmt::format("{}x{}", p.seed_resize_from_w, p.seed_resize_from_h));
    if (p.eta_noise_seed_delta != 0) it.set("ENSD", std::to_string(p.eta_noise_seed_delta));
    if (!p.init_image.pixels.empty() || p.enable_hr)
        it.set("Denoising strength", pipeline::format_number(p.denoising_strength));
    const bool outpaint = p.outpaint_left || p.outpaint_top || p.outpaint_right || p.outpaint_bottom;
    if (!p.init_image.pixels.empty() && (!p.mask.pixels.empty() || outpaint)) {
        it.set("Mask blur", std::to_string(p.mask_blur));
        if (p.inpainting_mask_invert) it.set("Mask mode", "Inpaint not masked");
        const int fill = p.inpainting_fill >= 0 ? p.inpainting_fill : outpaint ? 2 : 1;
        static const char* kFill[] = {"fill", "original", "latent noise", "latent nothing"};
        if (fill != 1) it.set("Masked content", kFill[fill]);
        if (p.inpaint_full_res) {
            it.set("Inpaint area", "Only masked");
            it.set("Masked area padding", std::to_string(p.inpaint_full_res_padding));
        }
        if (p.inpainting_mask_weight != 1.f)
            it.set("Conditional mask weight", pipeline::format_number(p.inpainting_mask_weight));
        if (outpaint)
            it.set("Outpaint", fmt::format("{},{},{},{}", p.outpaint_left, p.outpaint_top, p.outpaint_right,
                                           p.outpaint_bottom));
    }
    if (p.enable_hr) {
        if (p.hr_resize_x > 0 || p.hr_resize_y > 0) {
            const auto [w, h] = pipeline::hires_size(p);
            it.set("Hires resize", fmt::format("{}x{}", w, h));
        } else {
            it.set("Hires upscale", pipeline::format_number(p.hr_scale));
        }
        if (p.hr_second_pass_steps > 0) it.set("Hires steps", std::to_string(p.hr_second_pass_steps));
        it.set("Hires upscaler", std::filesystem::path(p.hr_upscaler).stem().string());
        if (!p.hr_prompt.empty() && p.hr_prompt != p.prompt) it.set("Hires prompt", p.hr_prompt);
        if (!p.hr_negative_prompt.empty() && p.hr_negative_prompt != p.negative_prompt)
            it.set("Hires negative prompt", p.hr_negative_prompt);
    }
    if (p.rng == "cpu" || p.rng == "CPU") it.set("RNG", "CPU");
    if (p.cache_mode == "deepcache") {
        it.set("Cache mode", "deepcache");
        it.set("Cache interval", std::to_string(p.cache_interval));
    }
    if (!lora_hashes.empty()) it.set("Lora hashes", lora_hashes);  // A1111 extra_generation_params
    if (!ti_hashes.empty()) it.set("TI hashes", ti_hashes);
    it.set("Version", std::string("nanobanana ") + NB_VERSION);
    return it.format();
}

}  // namespace

Result<std::vector<GeneratedImage>> Engine::generate(const GenerateParams& params, const ProgressFn& progress) {
    return guarded("generating", [&] { return generate_impl(params, progress); });
}

Result<std::vector<GeneratedImage>> Engine::generate_impl(const GenerateParams& params, const ProgressFn& progress) {
    auto& m = *impl_->model;
    GenerateParams p = params;
    if (auto r = validate(p); !r) return std::unexpected(r.error());
    backend::Scope scope(*impl_->ctx);  // this engine's settings and caches on the calling thread
    if (m.text_encoder == pipeline::TextEncoderKind::clip && p.clip_skip > int(m.clip.config().layers))
        return make_error(Errc::invalid_argument, "clip skip {} exceeds the text encoder's {} layers", p.clip_skip,
                          m.clip.config().layers);
    NB_TRY(lora, text::extract_lora_tags(p.prompt));
    NB_TRY(lora_reqs, pipeline::lora_requests(lora.loras, impl_->lora_dir, p.loras));
    if (!lora_reqs.empty() || !impl_->loras.empty()) {  // merging (or restoring) needs the weights' values
        if (auto r = m.clip_weights.acquire(); !r) return std::unexpected(r.error());
        if (auto r = m.unet_weights.acquire(); !r) return std::unexpected(r.error());
    }
    NB_TRY(lora_warnings, impl_->loras.activate(*impl_->model, lora_reqs));
    NB_TRY(lora_hashes, impl_->loras.hashes(lora_reqs));
    if (p.seed < 0) p.seed = int64_t(std::random_device{}() % 4294967294u);  // A1111: randrange(4294967294)
    if (p.subseed < 0) p.subseed = int64_t(std::random_device{}() % 4294967294u);
    model_hash();
    VaeLabel vae;
    if (!m.vae_path.empty()) {
        if (impl_->vae_hash10.empty())
            if (auto h = sha256_file_cached(m.vae_path)) impl_->vae_hash10 = h->substr(0, 10);
        vae = {std::filesystem::path(m.vae_path).filename().string(), impl_->vae_hash10};
    }
    NB_TRY(choice, pipeline::choose_sampler(m, p.sampler, p.scheduler, p.steps));
    const std::string ti = ti_hashes(m, p, lora.prompt);

    pipeline::Txt2ImgRequest req;
    req.params = p;
    req.seed = p.seed;
    req.subseed = p.subseed;
    req.upscaler_dir = impl_->upscaler_dir;
    req.params.prompt = lora.prompt;
    req.release_idle_weights = impl_->release_idle_weights;
    req.keep = impl_->loras.merged_keys();
    auto on_step = [&](int image, int step, int total, const Tensor& denoised) {
        if (!progress) return true;
        Progress pr{image, p.batch_count, step + 1, total, "sample", {}};
        pr.preview = [&m, &denoised] { return pipeline::preview_image(m, denoised); };
        return progress(pr);
    };
    NB_TRY(outs, p.init_image.pixels.empty() ? pipeline::txt2img(m, req, on_step) : pipeline::img2img(m, req, on_step));
    std::vector<GeneratedImage> result;
    for (auto& o : outs) {
        GeneratedImage g;
        g.image = o.pixels.pixels.empty() ? image_from_tensor(o.image, 0) : std::move(o.pixels);
        g.seed = o.seed;
        g.subseed = o.subseed;
        g.interrupted = o.interrupted;
        g.parameters = infotext_for(p, choice, o.seed, o.subseed, m.name, impl_->hash10, vae, lora_hashes, ti);
        g.warnings = lora_warnings;
        if (o.latent.defined()) g.latent.assign(o.latent.span().begin(), o.latent.span().end());
        result.push_back(std::move(g));
    }
    return result;
}

Result<void> save_png(const std::string& path, const Image& image, const std::string& parameters) {
    return write_png(path, image, {{"parameters", parameters}});
}

Result<std::string> read_png_parameters(const std::string& path) {
    NB_TRY(text, read_png_text(path));
    auto it = text.find("parameters");
    return it == text.end() ? std::string() : it->second;
}

std::vector<std::pair<std::string, std::string>> parse_infotext(const std::string& infotext) {
    const auto it = pipeline::Infotext::parse(infotext);
    std::vector<std::pair<std::string, std::string>> out{{"Prompt", it.prompt}, {"Negative prompt", it.negative_prompt}};
    out.insert(out.end(), it.params.begin(), it.params.end());
    return out;
}

Result<void> params_from_infotext(const std::string& infotext, GenerateParams& p) {
    const auto it = pipeline::Infotext::parse(infotext);
    p.prompt = it.prompt;
    p.negative_prompt = it.negative_prompt;
    auto num = [&](const char* key, auto& dst) -> Result<void> {
        const std::string v = it.get(key);
        if (v.empty()) return {};
        try {
            if constexpr (std::is_same_v<std::decay_t<decltype(dst)>, float>)
                dst = std::stof(v);
            else
                dst = std::decay_t<decltype(dst)>(std::stoll(v));
        } catch (const std::exception&) {
            return make_error(Errc::invalid_argument, "infotext field '{}' is not a number: '{}'", key, v);
        }
        return {};
    };
    for (auto r : {num("Steps", p.steps), num("CFG scale", p.cfg_scale), num("Seed", p.seed),
                   num("Clip skip", p.clip_skip)})
        if (!r) return r;
    if (auto s = it.get("Sampler"); !s.empty()) p.sampler = s;
    if (auto s = it.get("Schedule type"); !s.empty()) p.scheduler = s;
    if (auto s = it.get("Size"); !s.empty()) {
        if (std::sscanf(s.c_str(), "%dx%d", &p.width, &p.height) != 2)
            return make_error(Errc::invalid_argument, "infotext field 'Size' is not WxH: '{}'", s);
    }
    if (it.get("RNG") == "CPU") p.rng = "cpu";
    if (auto s = it.get("Cache mode"); !s.empty()) p.cache_mode = s;
    if (auto r = num("Cache interval", p.cache_interval); !r) return r;
    // Editing, hires fix and variation seeds (the keys infotext_for writes).
    for (auto r : {num("Denoising strength", p.denoising_strength), num("Variation seed", p.subseed),
                   num("Variation seed strength", p.subseed_strength), num("Mask blur", p.mask_blur),
                   num("Masked area padding", p.inpaint_full_res_padding), num("Hires steps", p.hr_second_pass_steps),
                   num("Conditional mask weight", p.inpainting_mask_weight), num("ENSD", p.eta_noise_seed_delta)})
        if (!r) return r;
    auto wxh = [&](const char* key, int& w, int& h) -> Result<bool> {
        const std::string v = it.get(key);
        if (v.empty()) return false;
        if (std::sscanf(v.c_str(), "%dx%d", &w, &h) != 2)
            return make_error(Errc::invalid_argument, "infotext field '{}' is not WxH: '{}'", key, v);
        return true;
    };
    NB_TRY(resized_seed, wxh("Seed resize from", p.seed_resize_from_w, p.seed_resize_from_h));
    (void)resized_seed;
    NB_TRY(hr_resize, wxh("Hires resize", p.hr_resize_x, p.hr_resize_y));
    if (!it.get("Hires upscale").empty()) {
        if (auto r = num("Hires upscale", p.hr_scale); !r) return r;
        p.enable_hr = true;
    }
    if (hr_resize) p.enable_hr = true;
    if (auto s = it.get("Hires upscaler"); !s.empty()) p.hr_upscaler = s;
    p.hr_prompt = it.get("Hires prompt");
    p.hr_negative_prompt = it.get("Hires negative prompt");
    if (auto s = it.get("Masked content"); !s.empty()) {
        static const char* kFill[] = {"fill", "original", "latent noise", "latent nothing"};
        for (int i = 0; i < 4; ++i)
            if (s == kFill[i]) p.inpainting_fill = i;
    }
    p.inpaint_full_res = it.get("Inpaint area") == "Only masked";
    p.inpainting_mask_invert = it.get("Mask mode") == "Inpaint not masked";
    return {};
}

}  // namespace nb
