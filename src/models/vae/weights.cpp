// The VAE's checkpoint key table (LDM names, one line per tensor) and shape-based config detection.
#include <string>

#include "models/vae/model.h"

namespace nb::vae {

namespace {

// SD single-file checkpoints prefix the VAE with "first_stage_model."; standalone VAE files do not.
std::string key_prefix(const nn::TensorLookup& lookup) {
    return lookup("first_stage_model.encoder.conv_in.weight") ? "first_stage_model." : "";
}

void bind_resnet(nn::Binder b, ResnetBlock& m, int64_t c_in, int64_t c_out, const VAEConfig& cfg) {
    b.group_norm(m.norm1, "norm1", c_in, cfg.eps, cfg.groups);
    b.conv2d(m.conv1, "conv1", c_in, c_out, 3);
    b.group_norm(m.norm2, "norm2", c_out, cfg.eps, cfg.groups);
    b.conv2d(m.conv2, "conv2", c_out, c_out, 3);
    if (c_in != c_out) b.conv2d(m.nin_shortcut.emplace(), "nin_shortcut", c_in, c_out, 1);
}

void bind_attn(nn::Binder b, AttnBlock& m, int64_t c, const VAEConfig& cfg) {
    b.group_norm(m.norm, "norm", c, cfg.eps, cfg.groups);
    b.linear_or_1x1(m.q, "q", c, c);
    b.linear_or_1x1(m.k, "k", c, c);
    b.linear_or_1x1(m.v, "v", c, c);
    b.linear_or_1x1(m.proj_out, "proj_out", c, c);
}

void bind_mid(nn::Binder b, MidBlock& m, int64_t c, const VAEConfig& cfg) {
    bind_resnet(b.scope("block_1"), m.block_1, c, c, cfg);
    if (cfg.mid_attention) bind_attn(b.scope("attn_1"), m.attn_1.emplace(), c, cfg);
    bind_resnet(b.scope("block_2"), m.block_2, c, c, cfg);
}

void bind_encoder(nn::Binder b, Encoder& m, const VAEConfig& cfg) {
    const int levels = cfg.n_levels();
    b.conv2d(m.conv_in, "conv_in", cfg.in_channels, cfg.ch, 3);
    int64_t c = cfg.ch;
    m.down.resize(levels);
    for (int i = 0; i < levels; ++i) {
        nn::Binder lb = b.scope("down." + std::to_string(i));
        const int64_t c_out = int64_t(cfg.ch) * cfg.ch_mult[i];
        m.down[i].block.resize(cfg.num_res_blocks);
        for (int j = 0; j < cfg.num_res_blocks; ++j, c = c_out)
            bind_resnet(lb.scope("block." + std::to_string(j)), m.down[i].block[j], c, c_out, cfg);
        if (i == levels - 1) continue;
        nn::Conv2d& ds = m.down[i].downsample.emplace();
        lb.conv2d(ds, "downsample.conv", c, c, 3, /*stride=*/2);
        ds.pad = ops::Pad2d{.t = 0, .l = 0, .b = 1, .r = 1};  // F.pad(x, (0,1,0,1)) then conv padding 0
    }
    bind_mid(b.scope("mid"), m.mid, c, cfg);
    b.group_norm(m.norm_out, "norm_out", c, cfg.eps, cfg.groups);
    b.conv2d(m.conv_out, "conv_out", c, 2 * cfg.z_channels, 3);
}

void bind_decoder(nn::Binder b, Decoder& m, const VAEConfig& cfg) {
    const int levels = cfg.n_levels();
    int64_t c = int64_t(cfg.ch) * cfg.ch_mult[levels - 1];
    b.conv2d(m.conv_in, "conv_in", cfg.z_channels, c, 3);
    bind_mid(b.scope("mid"), m.mid, c, cfg);
    m.up.resize(levels);
    for (int i = levels - 1; i >= 0; --i) {  // construction order of ldm's Decoder
        nn::Binder lb = b.scope("up." + std::to_string(i));
        const int64_t c_out = int64_t(cfg.ch) * cfg.ch_mult[i];
        m.up[i].block.resize(cfg.num_res_blocks + 1);
        for (int j = 0; j <= cfg.num_res_blocks; ++j, c = c_out)
            bind_resnet(lb.scope("block." + std::to_string(j)), m.up[i].block[j], c, c_out, cfg);
        if (i != 0) lb.conv2d(m.up[i].upsample.emplace(), "upsample.conv", c, c, 3);
    }
    b.group_norm(m.norm_out, "norm_out", c, cfg.eps, cfg.groups);
    b.conv2d(m.conv_out, "conv_out", c, cfg.out_ch, 3);
}

const TensorEntry* need(const nn::TensorLookup& lookup, const std::string& key, size_t ndim) {
    const TensorEntry* e = lookup(key);
    return e && e->shape.size() == ndim ? e : nullptr;
}

}  // namespace

Result<VAE> VAE::load(const nn::TensorLookup& lookup, const VAEConfig& cfg, nn::WeightSet* weights,
                      nn::BindMode mode) {
    if (cfg.n_levels() < 1 || cfg.num_res_blocks < 1 || cfg.ch % cfg.groups != 0)
        return make_error(Errc::invalid_argument, "vae config: need >= 1 level, >= 1 block, ch divisible by {}",
                          cfg.groups);
    VAE vae;
    vae.cfg_ = cfg;
    nn::Binder root(lookup, key_prefix(lookup), mode);
    bind_encoder(root.scope("encoder"), vae.encoder_, cfg);
    bind_decoder(root.scope("decoder"), vae.decoder_, cfg);
    root.conv2d(vae.quant_conv_, "quant_conv", 2 * cfg.z_channels, 2 * cfg.embed_dim, 1);
    root.conv2d(vae.post_quant_conv_, "post_quant_conv", cfg.embed_dim, cfg.z_channels, 1);
    if (auto st = root.status(); !st) return std::unexpected(st.error());
    if (weights) weights->add(root);
    return vae;
}

Result<VAEConfig> VAEConfig::detect(const nn::TensorLookup& lookup) {
    const std::string p = key_prefix(lookup);
    const std::string enc = p + "encoder.", dec = p + "decoder.";
    auto missing = [](const std::string& k) { return make_error(Errc::missing, "vae detect: no 4-D tensor '{}'", k); };
    VAEConfig c;
    const TensorEntry* conv_in = need(lookup, enc + "conv_in.weight", 4);  // [ch, in, 3, 3]
    if (!conv_in) return missing(enc + "conv_in.weight");
    c.ch = int(conv_in->shape[0]);
    c.in_channels = int(conv_in->shape[1]);
    c.ch_mult.clear();
    for (int i = 0;; ++i) {  // [ch*mult, c_in, 3, 3] per level
        const TensorEntry* w = need(lookup, enc + "down." + std::to_string(i) + ".block.0.conv1.weight", 4);
        if (!w) break;
        c.ch_mult.push_back(int(w->shape[0] / c.ch));
    }
    if (c.ch_mult.empty()) return missing(enc + "down.0.block.0.conv1.weight");
    c.num_res_blocks = 0;
    while (need(lookup, enc + "down.0.block." + std::to_string(c.num_res_blocks) + ".conv1.weight", 4))
        ++c.num_res_blocks;
    if (lookup(enc + "down.0.attn.0.q.weight"))
        return make_error(Errc::unsupported, "vae detect: attention inside down levels ('{}') is not supported",
                          enc + "down.0.attn.0.q.weight");
    const TensorEntry* dconv_in = need(lookup, dec + "conv_in.weight", 4);  // [C, z, 3, 3]
    const TensorEntry* dconv_out = need(lookup, dec + "conv_out.weight", 4);  // [out_ch, ch, 3, 3]
    const TensorEntry* quant = need(lookup, p + "quant_conv.weight", 4);  // [2*embed, 2z, 1, 1]
    if (!dconv_in) return missing(dec + "conv_in.weight");
    if (!dconv_out) return missing(dec + "conv_out.weight");
    if (!quant) return missing(p + "quant_conv.weight");
    c.z_channels = int(dconv_in->shape[1]);
    c.out_ch = int(dconv_out->shape[0]);
    c.embed_dim = int(quant->shape[0] / 2);
    c.mid_attention = lookup(enc + "mid.attn_1.q.weight") != nullptr;
    return c;
}

}  // namespace nb::vae
