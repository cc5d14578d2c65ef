// open_clip text tower key table (open_clip CLIP.state_dict() without the visual tower, as SD 2.x files store
// it under "cond_stage_model.model.", SDXL's bigG under "conditioner.embedders.1.model."). text_projection is
// SDXL's pooled-output projection (unused by SD 2.x); logit_scale is stored but unused.
#include "models/clip/model.h"

namespace nb::clip {

Result<CLIPConfig> CLIPConfig::detect_openclip(const nn::Binder& b, int64_t heads_hint) {
    const TensorEntry* tok = b.entry("token_embedding.weight");
    const TensorEntry* pos = b.entry("positional_embedding");
    const TensorEntry* fc = b.entry("transformer.resblocks.0.mlp.c_fc.weight");
    if (!tok || !pos || !fc || tok->shape.size() != 2 || pos->shape.size() != 2 || fc->shape.size() != 2)
        return make_error(Errc::missing, "no open_clip text tower found under '{}'", b.key(""));
    CLIPConfig c;
    c.vocab = tok->shape[0];
    c.hidden = tok->shape[1];
    c.positions = pos->shape[0];
    c.intermediate = fc->shape[0];
    c.act = Activation::gelu;  // open_clip's nn.GELU (erf); quick_gelu only in OpenAI-trained towers
    c.layers = 0;
    while (b.has("transformer.resblocks." + std::to_string(c.layers) + ".mlp.c_fc.weight")) ++c.layers;
    c.heads = heads_hint > 0 ? heads_hint : std::max<int64_t>(1, c.hidden / 64);
    if (c.hidden % c.heads != 0)
        return make_error(Errc::format, "open_clip width {} is not divisible by {} heads", c.hidden, c.heads);
    return c;
}

Result<CLIPTextEncoder> CLIPTextEncoder::load_openclip(nn::Binder b, const CLIPConfig& cfg) {
    CLIPTextEncoder m;
    m.cfg_ = cfg;
    const int64_t d = cfg.hidden, f = cfg.intermediate;
    m.token_embedding_ = b.tensor("token_embedding.weight", {cfg.vocab, d});
    m.position_embedding_ = b.tensor("positional_embedding", {cfg.positions, d});
    for (int64_t i = 0; i < cfg.layers; ++i) {
        auto lb = b.scope("transformer.resblocks." + std::to_string(i));
        EncoderLayer l;
        lb.layer_norm(l.ln1, "ln_1", d, cfg.ln_eps);
        lb.linear(l.qkv, "attn.in_proj_weight", "attn.in_proj_bias", d, 3 * d);
        lb.linear(l.out, "attn.out_proj", d, d);
        lb.layer_norm(l.ln2, "ln_2", d, cfg.ln_eps);
        lb.linear(l.fc1, "mlp.c_fc", d, f);
        lb.linear(l.fc2, "mlp.c_proj", f, d);
        m.layers_.push_back(std::move(l));
    }
    b.layer_norm(m.final_ln_, "ln_final", d, cfg.ln_eps);
    if (const TensorEntry* p = b.entry("text_projection"); p && p->shape.size() == 2)
        m.text_projection_ = b.tensor("text_projection", {d, p->shape[1]});
    if (auto s = b.status(); !s) return std::unexpected(s.error());
    return m;
}

}  // namespace nb::clip
