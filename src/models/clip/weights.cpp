// CLIP text tower key table (HF CLIPTextModel names, as stored in SD 1.x checkpoints under
// "cond_stage_model.transformer.text_model.").
#include "models/clip/model.h"

namespace nb::clip {

Result<CLIPConfig> CLIPConfig::detect(const nn::Binder& b, int64_t heads_hint) {
    const TensorEntry* tok = b.entry("embeddings.token_embedding.weight");
    const TensorEntry* pos = b.entry("embeddings.position_embedding.weight");
    const TensorEntry* fc1 = b.entry("encoder.layers.0.mlp.fc1.weight");
    if (!tok || !pos || !fc1 || tok->shape.size() != 2 || pos->shape.size() != 2 || fc1->shape.size() != 2)
        return make_error(Errc::missing, "no CLIP text encoder found under '{}'", b.key(""));
    CLIPConfig c;
    c.vocab = tok->shape[0];
    c.hidden = tok->shape[1];
    c.positions = pos->shape[0];
    c.intermediate = fc1->shape[0];
    c.layers = 0;
    while (b.has("encoder.layers." + std::to_string(c.layers) + ".mlp.fc1.weight")) ++c.layers;
    c.heads = heads_hint > 0 ? heads_hint : std::max<int64_t>(1, c.hidden / 64);
    if (c.hidden % c.heads != 0)
        return make_error(Errc::format, "CLIP hidden size {} is not divisible by {} heads", c.hidden, c.heads);
    return c;
}

Result<CLIPTextEncoder> CLIPTextEncoder::load(nn::Binder b, const CLIPConfig& cfg) {
    CLIPTextEncoder m;
    m.cfg_ = cfg;
    const int64_t d = cfg.hidden, f = cfg.intermediate;
    m.token_embedding_ = b.tensor("embeddings.token_embedding.weight", {cfg.vocab, d});
    m.position_embedding_ = b.tensor("embeddings.position_embedding.weight", {cfg.positions, d});
    for (int64_t i = 0; i < cfg.layers; ++i) {
        auto lb = b.scope("encoder.layers." + std::to_string(i));
        EncoderLayer l;
        lb.layer_norm(l.ln1, "layer_norm1", d, cfg.ln_eps);
        lb.linear(l.q, "self_attn.q_proj", d, d);
        lb.linear(l.k, "self_attn.k_proj", d, d);
        lb.linear(l.v, "self_attn.v_proj", d, d);
        lb.linear(l.out, "self_attn.out_proj", d, d);
        lb.layer_norm(l.ln2, "layer_norm2", d, cfg.ln_eps);
        lb.linear(l.fc1, "mlp.fc1", d, f);
        lb.linear(l.fc2, "mlp.fc2", f, d);
        m.layers_.push_back(std::move(l));
    }
    b.layer_norm(m.final_ln_, "final_layer_norm", d, cfg.ln_eps);
    if (auto s = b.status(); !s) return std::unexpected(s.error());
    return m;
}

}  // namespace nb::clip
