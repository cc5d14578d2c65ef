#include "models/clip/model.h"

#include <algorithm>
#include <cstring>

namespace nb::clip {

Tensor CLIPTextEncoder::embed(const std::vector<int>& ids, int64_t batch,
                              const std::vector<TokenOverride>& overrides) const {
    const int64_t t = cfg_.positions, d = cfg_.hidden;
    std::vector<const float*> rows(size_t(batch * t));  // the token-embedding row of each position
    for (int64_t i = 0; i < batch * t; ++i) {
        // Out-of-range ids cannot come from our tokenizer; clamp defensively rather than read out of bounds.
        const int64_t id = std::clamp<int64_t>(ids[size_t(i)], 0, cfg_.vocab - 1);
        rows[size_t(i)] = token_embedding_.data() + id * d;
    }
    for (const auto& o : overrides) {
        if (o.row < 0 || o.row >= batch || o.position < 0) continue;
        for (int64_t k = 0; k < o.count && o.position + k < t; ++k)
            rows[size_t(o.row * t + o.position + k)] = o.vectors + k * d;
    }
    Tensor x = Tensor::empty({batch, t, d});
    for (int64_t i = 0; i < batch * t; ++i) {
        const float* te = rows[size_t(i)];
        const float* pe = position_embedding_.data() + (i % t) * d;
        float* o = x.data() + i * d;
        for (int64_t c = 0; c < d; ++c) o[c] = te[c] + pe[c];
    }
    return x;
}

namespace {

// qkv [B, T, 3D] -> part i of the last axis [B, T, D] (contiguous copy, as ops::attention wants).
Tensor third(const Tensor& qkv, int i) {
    const int64_t d3 = qkv.dim(2), d = d3 / 3, rows = qkv.dim(0) * qkv.dim(1);
    Tensor out = Tensor::empty({qkv.dim(0), qkv.dim(1), d});
    for (int64_t r = 0; r < rows; ++r)
        std::memcpy(out.data() + r * d, qkv.data() + r * d3 + i * d, size_t(d) * sizeof(float));
    return out;
}

}  // namespace

// x [B, T, D] -> [B, T, D]: x + attn(ln1 x) then + mlp(ln2 x), causal self-attention.
Tensor CLIPTextEncoder::layer_forward(const EncoderLayer& l, const Tensor& x) const {
    Tensor h = l.ln1.forward(x);
    Tensor a;
    if (l.qkv.weight.defined()) {
        Tensor qkv = l.qkv.forward(h);  // [B, T, 3D]
        a = ops::attention(third(qkv, 0), third(qkv, 1), third(qkv, 2), int(cfg_.heads), /*causal=*/true);
    } else {
        a = ops::attention(l.q.forward(h), l.k.forward(h), l.v.forward(h), int(cfg_.heads), /*causal=*/true);
    }
    Tensor y = l.out.forward(a);
    ops::add_(y, x);
    Tensor m = l.fc1.forward(l.ln2.forward(y));
    if (cfg_.act == Activation::quick_gelu)
        ops::quick_gelu_(m);
    else
        ops::gelu_(m);
    Tensor out = l.fc2.forward(m);
    ops::add_(out, y);
    return out;
}

std::vector<Tensor> CLIPTextEncoder::hidden_states(const std::vector<int>& ids, int64_t batch, int n_layers) const {
    std::vector<Tensor> hs{embed(ids, batch)};
    for (int i = 0; i < n_layers; ++i) hs.push_back(layer_forward(layers_[size_t(i)], hs.back()));
    return hs;
}

TextEncoderOutput CLIPTextEncoder::encode(const std::vector<int>& ids, int64_t batch, int clip_skip,
                                          const std::vector<TokenOverride>& overrides) const {
    const int n_layers = int(cfg_.layers);
    const int run = std::clamp(n_layers - std::max(clip_skip, 1) + 1, 1, n_layers);
    Tensor x = embed(ids, batch, overrides);
    for (int i = 0; i < run; ++i) x = layer_forward(layers_[size_t(i)], x);
    TextEncoderOutput out;
    out.hidden = final_ln_.forward(x);
    // Pooled output comes from the last layer; only computed when no layers are skipped (SD 1.x never uses it).
    const int64_t t = cfg_.positions, d = cfg_.hidden;
    out.pooled = Tensor::empty({batch, d});
    for (int64_t bi = 0; bi < batch; ++bi) {
        auto row = ids.begin() + bi * t;
        const int64_t at = std::max_element(row, row + t) - row;  // first occurrence of the largest id (EOS)
        std::memcpy(out.pooled.data() + bi * d, out.hidden.data() + (bi * t + at) * d, size_t(d) * sizeof(float));
    }
    return out;
}

TextEncoderOutput CLIPTextEncoder::encode_penultimate(const std::vector<int>& ids, int64_t batch, bool pooled,
                                                      const std::vector<TokenOverride>& overrides) const {
    const int n_layers = int(cfg_.layers);
    Tensor x = embed(ids, batch, overrides);
    for (int i = 0; i + 1 < n_layers; ++i) x = layer_forward(layers_[size_t(i)], x);
    TextEncoderOutput out;
    out.hidden = x;
    if (!pooled || !text_projection_.defined()) return out;
    Tensor last = final_ln_.forward(layer_forward(layers_.back(), x));
    const int64_t t = cfg_.positions, d = cfg_.hidden, e = text_projection_.dim(1);
    out.pooled = Tensor(Shape{batch, e});
    for (int64_t bi = 0; bi < batch; ++bi) {
        auto row = ids.begin() + bi * t;
        const int64_t at = std::max_element(row, row + t) - row;  // the first EOS (the largest id)
        const float* v = last.data() + (bi * t + at) * d;
        float* o = out.pooled.data() + bi * e;
        for (int64_t k = 0; k < d; ++k)
            for (int64_t j = 0; j < e; ++j) o[j] += v[k] * text_projection_.data()[k * e + j];
    }
    return out;
}

}  // namespace nb::clip
