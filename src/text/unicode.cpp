#include "text/unicode.h"

#include <algorithm>

namespace nb::text {

std::vector<CodePoint> decode_utf8(std::string_view s) {
    std::vector<CodePoint> out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        const auto b0 = static_cast<unsigned char>(s[i]);
        int len = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xE ? 3 : (b0 >> 3) == 0x1E ? 4 : 0;
        char32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
        bool ok = len > 0 && i + static_cast<std::size_t>(len) <= s.size();
        for (int k = 1; ok && k < len; ++k) {
            const auto bk = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
            ok = (bk & 0xC0) == 0x80;
            cp = (cp << 6) | (bk & 0x3F);
        }
        if (!ok) {  // invalid sequence: keep the byte as its own unit
            len = 1;
            cp = b0;
        }
        out.push_back({cp, i, i + static_cast<std::size_t>(len)});
        i += static_cast<std::size_t>(len);
    }
    return out;
}

void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

namespace {

bool in_ranges(const detail::CodeRange* table, std::size_t n, char32_t cp) {
    // tables are sorted and disjoint: find the last range starting at or before cp
    const auto* end = table + n;
    const auto* it = std::upper_bound(table, end, cp,
                                      [](char32_t v, const detail::CodeRange& r) { return v < r.first; });
    return it != table && cp <= (it - 1)->last;
}

char32_t lower_cp(char32_t cp) {
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    // runs may interleave (stride-2 blocks), so scan them all; prompts are short and BPE is cached
    for (std::size_t i = 0; i < detail::kLowerRuns_size; ++i) {
        const auto& r = detail::kLowerRuns[i];
        if (cp >= r.first && cp <= r.last && (cp - r.first) % static_cast<char32_t>(r.stride) == 0)
            return static_cast<char32_t>(static_cast<int>(cp) + r.delta);
    }
    return cp;
}

}  // namespace

bool is_letter(char32_t cp) {
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return in_ranges(detail::kLetterRanges, detail::kLetterRanges_size, cp);
}

bool is_number(char32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return in_ranges(detail::kNumberRanges, detail::kNumberRanges_size, cp);
}

bool is_regex_space(char32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

bool is_python_space(char32_t cp) { return is_regex_space(cp) || (cp >= 0x1C && cp <= 0x1F); }

bool is_word_char(char32_t cp) { return cp == '_' || is_letter(cp) || is_number(cp); }

std::string to_lower_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    const auto cps = decode_utf8(s);
    for (std::size_t i = 0; i < cps.size(); ++i) {
        const auto& c = cps[i];
        if (c.end - c.begin == 1 && c.cp >= 0x80) {  // invalid byte kept as is
            out += s[c.begin];
        } else if (c.cp == 0x130) {  // LATIN CAPITAL LETTER I WITH DOT ABOVE: full mapping, 2 code points
            out += 'i';
            append_utf8(out, 0x307);
        } else if (c.cp == 0x3A3) {  // Python's Final_Sigma rule, approximated as "letter before, none after"
            const bool after_letter = i > 0 && is_letter(cps[i - 1].cp);
            const bool before_letter = i + 1 < cps.size() && is_letter(cps[i + 1].cp);
            append_utf8(out, after_letter && !before_letter ? 0x3C2 : 0x3C3);
        } else {
            append_utf8(out, lower_cp(c.cp));
        }
    }
    return out;
}

}  // namespace nb::text
