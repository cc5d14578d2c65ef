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

EncodedPrompt encode_prompt(const SDModel& m, std::string_view prompt, int clip_skip) {
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
    if (open_clip) clip_skip = 2;
    Tensor z = m.clip.encode(ids, n, clip_skip, vectors).hidden;  // [chunks, 77, D]; chunks are independent rows
    apply_emphasis(z, mult);
    EncodedPrompt out;
    out.context = z.reshape({1, n * t, z.dim(2)});  // chunks concatenated along the token axis
    out.token_count = pc.token_count;
    return out;
}

}  // namespace nb::pipeline
