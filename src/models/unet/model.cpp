#include "models/unet/model.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace nb::unet {

Tensor ResBlock::forward(const Tensor& x, const Tensor& emb) const {
    Tensor h = conv1.forward(norm1.forward(x, /*silu=*/true));
    Tensor e = emb.defined() ? emb_proj.forward(emb) : Tensor();  // emb: SiLU already applied by the caller
    if (e.defined()) ops::add_channel_bias_(h, e);
    h = conv2.forward(norm2.forward(h, /*silu=*/true));  // dropout is identity at inference
    if (skip)
        ops::add_(h, skip->forward(x));
    else
        ops::add_(h, x);
    return h;
}

Tensor Attention::forward(const Tensor& x, const Tensor& ctx) const {
    Tensor o = ops::attention(q.forward(x), k.forward(ctx), v.forward(ctx), int(heads));
    return out.forward(o);
}

Tensor Attention::self(Tensor x) const {
    Tensor qx = q.forward(x), kx = k.forward(x), vx = v.forward(x);
    x = Tensor();
    Tensor o = ops::attention(qx, kx, vx, int(heads));
    qx = kx = vx = Tensor();
    return out.forward(o);
}

Tensor TransformerBlock::forward(Tensor x, const Tensor& ctx) const {
    ops::add_(x, attn1.self(norm1.forward(x)));
    ops::add_(x, attn2.forward(norm2.forward(x), ctx));
    // The feed-forward is per token: run it on blocks of kFeedForwardRows tokens, so that its hidden
    // activations (8x the width before GEGLU, 4x after) exist for one block at a time -- at 512x512 the
    // 320-channel level's would be 126 MB for all 8192 tokens of a CFG batch.
    const int64_t width = x.dim(-1), rows = x.numel() / width;
    Tensor flat = x.reshape({rows, width});
    for (int64_t r0 = 0; r0 < rows; r0 += kFeedForwardRows) {
        Tensor xr = flat.slice0(r0, std::min(rows, r0 + kFeedForwardRows));
        ops::add_(xr, ff_out.forward(ops::geglu(ff_in.forward(norm3.forward(xr)))));
    }
    return x;
}

Tensor SpatialTransformer::forward(const Tensor& x, const Tensor& ctx) const {
    const int64_t h = x.dim(2), w = x.dim(3);
    Tensor t = proj_in.forward(ops::nchw_to_nhwc(norm.forward(x)));  // [N, HW, C]
    for (const auto& b : blocks) t = b.forward(std::move(t), ctx);
    Tensor y = ops::nhwc_to_nchw(proj_out.forward(t), h, w);
    ops::add_(y, x);
    return y;
}

Tensor UNet::timestep_embedding(const std::vector<float>& t, int64_t dim) {
    // Float32 throughout, in ldm's operation order: freqs = exp(-ln(10000) * arange(half) / half).
    const int64_t half = dim / 2;
    Tensor e(Shape{int64_t(t.size()), dim});
    const float neg_log = -float(std::log(10000.0));
    for (size_t i = 0; i < t.size(); ++i)
        for (int64_t j = 0; j < half; ++j) {
            const float f = std::exp(neg_log * float(j) / float(half));
            const float a = t[i] * f;
            e.data()[int64_t(i) * dim + j] = std::cos(a);
            e.data()[int64_t(i) * dim + half + j] = std::sin(a);
        }
    return e;
}

Tensor UNet::run_block(const Block& blk, Tensor h, const Tensor& emb, const Tensor& ctx) const {
    for (const auto& layer : blk) {
        if (auto* r = std::get_if<ResBlock>(&layer))
            h = r->forward(h, emb);
        else if (auto* s = std::get_if<SpatialTransformer>(&layer))
            h = s->forward(h, ctx);
        else if (auto* d = std::get_if<Downsample>(&layer))
            h = d->op.forward(h);
        else if (auto* u = std::get_if<Upsample>(&layer))
            h = u->conv.forward(ops::upsample_nearest2x(h));
    }
    return h;
}

Tensor UNet::embedding(const std::vector<float>& t, const Tensor& y) const {
    Tensor e = time_embed_1.forward(timestep_embedding(t, cfg_.model_channels));
    ops::silu_(e);
    Tensor emb = time_embed_2.forward(e);
    if (cfg_.adm_in_channels > 0 && y.defined()) {
        Tensor l = label_emb_1.forward(y.reshape({y.dim(0), y.numel() / y.dim(0)}));
        ops::silu_(l);
        ops::add_(emb, label_emb_2.forward(l));
    }
    return emb;
}

Tensor UNet::forward(const Tensor& x, const std::vector<float>& t, const Tensor& ctx, const Tensor& y) const {
    return forward(x, t, ctx, y, nullptr, false);
}

Tensor UNet::forward(const Tensor& x, const std::vector<float>& t, const Tensor& ctx, const Tensor& y,
                     DeepCacheSlot* cache, bool reuse) const {
    // emb [N, 4*mc] = time_embed(timestep_embedding(t)) (+ label_emb(y)); every ResBlock starts its emb path
    // with SiLU.
    Tensor emb = embedding(t, y);
    ops::silu_(emb);
    const size_t n_in = input_blocks_.size(), n_out = output_blocks_.size();
    // DeepCache: the output blocks from `resume` on take the skips of conv_in and the first `branch` input blocks.
    const size_t branch = cache ? size_t(std::clamp(cache->branch, 0, int(std::min(n_in, n_out - 1)))) : 0;
    const size_t resume = n_out - (branch + 1);
    const bool cached = cache && reuse && cache->feature.defined() && cache->feature.dim(0) == x.dim(0);
    std::vector<Tensor> skips;
    Tensor h = conv_in_.forward(x);
    skips.push_back(h);
    for (size_t i = 0; i < (cached ? branch : n_in); ++i) {
        h = run_block(input_blocks_[i], std::move(h), emb, ctx);
        skips.push_back(h);
    }
    if (cached)
        h = cache->feature;
    else
        h = run_block(middle_, std::move(h), emb, ctx);
    for (size_t j = cached ? resume : 0; j < n_out; ++j) {
        if (cache && !cached && j == resume) cache->feature = h;
        // A latent side that does not halve evenly (SD 1.x at 768x432: 54 -> 27 -> 14) comes back one larger
        // from the upsampling; A1111 (sd_hijack_unet's torch.cat) resizes it to the skip's size, nearest.
        const Tensor& skip = skips.back();
        if (h.dim(2) != skip.dim(2) || h.dim(3) != skip.dim(3)) h = ops::resize_nearest(h, skip.dim(2), skip.dim(3));
        h = ops::concat_channels(h, skip);
        skips.pop_back();
        h = run_block(output_blocks_[j], std::move(h), emb, ctx);
    }
    return out_conv_.forward(out_norm_.forward(h, /*silu=*/true));
}

std::string UNetConfig::family() const {
    const bool sd1_shape = channel_mult == std::vector<int64_t>{1, 2, 4, 4} && model_channels == 320;
    const bool full = sd1_shape && has_middle && res_blocks == std::vector<int>{2, 2, 2, 2};
    if (adm_in_channels > 0) return in_channels == 9 ? "SDXL inpainting" : "SDXL";
    std::string base = linear_proj || context_dim == 1024 ? "SD 2.x" : "SD 1.x";
    if (sd1_shape && !full) base = "compact " + base;
    if (!sd1_shape) base += "-like (" + std::to_string(model_channels) + " base channels)";
    if (in_channels == 9) base += " inpainting";
    return base;
}

std::string UNetConfig::summary() const {
    std::vector<int> att;
    for (bool a : attention) att.push_back(a ? 1 : 0);
    return fmt::format(
        "in {} out {}, model_channels {}, channel_mult {}, res_blocks {}, attention {}, middle {}{}, context {}, "
        "depth {}, proj {}{}",
        in_channels, out_channels, model_channels, fmt::join(channel_mult, ","), fmt::join(res_blocks, ","),
        fmt::join(att, ","), has_middle ? "yes" : "no", has_middle && middle_attention ? "+attn" : "", context_dim,
        fmt::join(depth, ","), linear_proj ? "linear" : "1x1 conv",
        adm_in_channels > 0 ? fmt::format(", label_emb {}", adm_in_channels) : "");
}

}  // namespace nb::unet
