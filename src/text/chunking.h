// A1111 conditioning token layout (modules/sd_hijack_clip.py @5ad03e65, tokenize_line): a prompt becomes
// chunks of 77 CLIP tokens, each with per-token emphasis multipliers.
#pragma once

#include <array>
#include <string_view>
#include <vector>

#include "text/clip_tokenizer.h"

namespace nb::text {

struct PromptChunk {
    static constexpr int kLength = 77;          // BOS + 75 + EOS
    std::array<int, kLength> tokens{};          // [BOS, t0..t74 padded with EOS, EOS] (49406/49407 in CLIP's vocabulary)
    std::array<float, kLength> multipliers{};   // float32 of the float64 weights; 1.0 at BOS/EOS/padding
};

struct PromptChunks {
    std::vector<PromptChunk> chunks;  // at least one
    int token_count = 0;              // A1111's count: 75 per closed chunk + the tokens of the last one
};

struct ChunkOptions {
    int comma_padding_backtrack = 20;  // A1111 default; 0 disables
    bool emphasis = true;              // false = opts.emphasis "None": the prompt is one weight-1.0 piece
};

// parse_prompt_attention -> each piece tokenized without BOS/EOS -> packed into 75-token chunks.
// BREAK ({"BREAK", -1}) closes the current chunk; when a chunk is full and its last comma is within
// `comma_padding_backtrack` tokens of the end, the tokens after that comma move to the next chunk.
// Empty prompt -> one chunk of BOS + 76 x EOS, token_count 0. (No textual-inversion embeddings.)
PromptChunks tokenize_weighted(const ClipTokenizer& tokenizer, std::string_view prompt,
                               const ChunkOptions& options = {});

}  // namespace nb::text
