// CLIP text encoder as openai/CLIP's text transformer (pre-LN blocks, causal mask, quick-GELU). The open_clip
// text tower of SD 2.x (ldm FrozenOpenCLIPEmbedder) is the same transformer with GELU, a fused q/k/v
// projection and its own key names: a second key table (openclip_weights.cpp), not a second model.
#pragma once

#include <vector>

#include "models/clip/config.h"
#include "models/nn/binder.h"

namespace nb::clip {

struct EncoderLayer {
    nn::LayerNorm ln1, ln2;
    nn::Linear q, k, v, out;  // self-attention; q, k, v undefined when qkv is
    nn::Linear qkv;           // [3D, D] rows q; k; v (open_clip attn.in_proj), or undefined
    nn::Linear fc1, fc2;      // MLP
};

// Token-embedding rows replaced before the position embedding is added (A1111 EmbeddingsWithFixes): `count`
// vectors of the model's width from `vectors` go at positions [position, position + count) of batch row `row`
// (cut at the row's end).
struct TokenOverride {
    int64_t row = 0, position = 0;
    const float* vectors = nullptr;  // [count, D]
    int64_t count = 0;
};

struct TextEncoderOutput {
    Tensor hidden;  // [B, T, D] final_layer_norm(output of layer L - clip_skip + 1)
    Tensor pooled;  // [B, D] last_hidden_state at the first EOS (argmax id), as HF pooler_output
};

class CLIPTextEncoder {
public:
    // `b` is scoped at the text model (keys "embeddings.token_embedding.weight", "encoder.layers.0...").
    static Result<CLIPTextEncoder> load(nn::Binder b, const CLIPConfig& cfg);
    // `b` is scoped at an open_clip text tower (keys "token_embedding.weight", "transformer.resblocks.0...",
    // as SD 2.x files store it under "cond_stage_model.model.").
    static Result<CLIPTextEncoder> load_openclip(nn::Binder b, const CLIPConfig& cfg);

    // ids: B rows of `positions` token ids. clip_skip as A1111: 1 = last layer, N>1 = output of layer L-N+1;
    // the final LayerNorm is applied in both cases.
    TextEncoderOutput encode(const std::vector<int>& ids, int64_t batch, int clip_skip = 1,
                             const std::vector<TokenOverride>& overrides = {}) const;
    const CLIPConfig& config() const { return cfg_; }

    // Exposed for golden tests: hidden_states[k] (0 = embeddings, k = output of layer k), no final LN.
    std::vector<Tensor> hidden_states(const std::vector<int>& ids, int64_t batch, int n_layers) const;

    // SDXL's text conditioning (sgm FrozenCLIPEmbedder layer "hidden", idx L-1, and FrozenOpenCLIPEmbedder2
    // layer "penultimate", legacy False): hidden = output of layer L-1 WITHOUT the final LayerNorm. pooled
    // (only with `pooled`, for a tower with a text_projection): final_ln(output of layer L)[first argmax id]
    // @ text_projection -> [B, embed_dim].
    TextEncoderOutput encode_penultimate(const std::vector<int>& ids, int64_t batch, bool pooled,
                                         const std::vector<TokenOverride>& overrides = {}) const;
    // open_clip's text_projection [D, embed_dim] (x @ W), undefined when the file has none.
    const Tensor& text_projection() const { return text_projection_; }

    // Mutable weights, for LoRA merging.
    std::vector<EncoderLayer>& layers() { return layers_; }

private:
    Tensor embed(const std::vector<int>& ids, int64_t batch,
                 const std::vector<TokenOverride>& overrides = {}) const;  // -> [B, T, D]
    Tensor layer_forward(const EncoderLayer& l, const Tensor& x) const;

    CLIPConfig cfg_;
    Tensor token_embedding_;     // [vocab, D]
    Tensor position_embedding_;  // [positions, D]
    std::vector<EncoderLayer> layers_;
    nn::LayerNorm final_ln_;
    Tensor text_projection_;  // [D, embed_dim], open_clip towers only
};

}  // namespace nb::clip
