// `nanobanana info MODEL`: format, dtype mix, components and architecture, parameters per component and the
// tensors the engine does not use, found by running the real load code in the binder's dry-run mode.
#include <map>
#include <set>

#include <fmt/format.h>

#include "nanobanana/engine.h"
#include "pipeline/sd_model.h"

namespace nb {

namespace {

struct Component {
    const char* prefix;
    const char* name;
};
constexpr Component kComponents[] = {
    {pipeline::SDModel::kClipPrefix, "text encoder (CLIP)"},
    {pipeline::SDModel::kOpenClipPrefix, "text encoder (OpenCLIP)"},
    {pipeline::kSDXLClipPrefix, "text encoder 1 (SDXL CLIP ViT-L)"},
    {pipeline::kSDXLOpenClipPrefix, "text encoder 2 (SDXL OpenCLIP bigG)"},
    {pipeline::SDModel::kUNetPrefix, "UNet"},
    {pipeline::SDModel::kVAEPrefix, "VAE"},
};

// "family: ..." and "prediction: ..." lines, decided as SDModel::load decides them (without an option). Only
// an SD 2.x file without `parameterization` metadata costs more than a look at the header: A1111's test forward
// loads its UNet for real (A1111 does the same on every load of such a file).
std::string family_lines(const WeightStore& ws) {
    nn::TensorLookup lookup = [&ws](std::string_view k) { return ws.find(k); };
    const pipeline::ModelFamily family = pipeline::detect_family(lookup);
    const pipeline::FamilyPreset& p = pipeline::preset(family);
    // Unsupported families are found by their markers; the others need at least a UNet to be an SD model.
    if (p.supported && !ws.find(std::string(pipeline::kUNetPrefix) + "input_blocks.0.0.weight")) return "";
    std::string out = fmt::format("family: {}\n", p.name);
    if (!p.supported) return out + fmt::format("family problem: {}\n", p.unsupported_why);
    auto choice = pipeline::decide_prediction(family, std::nullopt, ws.metadata());
    if (!choice) {
        nn::Binder unet_b(lookup, pipeline::kUNetPrefix);
        auto cfg = unet::UNetConfig::detect(unet_b);
        if (!cfg) return out;  // the architecture line says why
        auto unet = unet::UNet::load(unet_b, *cfg);
        if (!unet) return out;  // the "unet problem" line says why
        nn::WeightSet weights;  // forgets the kernels' packed copies when the check is done
        weights.add(unet_b);
        choice = pipeline::test_forward_prediction(*unet);
    }
    return out + fmt::format("prediction: {} (from {}), default size {}\n",
                             pipeline::prediction_name(choice->prediction), pipeline::source_name(choice->source),
                             pipeline::default_size(p, choice->prediction));
}

std::string human(int64_t n) {
    if (n >= 1'000'000) return fmt::format("{:.1f}M", double(n) / 1e6);
    if (n >= 1'000) return fmt::format("{:.1f}k", double(n) / 1e3);
    return std::to_string(n);
}

}  // namespace

Result<std::string> describe_checkpoint(const std::string& path) {
    NB_TRY(ws, WeightStore::open(path));
    std::set<std::string> used;
    nn::TensorLookup lookup = [&](std::string_view k) -> const TensorEntry* {
        const TensorEntry* e = ws.find(k);
        if (e) used.insert(e->name);
        return e;
    };
    std::string out = fmt::format("file: {}\nformat: {}\n", path, ws.format());
    std::map<std::string, int64_t> dtypes;
    for (const auto& e : ws.entries()) dtypes[e.dtype_name] += 1;
    out += "dtypes:";
    for (const auto& [d, n] : dtypes) out += fmt::format(" {} x{}", d, n);
    out += fmt::format(" ({} tensors)\n", ws.entries().size());
    for (const auto& c : kComponents) {
        int64_t params = 0, count = 0;
        for (const auto& e : ws.entries())
            if (e.name.rfind(c.prefix, 0) == 0) params += shape_numel(e.shape), ++count;
        out += fmt::format("{}: {} ({} tensors, {} parameters)\n", c.name, count ? "present" : "absent", count,
                           human(params));
    }
    out += family_lines(ws);
    constexpr auto dry = nn::BindMode::dry_run;
    nn::Binder unet_b(lookup, pipeline::SDModel::kUNetPrefix, dry);
    auto unet_cfg = unet::UNetConfig::detect(unet_b);
    if (unet_cfg) {
        out += fmt::format("architecture: {}\nunet: {}\n", unet_cfg->family(), unet_cfg->summary());
        if (auto u = unet::UNet::load(unet_b, *unet_cfg); !u) out += "unet problem: " + u.error().message + "\n";
    } else {
        out += "architecture: unknown (" + unet_cfg.error().message + ")\n";
    }
    nn::Binder clip_b(lookup, pipeline::SDModel::kClipPrefix, dry);
    if (auto cc = clip::CLIPConfig::detect(clip_b)) {
        out += fmt::format("text encoder: {} layers, width {}, vocab {}\n", cc->layers, cc->hidden, cc->vocab);
        if (auto m = clip::CLIPTextEncoder::load(clip_b, *cc); !m) out += "clip problem: " + m.error().message + "\n";
    }
    nn::Binder openclip_b(lookup, pipeline::SDModel::kOpenClipPrefix, dry);
    if (auto cc = clip::CLIPConfig::detect_openclip(openclip_b)) {
        out += fmt::format("text encoder: OpenCLIP, {} layers, width {}, vocab {} (SD 2.x)\n", cc->layers,
                           cc->hidden, cc->vocab);
        if (auto m = clip::CLIPTextEncoder::load_openclip(openclip_b, *cc); !m)
            out += "openclip problem: " + m.error().message + "\n";
    }
    nn::Binder xl_l(lookup, pipeline::kSDXLClipPrefix, dry);
    if (auto cc = clip::CLIPConfig::detect(xl_l)) {
        out += fmt::format("text encoder 1: CLIP, {} layers, width {}, vocab {} (SDXL)\n", cc->layers, cc->hidden,
                           cc->vocab);
        if (auto m = clip::CLIPTextEncoder::load(xl_l, *cc); !m) out += "clip problem: " + m.error().message + "\n";
    }
    nn::Binder xl_g(lookup, pipeline::kSDXLOpenClipPrefix, dry);
    if (auto cc = clip::CLIPConfig::detect_openclip(xl_g)) {
        out += fmt::format("text encoder 2: OpenCLIP, {} layers, width {}, vocab {} (SDXL)\n", cc->layers,
                           cc->hidden, cc->vocab);
        if (auto m = clip::CLIPTextEncoder::load_openclip(xl_g, *cc); !m)
            out += "openclip problem: " + m.error().message + "\n";
    }
    if (auto vc = vae::VAEConfig::detect(lookup)) {
        if (auto v = vae::VAE::load(lookup, *vc, nullptr, dry); !v) out += "vae problem: " + v.error().message + "\n";
    }
    std::vector<std::string> unused;
    for (const auto& e : ws.entries())
        if (!used.count(e.name)) unused.push_back(e.name);
    out += fmt::format("unused tensors: {}\n", unused.size());
    for (size_t i = 0; i < unused.size() && i < 20; ++i) out += "  " + unused[i] + "\n";
    if (unused.size() > 20) out += fmt::format("  ... and {} more\n", unused.size() - 20);
    return out;
}

}  // namespace nb
