#include "text/chunking.h"

#include "text/prompt.h"

namespace nb::text {

namespace {

constexpr int kChunkBody = PromptChunk::kLength - 2;  // 75 prompt tokens per chunk

// The chunk being filled, before BOS/EOS/padding.
struct OpenChunk {
    std::vector<int> tokens;
    std::vector<double> weights;
};

struct Packer {
    int bos = ClipTokenizer::kBos, eos = ClipTokenizer::kEos;  // the loaded vocabulary's specials
    PromptChunks out;
    OpenChunk cur;
    int last_comma = -1;  // index in cur of the last comma, -1 if none

    // next_chunk(is_last): pads, frames with BOS/EOS, appends; closed chunks count 75 tokens
    void close(bool is_last) {
        out.token_count += is_last ? static_cast<int>(cur.tokens.size()) : kChunkBody;
        PromptChunk c;
        c.tokens.fill(eos);
        c.multipliers.fill(1.0f);
        c.tokens[0] = bos;
        for (std::size_t i = 0; i < cur.tokens.size(); ++i) {
            c.tokens[i + 1] = cur.tokens[i];
            c.multipliers[i + 1] = static_cast<float>(cur.weights[i]);
        }
        out.chunks.push_back(c);
        cur = {};
        last_comma = -1;
    }

    void add(int token, double weight, int comma_id, int backtrack) {
        const int n = static_cast<int>(cur.tokens.size());
        if (token == comma_id) {
            last_comma = n;
        } else if (backtrack != 0 && n == kChunkBody && last_comma != -1 && n - last_comma <= backtrack) {
            // move everything after the last comma into the next chunk
            const auto cut = static_cast<std::ptrdiff_t>(last_comma + 1);
            OpenChunk moved{{cur.tokens.begin() + cut, cur.tokens.end()}, {cur.weights.begin() + cut, cur.weights.end()}};
            cur.tokens.resize(static_cast<std::size_t>(cut));
            cur.weights.resize(static_cast<std::size_t>(cut));
            close(false);
            cur = std::move(moved);
        }
        if (static_cast<int>(cur.tokens.size()) == kChunkBody) close(false);
        cur.tokens.push_back(token);
        cur.weights.push_back(weight);
    }
};

}  // namespace

PromptChunks tokenize_weighted(const ClipTokenizer& tokenizer, std::string_view prompt, const ChunkOptions& options) {
    const std::vector<WeightedText> parsed =
        options.emphasis ? parse_prompt_attention(prompt) : std::vector<WeightedText>{{std::string(prompt), 1.0}};
    Packer p;
    p.bos = tokenizer.bos();
    p.eos = tokenizer.eos();
    for (const auto& piece : parsed) {
        if (piece.text == "BREAK" && piece.weight == -1) {
            p.close(false);
            continue;
        }
        for (int token : tokenizer.encode(piece.text))
            p.add(token, piece.weight, tokenizer.comma_id(), options.comma_padding_backtrack);
    }
    if (!p.cur.tokens.empty() || p.out.chunks.empty()) p.close(true);
    return std::move(p.out);
}

}  // namespace nb::text
