// A1111 conditioning token layout (modules/sd_hijack_clip.py @5ad03e65, tokenize_line): a prompt becomes
// chunks of 77 CLIP tokens, each with per-token emphasis multipliers.
#pragma once

#include <array>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/clip_tokenizer.h"

namespace nb::text {

// A textual-inversion embedding as the chunker sees it (A1111 EmbeddingDatabase.ids_lookup): the token ids of
// its name and how many token slots its vectors take.
struct EmbeddingName {
    std::vector<int> ids;  // the name tokenized without BOS/EOS
    int n_vectors = 1;
    int index = 0;         // the caller's number for it (which vectors go in)
};

class EmbeddingNames {
public:
    // Longer names are tried first, equal lengths in the order added. Names of no ids or of more vectors than a
    // chunk holds (75) are ignored.
    void add(EmbeddingName name);
    // The embedding whose name's ids start at tokens[pos] (A1111 find_embedding_at_position), or nullptr.
    const EmbeddingName* match(const std::vector<int>& tokens, size_t pos) const;
    bool empty() const { return by_first_id_.empty(); }

private:
    std::unordered_map<int, std::vector<EmbeddingName>> by_first_id_;
};

// An embedding's vectors go at positions [position, position + n_vectors) of its chunk (A1111 PromptChunkFix;
// position counts BOS, so it is A1111's offset + 1).
struct EmbeddingFix {
    int position = 0;
    int index = 0;  // EmbeddingName::index
};

struct PromptChunk {
    static constexpr int kLength = 77;          // BOS + 75 + EOS
    std::array<int, kLength> tokens{};          // [BOS, t0..t74 padded with EOS, EOS] (49406/49407 in CLIP's vocabulary)
    std::array<float, kLength> multipliers{};   // float32 of the float64 weights; 1.0 at BOS/EOS/padding
    std::vector<EmbeddingFix> fixes;            // textual-inversion vectors; their token slots hold id 0
};

struct PromptChunks {
    std::vector<PromptChunk> chunks;  // at least one
    int token_count = 0;              // A1111's count: 75 per closed chunk + the tokens of the last one
};

struct ChunkOptions {
    int comma_padding_backtrack = 20;  // A1111 default; 0 disables
    bool emphasis = true;              // false = opts.emphasis "None": the prompt is one weight-1.0 piece
    const EmbeddingNames* embeddings = nullptr;  // textual-inversion names to look for; null = none
};

// parse_prompt_attention -> each piece tokenized without BOS/EOS -> packed into 75-token chunks.
// BREAK ({"BREAK", -1}) closes the current chunk; when a chunk is full and its last comma is within
// `comma_padding_backtrack` tokens of the end, the tokens after that comma move to the next chunk.
// Empty prompt -> one chunk of BOS + 76 x EOS, token_count 0.
// An embedding's name in a piece takes n_vectors slots (id 0) with the piece's weight; when they do not fit in
// the current chunk, it starts the next one. As A1111, a comma backtrack moves the slots but not the fix: the
// vectors stay at their old place in the closed chunk and the moved slots stay token 0.
PromptChunks tokenize_weighted(const ClipTokenizer& tokenizer, std::string_view prompt,
                               const ChunkOptions& options = {});

}  // namespace nb::text
