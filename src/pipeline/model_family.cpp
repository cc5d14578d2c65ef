#include "pipeline/model_family.h"

#include <string>

#include "backend/context.h"
#include "backend/ops.h"
#include "models/unet/model.h"

namespace nb::pipeline {

namespace {

constexpr TextEncoderSpec kSD1Encoders[] = {
    {TextEncoderKind::clip, "CLIP ViT-L/14", kClipPrefix, false},
};
constexpr TextEncoderSpec kSD2Encoders[] = {
    {TextEncoderKind::open_clip, "OpenCLIP ViT-H/14 (penultimate layer)", kOpenClipPrefix, false},
};
// sgm GeneralConditioner: the CLIP-L and bigG hidden states are concatenated (768 + 1280 = 2048 context); bigG's
// projected pooled output goes, with the size embeddings, into the UNet's label_emb.
constexpr TextEncoderSpec kSDXLEncoders[] = {
    {TextEncoderKind::clip, "CLIP ViT-L/14", kSDXLClipPrefix, false},
    {TextEncoderKind::open_clip, "OpenCLIP ViT-bigG/14", kSDXLOpenClipPrefix, true},
};

constexpr const char* kSDXLWhy = "SDXL inpainting checkpoints are not supported yet (issue 20)";

// Scale factors: ldm configs v1-inference.yaml / v2-inference*.yaml (0.18215), sgm sd_xl_base.yaml (0.13025).
// Sizes: SD 1.x and SD 2.x-base / inpainting were trained at 512, SD 2.x 768-v at 768, SDXL at 1024.
constexpr FamilyPreset kPresets[] = {
    {ModelFamily::sd1, "SD 1.x", kSD1Encoders, 0.18215f, Prediction::eps, 512, 512, false, true, nullptr},
    {ModelFamily::sd1_inpaint, "SD 1.x inpainting", kSD1Encoders, 0.18215f, Prediction::eps, 512, 512, true, true,
     nullptr},
    {ModelFamily::sd2, "SD 2.x", kSD2Encoders, 0.18215f, Prediction::eps, 512, 768, false, true, nullptr},
    {ModelFamily::sd2_inpaint, "SD 2.x inpainting", kSD2Encoders, 0.18215f, Prediction::eps, 512, 512, true, true,
     nullptr},
    {ModelFamily::sdxl, "SDXL", kSDXLEncoders, 0.13025f, Prediction::eps, 1024, 1024, false, true, nullptr},
    {ModelFamily::sdxl_inpaint, "SDXL inpainting", kSDXLEncoders, 0.13025f, Prediction::eps, 1024, 1024, true,
     false, kSDXLWhy},
};

bool present(const nn::TensorLookup& lookup, const std::string& key) { return lookup(key) != nullptr; }

}  // namespace

std::span<const FamilyPreset> family_presets() { return kPresets; }

const FamilyPreset& preset(ModelFamily f) {
    for (const auto& p : kPresets)
        if (p.family == f) return p;
    return kPresets[0];  // unreachable: every enum value has a row (tested)
}

int default_size(const FamilyPreset& p, Prediction pred) {
    return pred == Prediction::v ? p.default_size_v : p.default_size;
}

const char* prediction_name(Prediction p) { return p == Prediction::v ? "v" : "eps"; }

const char* source_name(PredictionSource s) {
    switch (s) {
        case PredictionSource::preset: return "family default";
        case PredictionSource::metadata: return "metadata";
        case PredictionSource::test_forward: return "test forward";
        case PredictionSource::option: return "option";
    }
    return "?";
}

ModelFamily detect_family(const nn::TensorLookup& lookup) {
    const std::string unet(kUNetPrefix);
    const TensorEntry* conv_in = lookup(unet + "input_blocks.0.0.weight");  // [C, in_channels, 3, 3]
    const bool inpaint = conv_in && conv_in->shape.size() == 4 && conv_in->shape[1] == 9;
    if (present(lookup, std::string(kSDXLOpenClipPrefix) + "token_embedding.weight") ||
        present(lookup, unet + "label_emb.0.0.weight"))
        return inpaint ? ModelFamily::sdxl_inpaint : ModelFamily::sdxl;
    if (present(lookup, std::string(kOpenClipPrefix) + "token_embedding.weight") || sd2_hf_text_encoder(lookup))
        return inpaint ? ModelFamily::sd2_inpaint : ModelFamily::sd2;
    return inpaint ? ModelFamily::sd1_inpaint : ModelFamily::sd1;
}

bool sd2_hf_text_encoder(const nn::TensorLookup& lookup) {
    if (!present(lookup, std::string(kClipPrefix) + "embeddings.token_embedding.weight")) return false;
    // SD 1.x UNets project into and out of their transformers with 1x1 convolutions ([C, C, 1, 1]); SD 2.x ones
    // with Linear layers ([C, C]). The first transformer of any level, or the middle one, says which.
    const std::string unet(kUNetPrefix);
    for (int block = 1; block < 12; ++block)
        if (const TensorEntry* p = lookup(unet + "input_blocks." + std::to_string(block) + ".1.proj_in.weight"))
            return p->shape.size() == 2;
    const TensorEntry* p = lookup(unet + "middle_block.1.proj_in.weight");
    return p && p->shape.size() == 2;
}

double test_forward_mean(const unet::UNet& unet) {
    // A1111 runs this check in float32 whatever the UNet's own dtype; so do we, whatever the engine's precision.
    ops::PrecisionScope fp32(ops::Precision::fp32);
    const Tensor x = Tensor::full(Shape{1, 4, 8, 8}, 0.5f);
    const Tensor ctx = Tensor::full(Shape{1, 2, unet.config().context_dim}, 0.5f);
    const Tensor out = unet.forward(x, {999.f}, ctx);  // [1, 4, 8, 8]
    double sum = 0;
    for (int64_t i = 0; i < out.numel(); ++i) sum += double(out.data()[i]) - double(x.data()[i]);
    return sum / double(out.numel());
}

std::optional<PredictionChoice> decide_prediction(ModelFamily f, std::optional<Prediction> option,
                                                  const std::map<std::string, std::string>& metadata) {
    if (option) return PredictionChoice{*option, PredictionSource::option};
    if (auto it = metadata.find("parameterization"); it != metadata.end()) {
        if (it->second == "v") return PredictionChoice{Prediction::v, PredictionSource::metadata};
        if (it->second == "eps") return PredictionChoice{Prediction::eps, PredictionSource::metadata};
    }
    if (f == ModelFamily::sd2) return std::nullopt;
    return PredictionChoice{preset(f).prediction, PredictionSource::preset};
}

PredictionChoice test_forward_prediction(const unet::UNet& unet) {
    const bool v = test_forward_mean(unet) < kTestForwardThreshold;
    return {v ? Prediction::v : Prediction::eps, PredictionSource::test_forward};
}

}  // namespace nb::pipeline
