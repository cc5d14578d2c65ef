// and_split (A1111 get_multicond_prompt_list) and extract_lora_tags (extra_networks.parse_prompt +
// extensions-builtin/Lora extra_networks_lora.activate).
#include <algorithm>
#include <cstdlib>

#include "text/prompt.h"
#include "text/unicode.h"

namespace nb::text {

namespace {

bool py_space(char32_t c) { return is_python_space(c); }

// re.split(r"\bAND\b", prompt)
std::vector<std::string> split_and(std::string_view s) {
    const auto cps = decode_utf8(s);
    std::vector<std::string> parts;
    std::size_t part_begin = 0;
    for (std::size_t k = 0; k + 3 <= cps.size(); ++k) {
        if (s.substr(cps[k].begin, 3) != "AND" || cps[k + 2].end != cps[k].begin + 3) continue;
        const bool before = k == 0 || !is_word_char(cps[k - 1].cp);
        const bool after = k + 3 == cps.size() || !is_word_char(cps[k + 3].cp);
        if (!before || !after) continue;
        parts.emplace_back(s.substr(part_begin, cps[k].begin - part_begin));
        part_begin = cps[k + 2].end;
        k += 2;
    }
    parts.emplace_back(s.substr(part_begin));
    return parts;
}

std::string_view rstrip_space(std::string_view s) {
    const auto cps = decode_utf8(s);
    std::size_t end = s.size();
    for (auto it = cps.rbegin(); it != cps.rend() && py_space(it->cp); ++it) end = it->begin;
    return s.substr(0, end);
}

// [-+]?(?:\d+\.?|\d*\.\d+) over the whole string
bool is_weight_number(std::string_view n) {
    if (!n.empty() && (n[0] == '+' || n[0] == '-')) n.remove_prefix(1);
    const auto dot = n.find('.');
    const std::string_view a = n.substr(0, dot), b = dot == std::string_view::npos ? "" : n.substr(dot + 1);
    const auto digits = [](std::string_view d) { return std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; }); };
    if (!digits(a) || !digits(b) || n.find('.', dot == std::string_view::npos ? n.size() : dot + 1) != std::string_view::npos)
        return false;
    return dot == std::string_view::npos ? !a.empty() : (!a.empty() || !b.empty());
}

// re_weight: ^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$ -> text, weight
std::pair<std::string, double> split_weight(std::string_view part) {
    const std::string_view s = rstrip_space(part);
    const auto colon = s.rfind(':');
    if (colon != std::string_view::npos) {
        std::string_view num = s.substr(colon + 1);
        while (!num.empty() && static_cast<unsigned char>(num.front()) < 0x80 && py_space(static_cast<unsigned char>(num.front())))
            num.remove_prefix(1);
        if (is_weight_number(num))
            return {std::string(rstrip_space(s.substr(0, colon))), std::strtod(std::string(num).c_str(), nullptr)};
    }
    return {std::string(s), 1.0};
}

}  // namespace

MultiCond and_split(std::string_view prompt) {
    MultiCond mc;
    for (const std::string& sub : split_and(prompt)) {
        auto [text, weight] = split_weight(sub);
        const auto it = std::find(mc.subprompts.begin(), mc.subprompts.end(), text);
        const int index = static_cast<int>(it - mc.subprompts.begin());
        if (it == mc.subprompts.end()) mc.subprompts.push_back(std::move(text));
        mc.parts.push_back({index, weight});
    }
    return mc;
}

namespace {

Result<double> tag_weight(const std::string& v, std::string_view tag) {
    char* end = nullptr;
    const double w = std::strtod(v.c_str(), &end);
    if (v.empty() || end != v.c_str() + v.size())
        return make_error(Errc::invalid_argument, "prompt tag <{}>: weight '{}' is not a number", tag, v);
    return w;
}

// One <lora:args> / <lyco:args>: positional name, te, unet; named te=, unet= override them.
Result<LoraTag> lora_from_args(std::string_view args, std::string_view tag) {
    std::vector<std::string> positional;
    std::string te_named, unet_named;
    std::size_t b = 0;
    while (b <= args.size()) {
        const auto e = std::min(args.find(':', b), args.size());
        const std::string item(args.substr(b, e - b));
        const auto eq = item.find('=');
        if (eq != std::string::npos && item.substr(0, eq) == "te") te_named = item.substr(eq + 1);
        else if (eq != std::string::npos && item.substr(0, eq) == "unet") unet_named = item.substr(eq + 1);
        else if (eq == std::string::npos) positional.push_back(item);
        b = e + 1;
    }
    if (positional.empty() || positional[0].empty())
        return make_error(Errc::invalid_argument, "prompt tag <{}>: missing LoRA name", tag);
    LoraTag t{positional[0], 1.0, 1.0};
    if (positional.size() > 1) { NB_TRY(w, tag_weight(positional[1], tag)); t.te_weight = w; }
    if (!te_named.empty()) { NB_TRY(w, tag_weight(te_named, tag)); t.te_weight = w; }
    t.unet_weight = t.te_weight;
    if (positional.size() > 2) { NB_TRY(w, tag_weight(positional[2], tag)); t.unet_weight = w; }
    if (!unet_named.empty()) { NB_TRY(w, tag_weight(unet_named, tag)); t.unet_weight = w; }
    return t;
}

}  // namespace

Result<LoraExtraction> extract_lora_tags(std::string_view prompt) {
    // re_extra_net = <(\w+):([^>]+)>, every match removed from the prompt
    LoraExtraction out;
    std::size_t i = 0;
    while (i < prompt.size()) {
        const auto lt = prompt.find('<', i);
        if (lt == std::string_view::npos) break;
        out.prompt.append(prompt.substr(i, lt - i));
        const auto cps = decode_utf8(prompt.substr(lt + 1));
        std::size_t k = 0;
        while (k < cps.size() && is_word_char(cps[k].cp)) ++k;
        const std::size_t colon = lt + 1 + (k < cps.size() ? cps[k].begin : prompt.size() - lt - 1);
        const auto gt = prompt.find('>', colon);
        if (k == 0 || colon >= prompt.size() || prompt[colon] != ':' || gt == std::string_view::npos || gt == colon + 1) {
            out.prompt += '<';
            i = lt + 1;
            continue;
        }
        const std::string_view name = prompt.substr(lt + 1, colon - lt - 1), args = prompt.substr(colon + 1, gt - colon - 1);
        const std::string_view tag = prompt.substr(lt + 1, gt - lt - 1);
        if (name == "lora" || name == "lyco") {
            NB_TRY(lora, lora_from_args(args, tag));
            out.loras.push_back(std::move(lora));
        } else {
            out.ignored.emplace_back(tag);
        }
        i = gt + 1;
    }
    if (i < prompt.size()) out.prompt.append(prompt.substr(i));
    return out;
}

}  // namespace nb::text
