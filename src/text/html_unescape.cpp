#include "text/html_unescape.h"

#include <algorithm>
#include <cstdint>
#include <optional>

#include "text/unicode.h"

namespace nb::text {

namespace {

struct Entity {
    std::string_view name;
    char32_t cp;
    bool legacy;  // also valid without the trailing ';'
};

// Sorted by name (byte order). Values from Python's html.entities.html5.
constexpr Entity kEntities[] = {
    {"AElig", 0xC6, true}, {"AMP", 0x26, true}, {"Aacute", 0xC1, true}, {"Acirc", 0xC2, true},
    {"Agrave", 0xC0, true}, {"Aring", 0xC5, true}, {"Atilde", 0xC3, true}, {"Auml", 0xC4, true},
    {"COPY", 0xA9, true}, {"Ccedil", 0xC7, true}, {"Dagger", 0x2021, false}, {"Delta", 0x394, false},
    {"ETH", 0xD0, true}, {"Eacute", 0xC9, true}, {"Ecirc", 0xCA, true}, {"Egrave", 0xC8, true},
    {"Euml", 0xCB, true}, {"GT", 0x3E, true}, {"Iacute", 0xCD, true}, {"Icirc", 0xCE, true},
    {"Igrave", 0xCC, true}, {"Iuml", 0xCF, true}, {"LT", 0x3C, true}, {"Ntilde", 0xD1, true},
    {"OElig", 0x152, false}, {"Oacute", 0xD3, true}, {"Ocirc", 0xD4, true}, {"Ograve", 0xD2, true},
    {"Omega", 0x3A9, false}, {"Oslash", 0xD8, true}, {"Otilde", 0xD5, true}, {"Ouml", 0xD6, true},
    {"Prime", 0x2033, false}, {"QUOT", 0x22, true}, {"REG", 0xAE, true}, {"Scaron", 0x160, false},
    {"THORN", 0xDE, true}, {"Uacute", 0xDA, true}, {"Ucirc", 0xDB, true}, {"Ugrave", 0xD9, true},
    {"Uuml", 0xDC, true}, {"Yacute", 0xDD, true}, {"Yuml", 0x178, false}, {"aacute", 0xE1, true},
    {"acirc", 0xE2, true}, {"acute", 0xB4, true}, {"aelig", 0xE6, true}, {"agrave", 0xE0, true},
    {"alpha", 0x3B1, false}, {"amp", 0x26, true}, {"apos", 0x27, false}, {"aring", 0xE5, true},
    {"asymp", 0x2248, false}, {"atilde", 0xE3, true}, {"auml", 0xE4, true}, {"bdquo", 0x201E, false},
    {"beta", 0x3B2, false}, {"brvbar", 0xA6, true}, {"bull", 0x2022, false}, {"ccedil", 0xE7, true},
    {"cedil", 0xB8, true}, {"cent", 0xA2, true}, {"check", 0x2713, false}, {"circ", 0x2C6, false},
    {"clubs", 0x2663, false}, {"copy", 0xA9, true}, {"cross", 0x2717, false}, {"curren", 0xA4, true},
    {"dagger", 0x2020, false}, {"darr", 0x2193, false}, {"deg", 0xB0, true}, {"delta", 0x3B4, false},
    {"diams", 0x2666, false}, {"divide", 0xF7, true}, {"eacute", 0xE9, true}, {"ecirc", 0xEA, true},
    {"egrave", 0xE8, true}, {"emsp", 0x2003, false}, {"ensp", 0x2002, false}, {"epsilon", 0x3B5, false},
    {"equiv", 0x2261, false}, {"eth", 0xF0, true}, {"euml", 0xEB, true}, {"euro", 0x20AC, false},
    {"fnof", 0x192, false}, {"frac12", 0xBD, true}, {"frac14", 0xBC, true}, {"frac34", 0xBE, true},
    {"gamma", 0x3B3, false}, {"ge", 0x2265, false}, {"gt", 0x3E, true}, {"harr", 0x2194, false},
    {"hearts", 0x2665, false}, {"hellip", 0x2026, false}, {"iacute", 0xED, true}, {"icirc", 0xEE, true},
    {"iexcl", 0xA1, true}, {"igrave", 0xEC, true}, {"infin", 0x221E, false}, {"iquest", 0xBF, true},
    {"iuml", 0xEF, true}, {"lambda", 0x3BB, false}, {"laquo", 0xAB, true}, {"larr", 0x2190, false},
    {"ldquo", 0x201C, false}, {"le", 0x2264, false}, {"loz", 0x25CA, false}, {"lrm", 0x200E, false},
    {"lsaquo", 0x2039, false}, {"lsquo", 0x2018, false}, {"lt", 0x3C, true}, {"macr", 0xAF, true},
    {"mdash", 0x2014, false}, {"micro", 0xB5, true}, {"middot", 0xB7, true}, {"minus", 0x2212, false},
    {"mu", 0x3BC, false}, {"nbsp", 0xA0, true}, {"ndash", 0x2013, false}, {"ne", 0x2260, false},
    {"not", 0xAC, true}, {"ntilde", 0xF1, true}, {"oacute", 0xF3, true}, {"ocirc", 0xF4, true},
    {"oelig", 0x153, false}, {"ograve", 0xF2, true}, {"omega", 0x3C9, false}, {"ordf", 0xAA, true},
    {"ordm", 0xBA, true}, {"oslash", 0xF8, true}, {"otilde", 0xF5, true}, {"ouml", 0xF6, true},
    {"para", 0xB6, true}, {"permil", 0x2030, false}, {"pi", 0x3C0, false}, {"plusmn", 0xB1, true},
    {"pound", 0xA3, true}, {"prime", 0x2032, false}, {"prod", 0x220F, false}, {"quot", 0x22, true},
    {"radic", 0x221A, false}, {"raquo", 0xBB, true}, {"rarr", 0x2192, false}, {"rdquo", 0x201D, false},
    {"reg", 0xAE, true}, {"rlm", 0x200F, false}, {"rsaquo", 0x203A, false}, {"rsquo", 0x2019, false},
    {"sbquo", 0x201A, false}, {"scaron", 0x161, false}, {"sect", 0xA7, true}, {"shy", 0xAD, true},
    {"sigma", 0x3C3, false}, {"spades", 0x2660, false}, {"star", 0x2606, false}, {"starf", 0x2605, false},
    {"sum", 0x2211, false}, {"sup1", 0xB9, true}, {"sup2", 0xB2, true}, {"sup3", 0xB3, true},
    {"szlig", 0xDF, true}, {"thinsp", 0x2009, false}, {"thorn", 0xFE, true}, {"tilde", 0x2DC, false},
    {"times", 0xD7, true}, {"trade", 0x2122, false}, {"uacute", 0xFA, true}, {"uarr", 0x2191, false},
    {"ucirc", 0xFB, true}, {"ugrave", 0xF9, true}, {"uml", 0xA8, true}, {"uuml", 0xFC, true},
    {"yacute", 0xFD, true}, {"yen", 0xA5, true}, {"yuml", 0xFF, true}, {"zwj", 0x200D, false},
    {"zwnj", 0x200C, false},
};

std::optional<char32_t> find_entity(std::string_view name, bool need_legacy) {
    const auto* end = std::end(kEntities);
    const auto* it = std::lower_bound(std::begin(kEntities), end, name,
                                      [](const Entity& e, std::string_view n) { return e.name < n; });
    if (it == end || it->name != name || (need_legacy && !it->legacy)) return std::nullopt;
    return it->cp;
}

// Python html._invalid_charrefs: C1 controls are read as windows-1252, as browsers do.
constexpr char32_t kCp1252[32] = {
    0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x8D,   0x017D, 0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};

// Returns the replacement of a numeric reference (empty for Python's _invalid_codepoints).
std::string numeric_ref(std::uint64_t num) {
    std::string out;
    if (num == 0) {
        append_utf8(out, 0xFFFD);
    } else if (num == 0x0D) {
        out = "\r";
    } else if (num >= 0x80 && num <= 0x9F) {
        append_utf8(out, kCp1252[num - 0x80]);
    } else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
        append_utf8(out, 0xFFFD);
    } else if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) ||
               (num >= 0x7F && num <= 0x9F) || (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE) {
        // dropped
    } else {
        append_utf8(out, static_cast<char32_t>(num));
    }
    return out;
}

// Tries a numeric reference at s[i] == '&', s[i+1] == '#'. Returns bytes consumed (0: not a reference).
std::size_t unescape_numeric(std::string_view s, std::size_t i, std::string& out) {
    std::size_t j = i + 2;
    const bool hex = j < s.size() && (s[j] == 'x' || s[j] == 'X');
    if (hex) ++j;
    const std::size_t digits_begin = j;
    std::uint64_t num = 0;
    for (; j < s.size(); ++j) {
        const char c = s[j];
        int d = (c >= '0' && c <= '9') ? c - '0' : -1;
        if (hex && d < 0 && ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')) d = (c | 0x20) - 'a' + 10;
        if (d < 0) break;
        num = std::min<std::uint64_t>(num * (hex ? 16 : 10) + static_cast<std::uint64_t>(d), 0x110000);
    }
    if (j == digits_begin) return 0;
    if (j < s.size() && s[j] == ';') ++j;
    out += numeric_ref(num);
    return j - i;
}

bool is_name_byte(char c) {
    return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' && c != ';';
}

// Named reference at s[i] == '&' ([^\t\n\f <&#;]{1,32};? as Python). Returns bytes consumed, 0 if none.
std::size_t unescape_named(std::string_view s, std::size_t i, std::string& out) {
    std::size_t j = i + 1;
    int n_chars = 0;
    while (j < s.size() && is_name_byte(s[j])) {
        const bool starts_char = (static_cast<unsigned char>(s[j]) & 0xC0) != 0x80;
        if (starts_char && n_chars == 32) break;
        n_chars += starts_char ? 1 : 0;
        ++j;
    }
    if (j == i + 1) return 0;
    const std::string_view name = s.substr(i + 1, j - i - 1);
    const bool semicolon = j < s.size() && s[j] == ';';
    if (auto cp = find_entity(name, !semicolon)) {
        append_utf8(out, *cp);
        return j - i + (semicolon ? 1 : 0);
    }
    // longest legacy-name prefix (at least 2 characters), the rest stays as text
    for (std::size_t len = name.size() - (semicolon ? 0 : 1); len >= 2; --len) {
        if (auto cp = find_entity(name.substr(0, len), true)) {
            append_utf8(out, *cp);
            return len + 1;
        }
    }
    return 0;
}

}  // namespace

std::string html_unescape(std::string_view s) {
    if (s.find('&') == std::string_view::npos) return std::string(s);
    std::string out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        if (s[i] != '&') {
            out += s[i++];
            continue;
        }
        const std::size_t used = (i + 1 < s.size() && s[i + 1] == '#') ? unescape_numeric(s, i, out)
                                                                          : unescape_named(s, i, out);
        if (used == 0) out += s[i];
        i += used == 0 ? 1 : used;
    }
    return out;
}

}  // namespace nb::text
