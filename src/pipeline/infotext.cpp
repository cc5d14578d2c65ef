#include "pipeline/infotext.h"

#include <algorithm>


#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace nb::pipeline {

namespace {

// A1111 generation_parameters_copypaste.quote: values with ',', '\n' or ':' are written as JSON strings.
std::string quote(const std::string& v) {
    if (v.find_first_of(",\n:") == std::string::npos) return v;
    // Invalid UTF-8 (a prompt's raw bytes, a stranger's PNG) becomes U+FFFD instead of an exception escaping
    // the writer (found by fuzz/targets/infotext.cpp).
    return nlohmann::json(v).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string unquote(const std::string& v) {
    if (v.size() < 2 || v.front() != '"' || v.back() != '"') return v;
    auto j = nlohmann::json::parse(v, nullptr, false);
    return j.is_string() ? j.get<std::string>() : v;
}

// ECMAScript's \\w and \\s on bytes, in the classic locale (ASCII only), whatever the process locale is.
bool is_word(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }
bool is_key_char(char c) { return is_word(c) || c == ' ' || c == '-' || c == '/'; }

}  // namespace

std::vector<std::pair<std::string, std::string>> scan_params(std::string_view line) {
    // What A1111's re_param, \s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$), finds with findall, scanned
    // in one pass: std::regex's recursive matcher overflowed the stack on a quoted value of a few hundred KB
    // (a prompt with 10,000 LoRA tags has such a "Lora hashes" value), which killed the server.
    // A key is a maximal run of key characters (it cannot end earlier: the character after a shorter run is a
    // key character, not ':'); a quoted value ends at its first unescaped '"' and counts only when ',' or the end
    // follows, otherwise the value is everything up to the next ','.
    std::vector<std::pair<std::string, std::string>> out;
    const size_t n = line.size();
    size_t p = 0;
    while (p < n) {
        size_t i = p;
        while (i < n && is_space(line[i])) ++i;
        if (i >= n) break;
        if (!is_word(line[i])) {  // nor can a match start in the spaces before it
            p = i + 1;
            continue;
        }
        size_t j = i + 1;
        while (j < n && is_key_char(line[j])) ++j;
        if (j - i < 2 || j >= n || line[j] != ':') {  // nor can one start inside this run: the scan stays linear
            p = j;
            continue;
        }
        size_t v = j + 1;
        while (v < n && is_space(line[v])) ++v;
        size_t end = std::string_view::npos;  // end of the value
        if (v < n && line[v] == '"') {
            size_t q = v + 1;
            bool closed = false;
            while (q < n) {
                if (line[q] == '"') {
                    closed = true;
                    break;
                }
                if (line[q] != '\\') {
                    ++q;
                } else if (q + 1 < n && line[q + 1] != '\r') {  // \\. ('.' is not a line terminator)
                    q += 2;
                } else {
                    break;
                }
            }
            if (closed && q > v + 1 && (q + 1 == n || line[q + 1] == ',')) end = q + 1;
        }
        if (end == std::string_view::npos) end = std::min(n, line.find(',', v));
        out.emplace_back(std::string(line.substr(i, j - i)), std::string(line.substr(v, end - v)));
        p = end < n && line[end] == ',' ? end + 1 : end;
    }
    return out;
}

std::string Infotext::get(const std::string& key, const std::string& fallback) const {
    for (const auto& [k, v] : params)
        if (k == key) return v;
    return fallback;
}

void Infotext::set(const std::string& key, const std::string& value) {
    for (auto& [k, v] : params)
        if (k == key) {
            v = value;
            return;
        }
    params.emplace_back(key, value);
}

std::string Infotext::format() const {
    std::string s = prompt;
    if (!negative_prompt.empty()) s += "\nNegative prompt: " + negative_prompt;
    std::string line;
    for (const auto& [k, v] : params) {
        if (!line.empty()) line += ", ";
        line += k + ": " + quote(v);
    }
    return s + "\n" + line;
}

Infotext Infotext::parse(const std::string& text) {
    // As A1111 parse_generation_parameters: the last line holds "Key: value" pairs; lines before it are the
    // prompt, up to a line starting with "Negative prompt:", after which they are the negative prompt.
    Infotext it;
    std::vector<std::string> lines;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t nl = text.find('\n', pos);
        lines.push_back(text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
        if (nl == std::string::npos) break;
        pos = nl + 1;
    }
    const auto found = scan_params(lines.back());
    if (found.size() >= 3) {
        for (auto [key, v] : found) {
            while (!v.empty() && v.back() == ' ') v.pop_back();
            it.params.emplace_back(std::move(key), unquote(v));
        }
        lines.pop_back();
    }
    bool neg = false;
    for (auto& l : lines) {
        if (l.rfind("Negative prompt:", 0) == 0) {
            neg = true;
            l = l.substr(16);
            if (!l.empty() && l[0] == ' ') l = l.substr(1);
        }
        std::string& dst = neg ? it.negative_prompt : it.prompt;
        dst += (dst.empty() ? "" : "\n") + l;
    }
    return it;
}

std::string format_number(double v) {
    std::string s = fmt::format("{:.6g}", v);
    return s;
}

}  // namespace nb::pipeline
