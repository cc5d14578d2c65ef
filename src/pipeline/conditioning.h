// A1111 prompt conditioning (modules/sd_hijack_clip.py): weighted 75-token chunks, each encoded separately,
// emphasis applied ("Original": scale by multipliers, restore the mean), chunks concatenated.
#pragma once

#include <string_view>

#include "core/tensor.h"
#include "pipeline/sd_model.h"
#include "text/prompt.h"

namespace nb::pipeline {

struct EncodedPrompt {
    Tensor context;       // [1, 77 * chunks, D]
    int token_count = 0;  // tokens without BOS/EOS/padding, as A1111's counter
};

// `prompt` is plain A1111 text (no <lora:...> tags, no prompt editing: one schedule entry's text). An
// open_clip model (SD 2.x) is fed 0-padded chunks and always gives its penultimate layer: clip_skip is
// ignored, as A1111.
EncodedPrompt encode_prompt(const SDModel& m, std::string_view prompt, int clip_skip);

// z [chunks, 77, D] *= multipliers [chunks, 77], then rescaled per chunk so the mean is unchanged. When the
// new mean is 0 or not finite (A1111 would produce NaN), the rescale is skipped.
void apply_emphasis(Tensor& z, const std::vector<float>& multipliers);

}  // namespace nb::pipeline
