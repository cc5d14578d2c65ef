// parse_prompt_attention, a hand-written scanner for A1111's re_attention / re_break.
#include <cstdlib>

#include "text/prompt.h"
#include "text/unicode.h"

namespace nb::text {

namespace {

bool is_digit_or_dot(char c) { return (c >= '0' && c <= '9') || c == '.'; }
bool is_ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1C && c <= 0x1F); }

// Python float() of A1111's `[+-]?[.\d]+` capture; false for forms like "1.2.3" or ".".
bool parse_float(const std::string& s, double& out) {
    char* end = nullptr;
    out = std::strtod(s.c_str(), &end);
    return !s.empty() && end == s.c_str() + s.size();
}

// `:\s*([+-]?[.\d]+)\s*\)` at text[i] == ':'; returns the match length (0: no match) and the number.
std::size_t match_weight(std::string_view t, std::size_t i, std::string& number) {
    std::size_t j = i + 1;
    while (j < t.size() && is_ascii_space(t[j])) ++j;
    const std::size_t num_begin = j;
    if (j < t.size() && (t[j] == '+' || t[j] == '-')) ++j;
    const std::size_t digits = j;
    while (j < t.size() && is_digit_or_dot(t[j])) ++j;
    if (j == digits) return 0;
    number.assign(t.substr(num_begin, j - num_begin));
    while (j < t.size() && is_ascii_space(t[j])) ++j;
    return j < t.size() && t[j] == ')' ? j + 1 - i : 0;
}

// Python re \s and \b\w for the BREAK splitter (str patterns: Unicode).
bool word_at(const std::vector<CodePoint>& cps, std::size_t k) { return k < cps.size() && is_word_char(cps[k].cp); }

// re.split(r"\s*\bBREAK\b\s*", text): the parts between whole-word BREAKs (with their spaces).
std::vector<std::string> split_break(std::string_view text) {
    const auto cps = decode_utf8(text);
    std::vector<std::string> parts;
    std::size_t part_begin = 0;  // byte offset
    std::size_t k = 0;
    while (k < cps.size()) {
        std::size_t w = k;  // leftmost match: whitespace run, then BREAK on word boundaries
        while (w < cps.size() && is_python_space(cps[w].cp)) ++w;
        const bool boundary_before = w == 0 || !word_at(cps, w - 1);
        const bool is_break = w + 5 <= cps.size() && text.substr(cps[w].begin, 5) == "BREAK" &&
                              cps[w + 4].end == cps[w].begin + 5 && boundary_before && !word_at(cps, w + 5);
        if (!is_break) {
            k = w > k ? w : k + 1;
            continue;
        }
        std::size_t e = w + 5;
        while (e < cps.size() && is_python_space(cps[e].cp)) ++e;
        parts.emplace_back(text.substr(part_begin, cps[k].begin - part_begin));
        part_begin = e < cps.size() ? cps[e].begin : text.size();
        k = e;
    }
    parts.emplace_back(text.substr(part_begin));
    return parts;
}

struct AttentionState {
    std::vector<WeightedText> res;
    std::vector<std::size_t> round, square;  // start indexes into res of open brackets

    void multiply_from(std::size_t start, double m) {
        for (std::size_t p = start; p < res.size(); ++p) res[p].weight *= m;
    }
    void add_text(std::string_view text) {
        const auto parts = split_break(text);
        for (std::size_t i = 0; i < parts.size(); ++i) {
            if (i > 0) res.push_back({"BREAK", -1.0});
            res.push_back({parts[i], 1.0});
        }
    }
};

// Length of the `[^\\()\[\]:]+` run at t[i].
std::size_t text_run(std::string_view t, std::size_t i) {
    std::size_t j = i;
    while (j < t.size() && t[j] != '\\' && t[j] != '(' && t[j] != ')' && t[j] != '[' && t[j] != ']' && t[j] != ':')
        ++j;
    return j - i;
}

}  // namespace

std::vector<WeightedText> parse_prompt_attention(std::string_view t) {
    constexpr double kRound = 1.1, kSquare = 1 / 1.1;
    AttentionState st;
    std::size_t i = 0;
    while (i < t.size()) {
        const char c = t[i];
        std::string number;
        double w = 0;
        if (c == '\\') {  // "\(" "\)" "\[" "\]" "\\" or a lone backslash (dropped)
            const bool pair = i + 1 < t.size() && std::string_view("()[]\\").find(t[i + 1]) != std::string_view::npos;
            st.res.push_back({pair ? std::string(1, t[i + 1]) : std::string(), 1.0});
            i += pair ? 2 : 1;
        } else if (c == '(' || c == '[') {
            (c == '(' ? st.round : st.square).push_back(st.res.size());
            ++i;
        } else if (std::size_t n = c == ':' ? match_weight(t, i, number) : 0; n > 0 && !st.round.empty() &&
                                                                             parse_float(number, w)) {
            st.multiply_from(st.round.back(), w);
            st.round.pop_back();
            i += n;
        } else if (c == ')' && !st.round.empty()) {
            st.multiply_from(st.round.back(), kRound);
            st.round.pop_back();
            ++i;
        } else if (c == ']' && !st.square.empty()) {
            st.multiply_from(st.square.back(), kSquare);
            st.square.pop_back();
            ++i;
        } else {  // text: a run, a lone ':' or a ':w)' with nothing open, or a stray ')' / ']'
            const std::size_t len = c == ':' ? (n > 0 ? n : 1) : (c == ')' || c == ']') ? 1 : text_run(t, i);
            st.add_text(t.substr(i, len));
            i += len;
        }
    }
    for (std::size_t pos : st.round) st.multiply_from(pos, kRound);
    for (std::size_t pos : st.square) st.multiply_from(pos, kSquare);
    if (st.res.empty()) st.res.push_back({"", 1.0});
    for (std::size_t k = 0; k + 1 < st.res.size();) {  // merge runs of identical weights
        if (st.res[k].weight == st.res[k + 1].weight) {
            st.res[k].text += st.res[k + 1].text;
            st.res.erase(st.res.begin() + static_cast<std::ptrdiff_t>(k) + 1);
        } else {
            ++k;
        }
    }
    return st.res;
}

}  // namespace nb::text
