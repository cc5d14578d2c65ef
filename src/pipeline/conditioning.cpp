#include "pipeline/conditioning.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "text/chunking.h"

namespace nb::pipeline {

void apply_emphasis(Tensor& z, const std::vector<float>& multipliers) {
    const int64_t chunks = z.dim(0), t = z.dim(1), d = z.dim(2);
    for (int64_t c = 0; c < chunks; ++c) {
        float* zc = z.data() + c * t * d;
        double before = 0, after = 0;
        for (int64_t i = 0; i < t * d; ++i) before += zc[i];
        for (int64_t i = 0; i < t; ++i) {
            const float mult = multipliers[size_t(c * t + i)];
            for (int64_t j = 0; j < d; ++j) zc[i * d + j] *= mult;
        }
        for (int64_t i = 0; i < t * d; ++i) after += zc[i];
        // mean(z) / mean(z') = sum(z) / sum(z'); A1111 divides by zero here when sum(z') == 0.
        if (after == 0.0 || !std::isfinite(after) || !std::isfinite(before)) continue;
        const float ratio = float(float(before / double(t * d)) / float(after / double(t * d)));
        for (int64_t i = 0; i < t * d; ++i) zc[i] *= ratio;
    }
}

namespace {

// Every position after the first EOS of each 77-token row becomes 0 (open_clip's padding; A1111
// process_tokens with id_pad != id_end).
void pad_after_eos(std::vector<int>& ids, int eos) {
    const size_t t = text::PromptChunk::kLength;
    for (size_t at = 0; at < ids.size(); at += t) {
        auto row_end = ids.begin() + ptrdiff_t(at + t);
        auto first_eos = std::find(ids.begin() + ptrdiff_t(at), row_end, eos);
        if (first_eos != row_end) std::fill(first_eos + 1, row_end, 0);
    }
}

// A1111 FrozenCLIPEmbedderForSDXLWithCustomWords + FrozenOpenCLIPEmbedder2WithCustomWords, then sgm's
// GeneralConditioner concatenation of their outputs on the feature axis.
EncodedPrompt encode_sdxl(const SDModel& m, std::string_view prompt) {
    text::PromptChunks pc = text::tokenize_weighted(m.tokenizer, prompt, {});
    const int64_t n = int64_t(pc.chunks.size()), t = text::PromptChunk::kLength;
    std::vector<int> ids;
    std::vector<float> mult;
    for (const auto& c : pc.chunks) {
        ids.insert(ids.end(), c.tokens.begin(), c.tokens.end());
        mult.insert(mult.end(), c.multipliers.begin(), c.multipliers.end());
    }
    Tensor zl = m.clip.encode_penultimate(ids, n, false).hidden;  // [chunks, 77, Dl]
    std::vector<int> g_ids = ids;
    pad_after_eos(g_ids, m.tokenizer.eos());
    clip::TextEncoderOutput g = m.clip2.encode_penultimate(g_ids, n, true);  // [chunks, 77, Dg], pooled [chunks, P]
    apply_emphasis(zl, mult);
    apply_emphasis(g.hidden, mult);
    const int64_t dl = zl.dim(2), dg = g.hidden.dim(2), rows = n * t;
    EncodedPrompt out;
    out.context = Tensor::empty({1, rows, dl + dg});
    for (int64_t r = 0; r < rows; ++r) {
        float* o = out.context.data() + r * (dl + dg);
        std::memcpy(o, zl.data() + r * dl, size_t(dl) * sizeof(float));
        std::memcpy(o + dl, g.hidden.data() + r * dg, size_t(dg) * sizeof(float));
    }
    out.pooled = g.pooled.slice0(0, 1).clone();  // the first chunk's, as A1111
    out.token_count = pc.token_count;
    return out;
}

}  // namespace

Tensor size_embedding(const std::vector<float>& values, int64_t dim) {
    const int64_t half = dim / 2;
    Tensor e(Shape{1, int64_t(values.size()) * dim});
    const float neg_log = -float(std::log(10000.0));
    for (size_t i = 0; i < values.size(); ++i)
        for (int64_t j = 0; j < half; ++j) {
            const float f = std::exp(neg_log * float(j) / float(half));
            const float a = values[i] * f;
            e.data()[int64_t(i) * dim + j] = std::cos(a);  // sgm timestep_embedding: cos first
            e.data()[int64_t(i) * dim + half + j] = std::sin(a);
        }
    return e;
}

Tensor sdxl_vector(const SDModel& m, const Tensor& pooled, const SizeCond& size) {
    const int64_t adm = m.unet.config().adm_in_channels, p = pooled.numel(), dim = (adm - p) / 6;
    const float h = float(size.height), w = float(size.width);
    Tensor sizes = size_embedding({h, w, float(size.crop_top), float(size.crop_left), h, w}, dim);
    Tensor v(Shape{1, adm});
    std::memcpy(v.data(), pooled.data(), size_t(p) * sizeof(float));
    std::memcpy(v.data() + p, sizes.data(), size_t(std::min(sizes.numel(), adm - p)) * sizeof(float));
    return v;
}

EncodedPrompt encode_prompt(const SDModel& m, std::string_view prompt, int clip_skip) {
    if (m.sdxl()) return encode_sdxl(m, prompt);
    text::ChunkOptions options;
    if (m.embeddings) options.embeddings = &m.embeddings->names();
    text::PromptChunks pc = text::tokenize_weighted(m.tokenizer, prompt, options);
    const int64_t n = int64_t(pc.chunks.size()), t = text::PromptChunk::kLength;
    std::vector<int> ids;
    std::vector<float> mult;
    std::vector<clip::TokenOverride> vectors;  // textual-inversion embeddings, over their id-0 slots
    const bool open_clip = m.text_encoder == TextEncoderKind::open_clip;
    for (const auto& c : pc.chunks) {
        for (const auto& f : c.fixes) {
            const Tensor& v = m.embeddings->loaded()[size_t(f.index)].vectors;  // [vectors, D]
            vectors.push_back({int64_t(ids.size()) / t, f.position, v.data(), v.dim(0)});
        }
        const size_t at = ids.size();
        ids.insert(ids.end(), c.tokens.begin(), c.tokens.end());
        mult.insert(mult.end(), c.multipliers.begin(), c.multipliers.end());
        // A1111 sd_hijack_open_clip: open_clip pads with 0, not EOS, so every position after the chunk's
        // first EOS is fed as 0 (process_tokens with id_pad != id_end); the outputs differ from EOS padding.
        if (!open_clip) continue;
        auto first_eos = std::find(ids.begin() + ptrdiff_t(at), ids.end(), m.tokenizer.eos());
        if (first_eos != ids.end()) std::fill(first_eos + 1, ids.end(), 0);
    }
    // ldm FrozenOpenCLIPEmbedder(layer="penultimate") is ln_final of the next-to-last block's output,
    // whatever the user's clip skip: A1111 ignores CLIP_stop_at_last_layers for open_clip.
    if (open_clip) clip_skip = m.text_cut_at_penultimate ? 1 : 2;  // a diffusers tower ends at that layer
    Tensor z = m.clip.encode(ids, n, clip_skip, vectors).hidden;  // [chunks, 77, D]; chunks are independent rows
    apply_emphasis(z, mult);
    EncodedPrompt out;
    out.context = z.reshape({1, n * t, z.dim(2)});  // chunks concatenated along the token axis
    out.token_count = pc.token_count;
    return out;
}

}  // namespace nb::pipeline
