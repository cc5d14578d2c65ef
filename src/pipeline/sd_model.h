// A loaded Stable Diffusion checkpoint: text encoder + tokenizer, UNet, VAE and the noise schedule.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "io/weight_store.h"
#include "models/clip/model.h"
#include "models/nn/weight_set.h"
#include "models/unet/model.h"
#include "models/taesd/model.h"
#include "models/vae/model.h"
#include "pipeline/embeddings.h"
#include "pipeline/model_family.h"
#include "sampling/schedule.h"
#include "text/clip_tokenizer.h"

namespace nb::pipeline {

// LoadOptions::vae / Engine::set_vae / A1111's sd_vae -> the VAE file to load, "" = the checkpoint's own.
//   "", "auto", "Automatic": <model>.vae.pt, .vae.ckpt or .vae.safetensors beside the checkpoint when one exists
//                            (A1111's find_vae_near_checkpoint, in its order), else the checkpoint's own;
//   "none", "None":          the checkpoint's own;
//   anything else:           a file path, as given.
std::string resolve_vae(const std::string& choice, const std::string& model_path);

struct SDModel {
    std::string path;
    std::string name;  // file stem, as A1111's "Model:" field
    std::shared_ptr<WeightStore> store;
    ModelFamily family = ModelFamily::sd1;  // from the tensors present, not the file name
    text::ClipTokenizer tokenizer;
    // The family's first text tower: SD 1.x CLIP under kClipPrefix, SD 2.x open_clip ViT-H-14 under
    // kOpenClipPrefix (conditioning = its penultimate layer), SDXL CLIP ViT-L under kSDXLClipPrefix.
    TextEncoderKind text_encoder = TextEncoderKind::clip;
    clip::CLIPTextEncoder clip;  // either kind: the open_clip tower is the same transformer
    // SD 2.x from a diffusers folder: the open_clip tower in HF naming under kClipPrefix, cut after the
    // penultimate layer by diffusers' conversion, so conditioning takes its last layer (sd2_hf_text_encoder).
    bool text_cut_at_penultimate = false;
    // SDXL's second tower, open_clip ViT-bigG under kSDXLOpenClipPrefix (penultimate layer + pooled output);
    // absent (has_clip2 false) for the one-tower families.
    clip::CLIPTextEncoder clip2;
    bool has_clip2 = false;
    unet::UNet unet;
    vae::VAE vae;  // its scale() is the family's
    // Where `vae` comes from: "" = the checkpoint's own tensors, else a standalone VAE file (use_vae), whose
    // store stays open for deferred loading and reloads.
    std::string vae_path;
    std::shared_ptr<WeightStore> vae_store;
    bool deferred = false;  // load's bind mode, kept for use_vae
    sampling::DiscreteSchedule schedule = sampling::DiscreteSchedule::sd_default();
    Prediction prediction = Prediction::eps;
    PredictionSource prediction_source = PredictionSource::preset;
    // CLIP and UNet weights by LDM key (shared storage with the modules): what LoRA merges into.
    std::map<std::string, Tensor> weights;
    // Per component, for releasing a component's converted weights while another one runs (see
    // nn::WeightSet); all resident after load.
    nn::WeightSet clip_weights, unet_weights, vae_weights;
    // Optional TAESD (LoadOptions::taesd): previews, and the final decode when `taesd_decode`.
    std::optional<taesd::Model> taesd;
    bool taesd_decode = false;
    // Textual-inversion embeddings the prompts may name (LoadOptions::embedding_dir); null = none.
    std::shared_ptr<const EmbeddingSet> embeddings;

    // `vocab`: explicit tokenizer path (--vocab) or empty to search (text::find_vocab). `deferred`: bind and
    // check every tensor but convert none; each component's WeightSet loads it on first use.
    // `unet_storage`: how the UNet's packed weights are held (ops::WeightStorage; q8_0 is the lossy opt-in).
    // `prediction_option`: an explicit prediction type (LoadOptions::prediction), else decide_prediction's order.
    // `vae_file`: a standalone VAE file used instead of the checkpoint's own VAE ("" = the checkpoint's; see
    // resolve_vae). A family this engine cannot load (SDXL) is refused with the family's one-line reason.
    static Result<std::unique_ptr<SDModel>> load(const std::string& path, const std::string& vocab,
                                                 bool deferred = false,
                                                 ops::WeightStorage unet_storage = ops::WeightStorage::exact,
                                                 std::optional<Prediction> prediction_option = std::nullopt,
                                                 const std::string& vae_file = "");

    // Replaces the VAE (encode and decode) without touching the rest: `file` = a standalone VAE file (LDM names
    // with or without "first_stage_model.", or diffusers names; fp16 or fp32), "" = the checkpoint's own. The
    // new VAE's latent channels must be the UNet's. On error the current VAE stays; errors name the file.
    Result<void> use_vae(const std::string& file);

    const FamilyPreset& family_preset() const { return preset(family); }
    // Default txt2img side in pixels: the family's, for this model's prediction type (SD 2.x v: 768).
    int default_size() const { return pipeline::default_size(family_preset(), prediction); }
    // SDXL-style conditioning: two text towers and the UNet's `vector` input (pooled text + sizes).
    bool sdxl() const { return has_clip2; }

    // Unique tensor prefixes of the components in the LDM single-file layout (model_family.h).
    static constexpr const char* kClipPrefix = pipeline::kClipPrefix;
    static constexpr const char* kOpenClipPrefix = pipeline::kOpenClipPrefix;
    static constexpr const char* kUNetPrefix = pipeline::kUNetPrefix;
    static constexpr const char* kVAEPrefix = pipeline::kVAEPrefix;
};

}  // namespace nb::pipeline
