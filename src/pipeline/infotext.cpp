#include "pipeline/infotext.h"

#include <regex>

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

}  // namespace

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
    static const std::regex kv(R"re(\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$))re");
    std::string last = lines.back();
    auto begin = std::sregex_iterator(last.begin(), last.end(), kv);
    int matches = 0;
    for (auto m = begin; m != std::sregex_iterator(); ++m) ++matches;
    if (matches >= 3) {
        for (auto m = begin; m != std::sregex_iterator(); ++m) {
            std::string v = (*m)[2].str();
            while (!v.empty() && v.back() == ' ') v.pop_back();
            it.params.emplace_back((*m)[1].str(), unquote(v));
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
