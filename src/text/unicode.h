// Unicode helpers for the CLIP pre-tokenizer: UTF-8 decoding, \p{L} / \p{N} / \s classification and
// Python-compatible lower-casing. The tables (unicode_tables.cpp) are generated from Python's unicodedata
// (Unicode 14.0.0, Python 3.11) by gen_unicode_tables.py, so classification matches the reference
// tokenizer (openai/CLIP uses the `regex` module, Unicode 15.0: code points added in 15.0 count as
// unassigned here, the only known difference).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nb::text {

// One decoded code point and its byte span in the source string.
struct CodePoint {
    char32_t cp;
    std::size_t begin, end;  // [begin, end) bytes in the UTF-8 text
};

// Decodes UTF-8; an invalid byte decodes as itself (U+0080..U+00FF never occur from valid input, so a
// stray byte is kept as one "character" and still round-trips through the byte-level BPE).
std::vector<CodePoint> decode_utf8(std::string_view s);
void append_utf8(std::string& out, char32_t cp);

bool is_letter(char32_t cp);          // general category L*
bool is_number(char32_t cp);          // general category N* (Nd, Nl, No)
bool is_regex_space(char32_t cp);     // `regex` module \s: the White_Space property
bool is_python_space(char32_t cp);    // str.isspace()/str.strip(): White_Space plus U+001C..U+001F
bool is_word_char(char32_t cp);       // approximation of Python re \w: letter, number or '_'

// Python str.lower(): the simple lower-case mapping, plus U+0130 -> "i\u0307" (the one full mapping).
std::string to_lower_utf8(std::string_view s);

namespace detail {
struct CodeRange {
    char32_t first, last;
};
struct LowerRun {
    char32_t first, last;  // upper-case code points first, first+stride, ..., last
    int delta;             // lower = upper + delta
    int stride;            // 1 or 2 (alternating upper/lower blocks)
};
extern const CodeRange kLetterRanges[];
extern const std::size_t kLetterRanges_size;
extern const CodeRange kNumberRanges[];
extern const std::size_t kNumberRanges_size;
extern const LowerRun kLowerRuns[];
extern const std::size_t kLowerRuns_size;
}  // namespace detail

}  // namespace nb::text
