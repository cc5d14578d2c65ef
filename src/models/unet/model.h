// LDM UNet (CompVis ldm openaimodel.UNetModel / Stability SD 2.x / sgm SDXL): time embedding (plus, for SDXL,
// the label embedding of the `vector` conditioning), input blocks (ResBlock, SpatialTransformer, Downsample),
// middle block, output blocks with skip concatenation, output head.
#pragma once

#include <optional>
#include <variant>
#include <vector>

#include "models/nn/binder.h"
#include "models/unet/config.h"

namespace nb::unet {

struct ResBlock {
    nn::GroupNorm norm1;
    nn::Conv2d conv1;
    nn::Linear emb_proj;
    nn::GroupNorm norm2;
    nn::Conv2d conv2;
    std::optional<nn::Conv2d> skip;  // present iff c_in != c_out (1x1 conv)
    // x [N, C_in, H, W], emb [N, C_emb] -> [N, C_out, H, W]
    Tensor forward(const Tensor& x, const Tensor& emb) const;
};

struct Attention {
    nn::Linear q, k, v, out;  // q/k/v without bias
    int64_t heads = 8;
    // x [N, T, C], ctx [N, S, C_ctx] -> [N, T, C]
    Tensor forward(const Tensor& x, const Tensor& ctx) const;
    // Self-attention (ctx = x); x is released once projected.
    Tensor self(Tensor x) const;
};

struct TransformerBlock {
    nn::LayerNorm norm1, norm2, norm3;
    Attention attn1, attn2;  // self, cross
    nn::Linear ff_in, ff_out;  // GEGLU feed-forward: dim -> 2*4*dim, 4*dim -> dim
    static constexpr int64_t kFeedForwardRows = 1024;  // tokens per feed-forward block
    // x [N, T, C], ctx [N, S, C_ctx] -> [N, T, C]
    Tensor forward(Tensor x, const Tensor& ctx) const;
};

struct SpatialTransformer {
    nn::GroupNorm norm;  // eps 1e-6
    nn::Linear proj_in, proj_out;  // 1x1 conv (SD 1.x) or Linear (SD 2.x): same map on [N, HW, C]
    std::vector<TransformerBlock> blocks;
    // x [N, C, H, W], ctx [N, S, C_ctx] -> [N, C, H, W]
    Tensor forward(const Tensor& x, const Tensor& ctx) const;
};

struct Downsample {
    nn::Conv2d op;  // 3x3 stride 2 pad 1
};
struct Upsample {
    nn::Conv2d conv;  // nearest x2 then 3x3
};

using Layer = std::variant<ResBlock, SpatialTransformer, Downsample, Upsample>;
using Block = std::vector<Layer>;  // one TimestepEmbedSequential

// DeepCache (Ma, Fang, Wang, "DeepCache: Accelerating Diffusion Models for Free", CVPR 2024): between adjacent
// sampling steps the UNet's deep features change little and its shallow ones a lot. A full pass that is given a
// slot stores the input of the last `branch + 1` output blocks (before their skip concatenation): all that the deep
// path contributes to the output. A cached pass runs only conv_in, the first `branch` input blocks (the skip
// branch) and those last output blocks, starting from the stored feature.
struct DeepCacheSlot {
    int branch = 1;  // input blocks a cached pass runs (1: the shallowest branch, conv_in + input_blocks.1)
    Tensor feature;  // [N, C, H, W] from the last full pass; undefined until one ran
};

class UNet {
public:
    static Result<UNet> load(nn::Binder b, const UNetConfig& cfg);

    // x [N, C_in, H, W] (H, W multiples of 2^(levels-1)), t: N (fractional) timesteps, ctx [N, S, C_ctx]
    // -> [N, C_out, H, W] (eps or v, per the checkpoint's parameterisation). y [N, adm_in_channels]: SDXL's
    // vector conditioning (required when the UNet has a label embedding, ignored otherwise).
    Tensor forward(const Tensor& x, const std::vector<float>& t, const Tensor& ctx, const Tensor& y = {}) const;
    // The same with DeepCache: reuse = false runs the full UNet (result identical to the above) and stores the
    // deep feature in `cache`; reuse = true runs only the shallow branch on the stored feature (a full pass instead
    // when the slot holds none for this batch size).
    Tensor forward(const Tensor& x, const std::vector<float>& t, const Tensor& ctx, const Tensor& y,
                   DeepCacheSlot* cache, bool reuse) const;
    // emb [N, 4 mc] = time_embed(timestep_embedding(t)) (+ label_emb(y) when the UNet has one), before the
    // SiLU every ResBlock applies.
    Tensor embedding(const std::vector<float>& t, const Tensor& y = {}) const;
    const UNetConfig& config() const { return cfg_; }

    // timestep_embedding(t, dim) as ldm util.py: cat(cos(t f), sin(t f)), f_j = exp(-ln(10000) j / (dim/2)).
    static Tensor timestep_embedding(const std::vector<float>& t, int64_t dim);

private:
    Tensor run_block(const Block& blk, Tensor h, const Tensor& emb, const Tensor& ctx) const;

    UNetConfig cfg_;
    nn::Linear time_embed_1, time_embed_2;
    nn::Linear label_emb_1, label_emb_2;  // SDXL: Linear, SiLU, Linear on y (undefined otherwise)
    nn::Conv2d conv_in_;                 // input_blocks.0.0
    std::vector<Block> input_blocks_;    // input_blocks.1 ...
    Block middle_;
    std::vector<Block> output_blocks_;
    nn::GroupNorm out_norm_;
    nn::Conv2d out_conv_;
};

}  // namespace nb::unet
