// LDM AutoencoderKL ("kl-f8", the SD 1.x/2.x VAE): Encoder, Decoder, quant convs, the diagonal Gaussian
// posterior and tiled encode/decode for large images. Sources: CompVis/stable-diffusion
// ldm/modules/diffusionmodules/model.py (ResnetBlock, AttnBlock, Encoder, Decoder),
// ldm/models/autoencoder.py (AutoencoderKL), ldm/modules/distributions (DiagonalGaussianDistribution).
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "models/nn/binder.h"
#include "models/nn/layers.h"
#include "models/nn/weight_set.h"
#include "models/vae/config.h"

namespace nb::vae {

// norm1-swish-conv1-norm2-swish-conv2 plus skip; no timestep embedding in the VAE.
struct ResnetBlock {
    nn::GroupNorm norm1;
    nn::Conv2d conv1;
    nn::GroupNorm norm2;
    nn::Conv2d conv2;
    std::optional<nn::Conv2d> nin_shortcut;  // 1x1 conv, present iff c_in != c_out
    // x: [N, C_in, H, W] -> [N, C_out, H, W]
    Tensor forward(const Tensor& x) const;
};

// Single-head self-attention over the H*W positions; q/k/v/proj_out are 1x1 convs stored [C, C, 1, 1],
// bound as Linear [C, C] and applied on the [N, H*W, C] view. Scale C^-0.5, softmax over keys.
struct AttnBlock {
    nn::GroupNorm norm;
    nn::Linear q, k, v, proj_out;
    // x: [N, C, H, W] -> [N, C, H, W]
    Tensor forward(const Tensor& x) const;
};

struct MidBlock {
    ResnetBlock block_1;
    std::optional<AttnBlock> attn_1;
    ResnetBlock block_2;
    Tensor forward(const Tensor& x) const;
};

struct DownLevel {
    std::vector<ResnetBlock> block;
    std::optional<nn::Conv2d> downsample;  // zero pad (0,1,0,1) then 3x3 stride 2; absent on the last level
};

struct UpLevel {
    std::vector<ResnetBlock> block;      // num_res_blocks + 1
    std::optional<nn::Conv2d> upsample;  // nearest x2 then 3x3 conv; absent on level 0
};

struct Encoder {
    nn::Conv2d conv_in;
    std::vector<DownLevel> down;  // down[0] runs first (full resolution)
    MidBlock mid;
    nn::GroupNorm norm_out;
    nn::Conv2d conv_out;
    // x: [N, in_channels, H, W] -> [N, 2*z_channels, H/f, W/f], f = 2^(levels-1)
    Tensor forward(const Tensor& x) const;
};

struct Decoder {
    nn::Conv2d conv_in;
    MidBlock mid;
    std::vector<UpLevel> up;  // ldm order: up[levels-1] runs first (lowest resolution), up[0] last
    nn::GroupNorm norm_out;
    nn::Conv2d conv_out;
    // Called after each up level (memory policy is the owner's: see VAE::set_between_levels).
    std::function<void()> between_levels;
    // z: [N, z_channels, h, w] -> [N, out_ch, h*f, w*f]
    Tensor forward(const Tensor& z) const;
};

// DiagonalGaussianDistribution over the latent: moments [N, 2*embed, h, w] split into mean | logvar.
struct Posterior {
    Tensor mean;    // [N, embed, h, w]
    Tensor logvar;  // [N, embed, h, w], clamped to [-30, 20] as ldm does
    static Posterior from_moments(const Tensor& moments);
    Tensor std() const;                         // exp(0.5 * logvar)
    Tensor sample(const Tensor& noise) const;   // mean + std * noise; noise [N, embed, h, w]
};

// When and how to tile. Sizes are in latent cells for decode; encode uses the same numbers times the
// downscale factor in pixels. Tiling bounds peak memory (the decoder's last level holds 128 x H x W floats
// several times) at the cost of per-tile GroupNorm statistics, as in A1111 / stable-diffusion.cpp.
struct TileOptions {
    int tile = 64;                       // latent cells per tile side (512 px for SD)
    int overlap = 16;                    // latent cells shared by neighbouring tiles, feathered linearly
    int64_t max_untiled_area = 96 * 96;  // latent h*w above which the *_auto functions tile (768x768 px)
};

class VAE {
public:
    // Latents the sampler sees = scale() * z. The factor belongs to the diffusion model, not to the autoencoder
    // (ldm LatentDiffusion / sgm DiffusionEngine scale_factor) and no tensor holds it: the loader sets it from
    // the model family (pipeline/model_family.h). SD 1.x / 2.x: 0.18215.
    static constexpr float kSDScale = 0.18215f;

    // Binds first_stage_model.{encoder,decoder,quant_conv,post_quant_conv}.* (or the same names without
    // the prefix, as in standalone VAE files); errors name the key and both shapes.
    // `weights` (optional) receives the bound weights, so a pipeline can release and reload them.
    static Result<VAE> load(const nn::TensorLookup& lookup, const VAEConfig& cfg, nn::WeightSet* weights = nullptr,
                            nn::BindMode mode = nn::BindMode::load);

    const VAEConfig& config() const { return cfg_; }
    // Runs `f` between the decoder's levels (the pipeline returns freed memory there).
    void set_between_levels(std::function<void()> f) { decoder_.between_levels = std::move(f); }
    float scale() const { return scale_; }
    void set_scale(float s) { scale_ = s; }
    // Shape checks for caller-supplied tensors (the forwards assume them).
    Result<void> check_image(const Tensor& x) const;     // [N, in_channels, H, W], H, W multiples of f
    Result<void> check_latent(const Tensor& z) const;    // [N, embed_dim, h, w]

    // x: [N, 3, H, W] in [-1, 1] -> encoder output [N, 2z, H/f, W/f] (before quant_conv)
    Tensor encoder_out(const Tensor& x) const;
    // x: [N, 3, H, W] -> moments [N, 2*embed, H/f, W/f] = quant_conv(encoder(x))
    Tensor encode_moments(const Tensor& x) const;
    // x -> scale() * (mean + std * noise): ldm get_first_stage_encoding of a posterior sample.
    Tensor encode_scaled(const Tensor& x, const Tensor& noise) const;
    // z (unscaled posterior sample) [N, embed, h, w] -> image [N, 3, h*f, w*f]: post_quant_conv + decoder
    Tensor decode_unscaled(const Tensor& z) const;
    // z_scaled (what the sampler produces) -> image in ~[-1, 1]: applies 1/scale() first (decode_first_stage)
    Tensor decode(const Tensor& z_scaled) const;

    // Tiled versions: tiles of `tile` latent cells (encode: pixels) overlapping by `overlap`, blended with
    // linear ramps across each overlap. tile/overlap for encode must be multiples of the downscale factor.
    Tensor decode_tiled(const Tensor& z_scaled, int tile, int overlap) const;
    Tensor encode_moments_tiled(const Tensor& x, int tile_px, int overlap_px) const;
    // Untiled when the latent area is <= opt.max_untiled_area, else tiled with opt.tile / opt.overlap.
    bool would_tile(int64_t latent_h, int64_t latent_w, const TileOptions& opt = {}) const;
    Tensor decode_auto(const Tensor& z_scaled, const TileOptions& opt = {}) const;
    Tensor encode_moments_auto(const Tensor& x, const TileOptions& opt = {}) const;

private:
    VAEConfig cfg_;
    float scale_ = kSDScale;
    Encoder encoder_;
    Decoder decoder_;
    nn::Conv2d quant_conv_;       // 1x1, 2z -> 2*embed
    nn::Conv2d post_quant_conv_;  // 1x1, embed -> z
};

}  // namespace nb::vae
