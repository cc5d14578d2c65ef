// UNet configuration, detected from the tensors present (never from a file name). The block list itself is
// read off the checkpoint, so compact variants (BK-SDM style: fewer res blocks per level, no middle block)
// load without a preset; the config summarises it for `info` and for the pipeline.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/nn/binder.h"

namespace nb::unet {

// Attention heads are not visible in tensor shapes. SD 1.x fixes the head count (8), SD 2.x the head width
// (64); a checkpoint's config metadata (ldm `num_heads` / `num_head_channels`) overrides the default.
struct HeadsHint {
    int64_t num_heads = -1;
    int64_t head_channels = -1;
};

struct UNetConfig {
    int64_t in_channels = 4;      // 9 for inpainting UNets (latent + mask + masked-image latent)
    int64_t out_channels = 4;
    int64_t model_channels = 320;
    int64_t context_dim = 768;
    std::vector<int64_t> channel_mult;     // per level
    std::vector<int> res_blocks;           // per level (input side)
    std::vector<bool> attention;           // per level
    bool has_middle = true;
    bool middle_attention = true;
    bool linear_proj = false;              // SD 2.x: proj_in/proj_out are Linear
    int transformer_depth = 1;             // the deepest level's (per level: transformer_blocks.N present)
    std::vector<int> depth;                // transformer blocks per level (0 = no attention)
    int middle_depth = 0;
    int64_t adm_in_channels = 0;           // SDXL: label_emb input (pooled text + size embeddings); 0 = none
    HeadsHint heads;

    int64_t heads_for(int64_t channels) const;  // attention heads of a transformer with `channels` width
    std::string family() const;                  // "SD 1.x", "SD 1.x inpainting", "compact SD 1.x", "SD 2.x", ...
    std::string summary() const;

    static Result<UNetConfig> detect(const nn::Binder& b, HeadsHint hint = {});
};

}  // namespace nb::unet
