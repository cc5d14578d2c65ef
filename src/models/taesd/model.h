// TAESD (madebyollin/taesd, taesd.py): a tiny convolutional autoencoder for Stable Diffusion-family latents, used
// for live previews and, when asked, for the final decode (stable-diffusion.cpp's --taesd). The same layout
// serves SD 1.x/2.x (4 latent channels), SDXL and FLUX-family variants (FLUX.2: 32 channels, pooled blocks);
// which one a file is follows from its tensors. Images are in [0, 1]; latents are the sampler's own (the scaled
// latents the UNet works on: TAESD's scale factor is 1).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "models/nn/layers.h"

namespace nb::taesd {

// taesd.py Block(64, 64): relu(conv4(relu(conv2(relu(conv0(x))))) + x). The FLUX.2 variant first adds a pooled
// branch: x = x + pool3(relu(groupnorm(pool0(x)))) (1x1 convs 64 -> 256 -> 64, GroupNorm of 4 groups).
struct Block {
    nn::Conv2d conv0, conv2, conv4;
    bool pooled = false;
    nn::Conv2d pool0, pool3;
    nn::GroupNorm pool_norm;
    Tensor forward(const Tensor& x) const;
};

// One step of a Sequential: a conv (with ReLU after it or not), a Block, or a nearest 2x upsample.
struct Layer {
    enum class Kind { conv, conv_relu, block, upsample } kind;
    nn::Conv2d conv;
    Block block;
};

struct Config {
    int64_t latent_channels = 4;
    bool pooled = false;  // FLUX.2 pooled blocks
    std::string summary() const;
};

class Model {
public:
    // A decoder and/or an encoder: .pth (torch zip; madebyollin's taesd_decoder.pth / taesd_encoder.pth hold
    // bare Sequential indices) or .safetensors (the same names, or diffusers AutoencoderTiny's
    // "decoder.layers.N" / "encoder.layers.N"). Errors name the file and the tensor.
    static Result<Model> load(const std::string& path);

    const Config& config() const { return cfg_; }
    bool has_decoder() const { return !decoder_.empty(); }
    bool has_encoder() const { return !encoder_.empty(); }
    // z [N, C, h, w] (the sampler's latents) -> image [N, 3, 8h, 8w], ~[0, 1], unclamped.
    Tensor decode(const Tensor& z) const;
    // x [N, 3, H, W] in [0, 1] -> latents [N, C, H/8, W/8].
    Tensor encode(const Tensor& x) const;

private:
    friend Result<void> bind(const std::string& path, Model& m);
    Config cfg_;
    std::vector<Layer> decoder_, encoder_;
};

}  // namespace nb::taesd
