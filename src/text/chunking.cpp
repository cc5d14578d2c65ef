#include "text/chunking.h"

#include <algorithm>

#include "text/prompt.h"

namespace nb::text {

namespace {

constexpr int kChunkBody = PromptChunk::kLength - 2;  // 75 prompt tokens per chunk

// The chunk being filled, before BOS/EOS/padding.
struct OpenChunk {
    std::vector<int> tokens;
    std::vector<double> weights;
    std::vector<EmbeddingFix> fixes;
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
        c.fixes = std::move(cur.fixes);
        out.chunks.push_back(std::move(c));
        cur = {};
        last_comma = -1;
    }

    // What happens before each token (or embedding name, `token` = its first id) is placed: comma bookkeeping,
    // the comma backtrack, closing a full chunk.
    void before(int token, int comma_id, int backtrack) {
        const int n = static_cast<int>(cur.tokens.size());
        if (token == comma_id) {
            last_comma = n;
        } else if (backtrack != 0 && n == kChunkBody && last_comma != -1 && n - last_comma <= backtrack) {
            // move everything after the last comma into the next chunk (A1111 leaves the fixes behind)
            const auto cut = static_cast<std::ptrdiff_t>(last_comma + 1);
            OpenChunk moved{{cur.tokens.begin() + cut, cur.tokens.end()}, {cur.weights.begin() + cut, cur.weights.end()}, {}};
            cur.tokens.resize(static_cast<std::size_t>(cut));
            cur.weights.resize(static_cast<std::size_t>(cut));
            close(false);
            cur = std::move(moved);
        }
        if (static_cast<int>(cur.tokens.size()) == kChunkBody) close(false);
    }

    void add(int token, double weight, int comma_id, int backtrack) {
        before(token, comma_id, backtrack);
        cur.tokens.push_back(token);
        cur.weights.push_back(weight);
    }

    // A1111 tokenize_line: an embedding that does not fit in the current chunk starts the next one.
    void add_embedding(const EmbeddingName& e, double weight, int comma_id, int backtrack) {
        before(e.ids.front(), comma_id, backtrack);
        if (static_cast<int>(cur.tokens.size()) + e.n_vectors > kChunkBody) close(false);
        cur.fixes.push_back({static_cast<int>(cur.tokens.size()) + 1, e.index});
        cur.tokens.insert(cur.tokens.end(), static_cast<std::size_t>(e.n_vectors), 0);
        cur.weights.insert(cur.weights.end(), static_cast<std::size_t>(e.n_vectors), weight);
    }
};

}  // namespace

void EmbeddingNames::add(EmbeddingName name) {
    if (name.ids.empty() || name.n_vectors < 1 || name.n_vectors > kChunkBody) return;
    auto& list = by_first_id_[name.ids.front()];
    list.push_back(std::move(name));
    std::stable_sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.ids.size() > b.ids.size(); });
}

const EmbeddingName* EmbeddingNames::match(const std::vector<int>& tokens, size_t pos) const {
    auto it = by_first_id_.find(tokens[pos]);
    if (it == by_first_id_.end()) return nullptr;
    for (const auto& e : it->second)
        if (e.ids.size() <= tokens.size() - pos && std::equal(e.ids.begin(), e.ids.end(), tokens.begin() + std::ptrdiff_t(pos)))
            return &e;
    return nullptr;
}

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
        const std::vector<int> tokens = tokenizer.encode(piece.text);
        for (std::size_t pos = 0; pos < tokens.size();) {
            const EmbeddingName* e = options.embeddings ? options.embeddings->match(tokens, pos) : nullptr;
            if (e) {
                p.add_embedding(*e, piece.weight, tokenizer.comma_id(), options.comma_padding_backtrack);
                pos += e->ids.size();
            } else {
                p.add(tokens[pos], piece.weight, tokenizer.comma_id(), options.comma_padding_backtrack);
                ++pos;
            }
        }
    }
    if (!p.cur.tokens.empty() || p.out.chunks.empty()) p.close(true);
    return std::move(p.out);
}

}  // namespace nb::text
