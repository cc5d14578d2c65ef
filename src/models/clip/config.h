// CLIP text tower configuration (SD 1.x: OpenAI ViT-L/14 text encoder, HF CLIPTextModel naming; SD 2.x:
// open_clip ViT-H-14 text tower).
#pragma once

#include <cstdint>

#include "core/error.h"
#include "models/nn/binder.h"

namespace nb::clip {

enum class Activation { quick_gelu, gelu };

struct CLIPConfig {
    int64_t vocab = 49408;
    int64_t positions = 77;
    int64_t hidden = 768;
    int64_t heads = 12;
    int64_t layers = 12;
    int64_t intermediate = 3072;
    Activation act = Activation::quick_gelu;
    float ln_eps = 1e-5f;

    static CLIPConfig sd15() { return {}; }
    // Sizes from tensor shapes under `prefix` (e.g. "cond_stage_model.transformer.text_model."). The head count
    // is not visible in shapes: hidden/64 (every released CLIP text tower) unless `heads_hint` > 0 (from a
    // checkpoint's config metadata).
    static Result<CLIPConfig> detect(const nn::Binder& b, int64_t heads_hint = 0);
    // The same for an open_clip text tower (prefix e.g. "cond_stage_model.model."): GELU (erf), heads as
    // above (ViT-H-14: 1024 / 64 = 16).
    static Result<CLIPConfig> detect_openclip(const nn::Binder& b, int64_t heads_hint = 0);
};

}  // namespace nb::clip
