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
#include "models/vae/model.h"
#include "sampling/schedule.h"
#include "text/clip_tokenizer.h"

namespace nb::pipeline {

enum class Prediction { eps, v };

// Which text tower the checkpoint holds (from the tensors present, not the file name).
enum class TextEncoderKind {
    clip,       // SD 1.x: OpenAI CLIP ViT-L/14, HF names under kClipPrefix
    open_clip,  // SD 2.x: open_clip ViT-H-14 under kOpenClipPrefix, conditioning = its penultimate layer
};

struct SDModel {
    std::string path;
    std::string name;  // file stem, as A1111's "Model:" field
    std::shared_ptr<WeightStore> store;
    text::ClipTokenizer tokenizer;
    TextEncoderKind text_encoder = TextEncoderKind::clip;
    clip::CLIPTextEncoder clip;  // either kind: the open_clip tower is the same transformer
    unet::UNet unet;
    vae::VAE vae;
    sampling::DiscreteSchedule schedule = sampling::DiscreteSchedule::sd_default();
    Prediction prediction = Prediction::eps;
    // CLIP and UNet weights by LDM key (shared storage with the modules): what LoRA merges into.
    std::map<std::string, Tensor> weights;
    // Per component, for releasing a component's converted weights while another one runs (see
    // nn::WeightSet); all resident after load.
    nn::WeightSet clip_weights, unet_weights, vae_weights;

    // `vocab`: explicit tokenizer path (--vocab) or empty to search (text::find_vocab). `deferred`: bind and
    // check every tensor but convert none; each component's WeightSet loads it on first use.
    // `unet_storage`: how the UNet's packed weights are held (ops::WeightStorage; q8_0 is the lossy opt-in).
    static Result<std::unique_ptr<SDModel>> load(const std::string& path, const std::string& vocab,
                                                 bool deferred = false,
                                                 ops::WeightStorage unet_storage = ops::WeightStorage::exact);

    // Unique tensor prefixes of the components in the LDM single-file layout.
    static constexpr const char* kClipPrefix = "cond_stage_model.transformer.text_model.";
    static constexpr const char* kOpenClipPrefix = "cond_stage_model.model.";  // ldm FrozenOpenCLIPEmbedder
    static constexpr const char* kUNetPrefix = "model.diffusion_model.";
    static constexpr const char* kVAEPrefix = "first_stage_model.";
};

}  // namespace nb::pipeline
