// UNet key table: LDM names under "model.diffusion_model.". The block list is read off the checkpoint:
// input_blocks.N / output_blocks.N hold a ResBlock at .0 (or a Downsample "op"), an optional
// SpatialTransformer at .1 and an optional Upsample "conv" at .1 or .2.
#include <fmt/format.h>

#include "models/unet/model.h"

namespace nb::unet {

namespace {

std::string idx(std::string_view base, int i) { return fmt::format("{}.{}", base, i); }

bool is_res(const nn::Binder& b, const std::string& layer) { return b.has(layer + ".in_layers.0.weight"); }
bool is_attn(const nn::Binder& b, const std::string& layer) { return b.has(layer + ".proj_in.weight"); }

int64_t out_ch(const nn::Binder& b, const std::string& layer) { return b.entry(layer + ".out_layers.3.weight")->shape[0]; }
int64_t in_ch(const nn::Binder& b, const std::string& layer) { return b.entry(layer + ".in_layers.0.weight")->shape[0]; }

ResBlock load_res(nn::Binder b, int64_t c_in, int64_t c_out, int64_t c_emb) {
    ResBlock r;
    b.group_norm(r.norm1, "in_layers.0", c_in, 1e-5f);
    b.conv2d(r.conv1, "in_layers.2", c_in, c_out, 3);
    b.linear(r.emb_proj, "emb_layers.1", c_emb, c_out);
    b.group_norm(r.norm2, "out_layers.0", c_out, 1e-5f);
    b.conv2d(r.conv2, "out_layers.3", c_out, c_out, 3);
    if (c_in != c_out || b.has("skip_connection.weight")) {
        r.skip.emplace();
        b.conv2d(*r.skip, "skip_connection", c_in, c_out, 1);
    }
    return r;
}

Attention load_attn(nn::Binder b, int64_t dim, int64_t ctx_dim, int64_t heads) {
    Attention a;
    a.heads = heads;
    b.linear(a.q, "to_q", dim, dim, false);
    b.linear(a.k, "to_k", ctx_dim, dim, false);
    b.linear(a.v, "to_v", ctx_dim, dim, false);
    b.linear(a.out, "to_out.0", dim, dim);
    return a;
}

SpatialTransformer load_st(nn::Binder b, int64_t c, const UNetConfig& cfg) {
    SpatialTransformer st;
    const int64_t heads = cfg.heads_for(c);
    b.group_norm(st.norm, "norm", c, 1e-6f);
    b.linear_or_1x1(st.proj_in, "proj_in", c, c);
    for (int d = 0; b.has(fmt::format("transformer_blocks.{}.norm1.weight", d)); ++d) {
        auto tb = b.scope(fmt::format("transformer_blocks.{}", d));
        TransformerBlock blk;
        tb.layer_norm(blk.norm1, "norm1", c);
        tb.layer_norm(blk.norm2, "norm2", c);
        tb.layer_norm(blk.norm3, "norm3", c);
        blk.attn1 = load_attn(tb.scope("attn1"), c, c, heads);
        blk.attn2 = load_attn(tb.scope("attn2"), c, cfg.context_dim, heads);
        tb.linear(blk.ff_in, "ff.net.0.proj", c, 8 * c);
        tb.linear(blk.ff_out, "ff.net.2", 4 * c, c);
        st.blocks.push_back(std::move(blk));
    }
    b.linear_or_1x1(st.proj_out, "proj_out", c, c);
    return st;
}

}  // namespace

int64_t UNetConfig::heads_for(int64_t channels) const {
    if (heads.num_heads > 0) return heads.num_heads;
    if (heads.head_channels > 0) return std::max<int64_t>(1, channels / heads.head_channels);
    return linear_proj ? std::max<int64_t>(1, channels / 64) : 8;
}

Result<UNetConfig> UNetConfig::detect(const nn::Binder& b, HeadsHint hint) {
    const TensorEntry* conv_in = b.entry("input_blocks.0.0.weight");
    const TensorEntry* out = b.entry("out.2.weight");
    if (!conv_in || !out || conv_in->shape.size() != 4 || out->shape.size() != 4)
        return make_error(Errc::missing, "no LDM UNet found under '{}' (input_blocks.0.0 / out.2 missing)", b.key(""));
    UNetConfig c;
    c.heads = hint;
    c.model_channels = conv_in->shape[0];
    c.in_channels = conv_in->shape[1];
    c.out_channels = out->shape[0];
    c.res_blocks = {0};
    c.attention = {false};
    c.depth = {0};
    c.channel_mult = {1};
    for (int i = 1;; ++i) {
        const std::string blk = idx("input_blocks", i);
        if (b.has(blk + ".0.op.weight")) {  // Downsample closes a level
            c.res_blocks.push_back(0);
            c.attention.push_back(false);
            c.depth.push_back(0);
            c.channel_mult.push_back(c.channel_mult.back());
            continue;
        }
        if (!is_res(b, blk + ".0")) break;
        c.res_blocks.back()++;
        c.channel_mult.back() = out_ch(b, blk + ".0") / c.model_channels;
        if (is_attn(b, blk + ".1")) {
            c.attention.back() = true;
            const TensorEntry* pi = b.entry(blk + ".1.proj_in.weight");
            c.linear_proj = pi->shape.size() == 2;
            if (const TensorEntry* k = b.entry(blk + ".1.transformer_blocks.0.attn2.to_k.weight")) c.context_dim = k->shape[1];
            int d = 0;
            while (b.has(fmt::format("{}.1.transformer_blocks.{}.norm1.weight", blk, d))) ++d;
            c.depth.back() = d;
            c.transformer_depth = d;
        }
    }
    c.has_middle = is_res(b, "middle_block.0");
    c.middle_attention = is_attn(b, "middle_block.1");
    while (c.middle_attention && b.has(fmt::format("middle_block.1.transformer_blocks.{}.norm1.weight", c.middle_depth)))
        ++c.middle_depth;
    if (const TensorEntry* l = b.entry("label_emb.0.0.weight"); l && l->shape.size() == 2) c.adm_in_channels = l->shape[1];
    if (c.res_blocks.back() == 0)
        return make_error(Errc::format, "UNet under '{}' ends with a Downsample block", b.key(""));
    return c;
}

Result<UNet> UNet::load(nn::Binder b, const UNetConfig& cfg) {
    UNet u;
    u.cfg_ = cfg;
    const int64_t mc = cfg.model_channels, emb = 4 * mc;
    b.linear(u.time_embed_1, "time_embed.0", mc, emb);
    b.linear(u.time_embed_2, "time_embed.2", emb, emb);
    if (cfg.adm_in_channels > 0) {  // sgm num_classes "sequential": label_emb.0 = Sequential(Linear, SiLU, Linear)
        b.linear(u.label_emb_1, "label_emb.0.0", cfg.adm_in_channels, emb);
        b.linear(u.label_emb_2, "label_emb.0.2", emb, emb);
    }
    b.conv2d(u.conv_in_, "input_blocks.0.0", cfg.in_channels, mc, 3);
    std::vector<int64_t> skips{mc};
    int64_t ch = mc;
    for (int i = 1; b.ok(); ++i) {
        const std::string blk = idx("input_blocks", i);
        Block layers;
        if (b.has(blk + ".0.op.weight")) {
            Downsample d;
            b.conv2d(d.op, blk + ".0.op", ch, ch, 3, 2, 1);
            layers.push_back(d);
        } else if (is_res(b, blk + ".0")) {
            const int64_t co = out_ch(b, blk + ".0");
            layers.push_back(load_res(b.scope(blk + ".0"), ch, co, emb));
            ch = co;
            if (is_attn(b, blk + ".1")) layers.push_back(load_st(b.scope(blk + ".1"), ch, cfg));
        } else {
            break;
        }
        skips.push_back(ch);
        u.input_blocks_.push_back(std::move(layers));
    }
    if (cfg.has_middle) {
        u.middle_.push_back(load_res(b.scope("middle_block.0"), ch, ch, emb));
        if (cfg.middle_attention) u.middle_.push_back(load_st(b.scope("middle_block.1"), ch, cfg));
        u.middle_.push_back(load_res(b.scope(cfg.middle_attention ? "middle_block.2" : "middle_block.1"), ch, ch, emb));
    }
    for (int j = 0; b.ok() && is_res(b, idx("output_blocks", j) + ".0"); ++j) {
        const std::string blk = idx("output_blocks", j);
        if (skips.empty())
            return make_error(Errc::format, "UNet has more output blocks than skip connections at '{}'", b.key(blk));
        const int64_t c_in = in_ch(b, blk + ".0"), co = out_ch(b, blk + ".0");
        if (c_in != ch + skips.back())
            return make_error(Errc::shape, "tensor '{}' has {} input channels, expected {} + skip {}",
                              b.key(blk + ".0.in_layers.0.weight"), c_in, ch, skips.back());
        skips.pop_back();
        Block layers;
        layers.push_back(load_res(b.scope(blk + ".0"), c_in, co, emb));
        ch = co;
        int next = 1;
        if (is_attn(b, blk + ".1")) layers.push_back(load_st(b.scope(blk + ".1"), ch, cfg)), next = 2;
        if (b.has(fmt::format("{}.{}.conv.weight", blk, next))) {
            Upsample up;
            b.conv2d(up.conv, fmt::format("{}.{}.conv", blk, next), ch, ch, 3);
            layers.push_back(up);
        }
        u.output_blocks_.push_back(std::move(layers));
    }
    b.group_norm(u.out_norm_, "out.0", ch, 1e-5f);
    b.conv2d(u.out_conv_, "out.2", ch, cfg.out_channels, 3);
    if (auto s = b.status(); !s) return std::unexpected(s.error());
    if (u.output_blocks_.empty()) return make_error(Errc::missing, "UNet under '{}' has no output blocks", b.key(""));
    return u;
}

}  // namespace nb::unet
