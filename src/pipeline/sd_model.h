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

struct SDModel {
    std::string path;
    std::string name;  // file stem, as A1111's "Model:" field
    std::shared_ptr<WeightStore> store;
    ModelFamily family = ModelFamily::sd1;  // from the tensors present, not the file name
    text::ClipTokenizer tokenizer;
    // The family's (only) text tower: SD 1.x CLIP under kClipPrefix, SD 2.x open_clip ViT-H-14 under
    // kOpenClipPrefix (conditioning = its penultimate layer).
    TextEncoderKind text_encoder = TextEncoderKind::clip;
    clip::CLIPTextEncoder clip;  // either kind: the open_clip tower is the same transformer
    unet::UNet unet;
    vae::VAE vae;  // its scale() is the family's
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
    // A family this engine cannot load (SDXL) is refused with the family's one-line reason.
    static Result<std::unique_ptr<SDModel>> load(const std::string& path, const std::string& vocab,
                                                 bool deferred = false,
                                                 ops::WeightStorage unet_storage = ops::WeightStorage::exact,
                                                 std::optional<Prediction> prediction_option = std::nullopt);

    const FamilyPreset& family_preset() const { return preset(family); }
    // Default txt2img side in pixels: the family's, for this model's prediction type (SD 2.x v: 768).
    int default_size() const { return pipeline::default_size(family_preset(), prediction); }

    // Unique tensor prefixes of the components in the LDM single-file layout (model_family.h).
    static constexpr const char* kClipPrefix = pipeline::kClipPrefix;
    static constexpr const char* kOpenClipPrefix = pipeline::kOpenClipPrefix;
    static constexpr const char* kUNetPrefix = pipeline::kUNetPrefix;
    static constexpr const char* kVAEPrefix = pipeline::kVAEPrefix;
};

}  // namespace nb::pipeline
