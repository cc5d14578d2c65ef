#include "pipeline/sd_model.h"

#include <filesystem>
#include <initializer_list>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "backend/context.h"
#include "backend/weights.h"

namespace nb::pipeline {

namespace {

// Attention head counts are not visible in tensor shapes; checkpoints written with their config (ldm
// `unet_config`, HF `clip_config`/text_encoder config.json) carry them in metadata. Absent: conventions.
int64_t json_int(const std::map<std::string, std::string>& meta, const char* key, const char* field) {
    auto it = meta.find(key);
    if (it == meta.end()) return -1;
    auto j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains(field) || !j[field].is_number_integer()) return -1;
    return j[field].get<int64_t>();
}

// SD 2.x files written with their ldm config carry the open_clip tower's head count in
// cond_stage_config.open_clip_text_cfg.heads (real ViT-H-14 follows the width / 64 convention anyway).
int64_t openclip_heads(const std::map<std::string, std::string>& meta) {
    auto it = meta.find("cond_stage_config");
    if (it == meta.end()) return -1;
    auto j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("open_clip_text_cfg")) return -1;
    const auto& t = j["open_clip_text_cfg"];
    if (!t.is_object() || !t.contains("heads") || !t["heads"].is_number_integer()) return -1;
    return t["heads"].get<int64_t>();
}

// "VAE <file>: <what>", with the file named once.
Error vae_error(const std::string& file, const Error& e) {
    if (e.message.find(file) != std::string::npos) return {e.code, "VAE " + e.message};
    return {e.code, fmt::format("VAE {}: {}", file, e.message)};
}

bool is_choice(const std::string& s, std::initializer_list<const char*> names) {
    for (const char* n : names)
        if (s == n) return true;
    return false;
}

}  // namespace

std::string resolve_vae(const std::string& choice, const std::string& model_path) {
    if (is_choice(choice, {"none", "None"})) return "";
    if (!choice.empty() && !is_choice(choice, {"auto", "Automatic", "automatic"})) return choice;
    // As A1111's find_vae_near_checkpoint: the checkpoint's path without its extension + ".vae.<ext>".
    const std::filesystem::path p(model_path);
    for (const char* ext : {".vae.pt", ".vae.ckpt", ".vae.safetensors"}) {
        const std::filesystem::path beside = p.parent_path() / (p.stem().string() + ext);
        std::error_code ec;
        if (std::filesystem::is_regular_file(beside, ec)) return beside.string();
    }
    return "";
}

Result<void> SDModel::use_vae(const std::string& file) {
    std::shared_ptr<WeightStore> src = store;
    if (!file.empty()) {
        auto ws = WeightStore::open_vae(file);
        if (!ws) return std::unexpected(vae_error(file, ws.error()));
        src = std::make_shared<WeightStore>(std::move(*ws));
    }
    const WeightStore& ws = *src;
    nn::TensorLookup lookup = [&ws](std::string_view k) { return ws.find(k); };
    // The checkpoint's own VAE keeps the errors it always had; a file's name the file.
    auto fail = [&](const Error& e) -> Result<void> {
        return std::unexpected(file.empty() ? e : vae_error(file, e));
    };
    auto cfg = vae::VAEConfig::detect(lookup);
    if (!cfg) return fail(cfg.error());
    if (cfg->embed_dim != unet.config().out_channels)
        return fail({Errc::shape, fmt::format("its latents have {} channels, the checkpoint's UNet {}", cfg->embed_dim,
                                              unet.config().out_channels)});
    nn::WeightSet weights;
    auto loaded = vae::VAE::load(lookup, *cfg, &weights, deferred ? nn::BindMode::deferred : nn::BindMode::load);
    if (!loaded) return fail(loaded.error());
    vae = std::move(*loaded);
    vae.set_between_levels(ops::return_free_memory);  // the decoder's peak is one level's, not the sum
    vae.set_scale(family_preset().vae_scale);
    vae_weights.swap(weights);  // the old VAE's weights go with `weights`
    vae_path = file;
    vae_store = file.empty() ? nullptr : std::move(src);
    return {};
}

Result<std::unique_ptr<SDModel>> SDModel::load(const std::string& path, const std::string& vocab, bool deferred,
                                               ops::WeightStorage unet_storage,
                                               std::optional<Prediction> prediction_option,
                                               const std::string& vae_file) {
    const nn::BindMode mode = deferred ? nn::BindMode::deferred : nn::BindMode::load;
    auto m = std::make_unique<SDModel>();
    m->path = path;
    m->name = std::filesystem::path(path).stem().string();
    NB_TRY(store, WeightStore::open(path));
    m->store = std::make_shared<WeightStore>(std::move(store));
    const WeightStore& ws = *m->store;
    nn::TensorLookup lookup = [&ws](std::string_view k) { return ws.find(k); };

    m->family = detect_family(lookup);
    const FamilyPreset& family = m->family_preset();
    if (!family.supported) return make_error(Errc::unsupported, "{}: {}", path, family.unsupported_why);

    NB_TRY(vocab_path, text::find_vocab(vocab.empty() ? ws.tokenizer_dir() : vocab, path));
    NB_TRY(tok, text::ClipTokenizer::load(vocab_path));
    m->tokenizer = std::move(tok);

    const auto& meta = ws.metadata();
    // SD 1.x / 2.x: one text tower; SDXL: CLIP ViT-L, then open_clip bigG (its heads in the sgm file's metadata).
    auto load_tower = [&](const TextEncoderSpec& spec, clip::CLIPTextEncoder& out) -> Result<void> {
        // A diffusers SD 2.x folder holds the open_clip tower in HF naming (see sd2_hf_text_encoder).
        const bool hf_open_clip = spec.kind == TextEncoderKind::open_clip && !spec.pooled &&
                                  !ws.find(std::string(spec.prefix) + "token_embedding.weight") &&
                                  sd2_hf_text_encoder(lookup);
        nn::Binder b(lookup, hf_open_clip ? kClipPrefix : spec.prefix, mode);
        auto loaded = [&]() -> Result<clip::CLIPTextEncoder> {
            if (hf_open_clip) {
                NB_TRY(cfg, clip::CLIPConfig::detect(b, json_int(meta, "clip_config", "num_attention_heads")));
                // open_clip's GELU (erf) unless the folder's text_encoder/config.json says otherwise.
                auto act = meta.find("diffusers.text_encoder.hidden_act");
                cfg.act = act != meta.end() && act->second == "quick_gelu" ? clip::Activation::quick_gelu
                                                                           : clip::Activation::gelu;
                m->text_cut_at_penultimate = true;
                return clip::CLIPTextEncoder::load(b, cfg);
            }
            if (spec.kind == TextEncoderKind::open_clip) {
                int64_t heads = openclip_heads(meta);
                if (spec.pooled) heads = json_int(meta, "open_clip_bigG_text_cfg", "heads");
                NB_TRY(cfg, clip::CLIPConfig::detect_openclip(b, heads));
                return clip::CLIPTextEncoder::load_openclip(b, cfg);
            }
            int64_t heads = json_int(meta, "clip_config", "num_attention_heads");
            if (heads <= 0) heads = json_int(meta, "clip_l_config", "num_attention_heads");
            NB_TRY(cfg, clip::CLIPConfig::detect(b, heads));
            return clip::CLIPTextEncoder::load(b, cfg);
        }();
        NB_TRY(enc, std::move(loaded));
        out = std::move(enc);
        m->weights.insert(b.bound().begin(), b.bound().end());
        m->clip_weights.add(b);
        return {};
    };
    m->text_encoder = family.text_encoders.front().kind;
    if (auto r = load_tower(family.text_encoders.front(), m->clip); !r) return std::unexpected(r.error());
    if (family.text_encoders.size() > 1) {
        if (auto r = load_tower(family.text_encoders[1], m->clip2); !r) return std::unexpected(r.error());
        m->has_clip2 = true;
    }

    nn::Binder unet_b(lookup, kUNetPrefix, mode);
    unet::HeadsHint heads{json_int(meta, "unet_config", "num_heads"),
                          json_int(meta, "unet_config", "num_head_channels")};
    NB_TRY(unet_cfg, unet::UNetConfig::detect(unet_b, heads));
    auto unet_loaded = [&] {
        ops::WeightStorageScope storage(unet_storage);  // the binder packs as it binds (unless deferred)
        return unet::UNet::load(unet_b, unet_cfg);
    }();
    NB_TRY(unet_m, std::move(unet_loaded));
    m->unet = std::move(unet_m);
    m->weights.insert(unet_b.bound().begin(), unet_b.bound().end());
    m->unet_weights.add(unet_b);
    m->unet_weights.set_storage(unet_storage);

    m->deferred = deferred;
    if (auto r = m->use_vae(vae_file); !r) return std::unexpected(r.error());

    // A checkpoint may carry its own schedule buffer (ldm register_schedule writes alphas_cumprod).
    if (const TensorEntry* ac = ws.find("alphas_cumprod"); ac && ac->shape.size() == 1 && ac->shape[0] >= 2) {
        NB_TRY(t, ws.load_f32("alphas_cumprod"));
        m->schedule = sampling::DiscreteSchedule::from_alphas_cumprod({t.span().begin(), t.span().end()});
    }
    auto choice = decide_prediction(m->family, prediction_option, meta);
    if (!choice) {
        // A1111's test forward needs the UNet's values: a deferred UNet is converted for it and released again.
        const bool was_resident = m->unet_weights.resident();
        if (auto r = m->unet_weights.acquire(); !r) return std::unexpected(r.error());
        choice = test_forward_prediction(m->unet);
        if (!was_resident) m->unet_weights.release();
    }
    m->prediction = choice->prediction;
    m->prediction_source = choice->source;
    ws.drop_resident_pages();  // every weight has been converted; keep only our own copies resident
    ops::return_free_memory();  // and hand back the heap pages the conversions used
    return m;
}

}  // namespace nb::pipeline
