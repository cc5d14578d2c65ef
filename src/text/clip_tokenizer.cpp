// Encoding half of ClipTokenizer (loading and vocabulary lookup are in clip_vocab.cpp).
#include "text/clip_tokenizer.h"

#include <limits>
#include <mutex>

#include "text/html_unescape.h"
#include "text/unicode.h"

namespace nb::text {

namespace {

// basic_clean (minus ftfy) + whitespace_clean + lower, as simple_tokenizer.py encode().
std::string normalize(std::string_view text) {
    const std::string unescaped = html_unescape(html_unescape(text));
    std::string collapsed;
    collapsed.reserve(unescaped.size());
    bool pending_space = false;
    for (const auto& c : decode_utf8(unescaped)) {
        // str.strip() also removes U+001C..U+001F, which \s+ would otherwise keep; only matters at the ends
        if (is_regex_space(c.cp) || (collapsed.empty() && is_python_space(c.cp))) {
            pending_space = !collapsed.empty();
            continue;
        }
        if (pending_space) collapsed += ' ';
        pending_space = false;
        collapsed.append(unescaped, c.begin, c.end - c.begin);
    }
    // trailing U+001C..U+001F are removed by the strip() that runs before whitespace_clean
    while (!collapsed.empty() && (collapsed.back() == ' ' || (collapsed.back() >= 0x1C && collapsed.back() <= 0x1F)))
        collapsed.pop_back();
    return to_lower_utf8(collapsed);
}

bool starts_with_at(std::string_view s, std::size_t pos, std::string_view p) {
    return s.substr(pos, p.size()) == p;
}

// Length in bytes of a contraction ('s 't 're 've 'm 'll 'd) starting at s[pos] == '\'', else 0.
std::size_t contraction_len(std::string_view s, std::size_t pos) {
    for (std::string_view c : {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"})
        if (starts_with_at(s, pos, c)) return c.size();
    return 0;
}

// The CLIP regex, applied with findall semantics: unmatched characters (whitespace) are skipped.
std::vector<std::string> pre_tokenize(const std::string& s) {
    const auto cps = decode_utf8(s);
    std::vector<std::string> pieces;
    std::size_t i = 0;
    while (i < cps.size()) {
        const std::size_t pos = cps[i].begin;
        std::size_t special = 0;
        for (std::string_view t : {"<|startoftext|>", "<|endoftext|>"})
            if (starts_with_at(s, pos, t)) special = t.size();
        if (special == 0 && cps[i].cp == '\'') special = contraction_len(s, pos);
        if (special > 0) {  // ASCII-only alternatives: bytes == code points
            pieces.emplace_back(s.substr(pos, special));
            i += special;
            continue;
        }
        const char32_t cp = cps[i].cp;
        std::size_t j = i + 1;
        if (is_letter(cp)) {
            while (j < cps.size() && is_letter(cps[j].cp)) ++j;
        } else if (is_number(cp)) {
            // one code point per piece
        } else if (is_regex_space(cp)) {
            i = j;
            continue;
        } else {
            while (j < cps.size() && !is_regex_space(cps[j].cp) && !is_letter(cps[j].cp) &&
                   !is_number(cps[j].cp))
                ++j;
        }
        const std::size_t end = j < cps.size() ? cps[j].begin : s.size();
        pieces.emplace_back(s.substr(pos, end - pos));
        i = j;
    }
    return pieces;
}

}  // namespace

std::vector<int> ClipTokenizer::encode(std::string_view text) const {
    std::vector<int> ids;
    for (const std::string& piece : pre_tokenize(normalize(text))) {
        const std::vector<int> piece_ids = bpe(piece);
        ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
    }
    return ids;
}

std::vector<int> ClipTokenizer::encode_with_special(std::string_view text) const {
    std::vector<int> ids{bos_};
    const std::vector<int> body = encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    ids.push_back(eos_);
    return ids;
}

std::optional<int> ClipTokenizer::token_id(const std::string& token) const {
    const auto it = encoder_.find(token);
    if (it == encoder_.end()) return std::nullopt;
    return it->second;
}

std::vector<int> ClipTokenizer::bpe(const std::string& piece) const {
    {
        std::lock_guard lock(cache_->mutex);
        const auto it = cache_->map.find(piece);
        if (it != cache_->map.end()) return it->second;
    }
    std::vector<int> ids = bpe_uncached(piece);
    std::lock_guard lock(cache_->mutex);
    // A server tokenizes strangers' prompts for as long as it runs: the cache is bounded (CLIP's own is
    // unbounded). Starting over when full keeps it simple; prompts repeat their words within a request.
    if (cache_->map.size() >= kCacheEntries) cache_->map.clear();
    cache_->map.emplace(piece, ids);
    return ids;
}

// simple_tokenizer.py bpe(): repeatedly merge the adjacent pair with the lowest rank (all its
// non-overlapping occurrences, left to right) until no ranked pair is left.
std::vector<int> ClipTokenizer::bpe_uncached(const std::string& piece) const {
    if (piece == "<|startoftext|>") return {bos_};
    if (piece == "<|endoftext|>") return {eos_};
    std::vector<std::string> word;
    for (unsigned char b : piece) word.push_back(byte_encoder_[b]);
    if (word.empty()) return {};
    word.back() += "</w>";
    while (word.size() > 1) {
        int best_rank = std::numeric_limits<int>::max();
        std::size_t best = 0;
        for (std::size_t k = 0; k + 1 < word.size(); ++k) {
            const auto it = bpe_ranks_.find(word[k] + ' ' + word[k + 1]);
            if (it != bpe_ranks_.end() && it->second < best_rank) {
                best_rank = it->second;
                best = k;
            }
        }
        if (best_rank == std::numeric_limits<int>::max()) break;
        const std::string first = word[best], second = word[best + 1];
        std::vector<std::string> merged;
        merged.reserve(word.size());
        for (std::size_t k = 0; k < word.size(); ++k) {
            if (k + 1 < word.size() && word[k] == first && word[k + 1] == second) {
                merged.push_back(first + second);
                ++k;
            } else {
                merged.push_back(word[k]);
            }
        }
        word = std::move(merged);
    }
    std::vector<int> ids;
    ids.reserve(word.size());
    for (const auto& sym : word) {
        // every symbol is a byte stand-in or a merge result, all of which are in the vocabulary
        // (checked in from_tables), so the lookup cannot miss
        ids.push_back(encoder_.at(sym));
    }
    return ids;
}

}  // namespace nb::text
