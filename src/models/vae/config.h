// Hyper-parameters of the LDM AutoencoderKL (ldm/modules/diffusionmodules/model.py Encoder/Decoder,
// ldm/models/autoencoder.py): preset for SD 1.x/2.x and detection from tensor shapes.
#pragma once

#include <vector>

#include "core/error.h"
#include "models/nn/binder.h"

namespace nb::vae {

struct VAEConfig {
    int in_channels = 3;                  // image channels into the encoder
    int out_ch = 3;                       // image channels out of the decoder
    int ch = 128;                         // base width
    std::vector<int> ch_mult{1, 2, 4, 4};  // width multiplier per resolution level
    int num_res_blocks = 2;               // encoder blocks per level (decoder has one more)
    int z_channels = 4;                   // latent channels (encoder emits 2*z: mean and logvar)
    int embed_dim = 4;                    // quant_conv 2z -> 2*embed, post_quant_conv embed -> z
    bool mid_attention = true;            // mid.attn_1 present (always in ldm's AutoencoderKL)
    int groups = 32;                      // GroupNorm(32, eps 1e-6) everywhere (model.py Normalize)
    float eps = 1e-6f;

    int n_levels() const { return int(ch_mult.size()); }
    // Pixels per latent cell along one axis: one Downsample per level except the last (8 for SD).
    int downscale() const { return 1 << (n_levels() - 1); }

    // SD 1.x / 2.x VAE (kl-f8).
    static VAEConfig sd() { return {}; }
    // From tensor shapes only (keys with or without the "first_stage_model." prefix); errors name the key.
    static Result<VAEConfig> detect(const nn::TensorLookup& lookup);
};

}  // namespace nb::vae
