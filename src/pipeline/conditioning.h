// A1111 prompt conditioning (modules/sd_hijack_clip.py): weighted 75-token chunks, each encoded separately,
// emphasis applied ("Original": scale by multipliers, restore the mean), chunks concatenated. SDXL (A1111
// sd_models_xl + sgm GeneralConditioner): the same chunks through both towers, their outputs side by side on
// the feature axis, and the `vector` = [bigG pooled, size embeddings].
#pragma once

#include <string_view>

#include "core/tensor.h"
#include "pipeline/sd_model.h"
#include "text/prompt.h"

namespace nb::pipeline {

struct EncodedPrompt {
    Tensor context;       // [1, 77 * chunks, D] (SDXL: D = CLIP-L width + bigG width)
    Tensor pooled;        // SDXL: [1, P] bigG's pooled output of the first chunk (no emphasis); else undefined
    int token_count = 0;  // tokens without BOS/EOS/padding, as A1111's counter
};

// SDXL's size conditioning as A1111 fills it: original = target = the picture's (height, width), crop
// (opts.sdxl_crop_top, opts.sdxl_crop_left) = (0, 0).
struct SizeCond {
    int height = 0, width = 0;
    int crop_top = 0, crop_left = 0;
};

// sgm ConcatTimestepEmbedderND: each value s embedded as [cos(s f_j) ..., sin(s f_j) ...], f_j =
// exp(-ln(10000) j / (dim/2)), float32, concatenated in order -> [1, values.size() * dim].
Tensor size_embedding(const std::vector<float>& values, int64_t dim);

// The SDXL `vector` [1, adm] = [pooled [P], emb(height, width), emb(crop_top, crop_left), emb(height, width)],
// the per-number width from the UNet's label_emb input: (adm - P) / 6.
Tensor sdxl_vector(const SDModel& m, const Tensor& pooled, const SizeCond& size);

// `prompt` is plain A1111 text (no <lora:...> tags, no prompt editing: one schedule entry's text). An
// open_clip model (SD 2.x) is fed 0-padded chunks and always gives its penultimate layer: clip_skip is
// ignored, as A1111. SDXL: CLIP-L's and bigG's penultimate layers (no final LayerNorm), bigG fed 0-padded
// chunks, emphasis per tower; clip_skip is ignored (A1111's sdxl_clip_l_skip is off by default).
EncodedPrompt encode_prompt(const SDModel& m, std::string_view prompt, int clip_skip);

// z [chunks, 77, D] *= multipliers [chunks, 77], then rescaled per chunk so the mean is unchanged. When the
// new mean is 0 or not finite (A1111 would produce NaN), the rescale is skipped.
void apply_emphasis(Tensor& z, const std::vector<float>& multipliers);

}  // namespace nb::pipeline
