// LDM single-file names -> diffusers folder names, for tests that build diffusers folders from golden single files:
// the inverse of io/diffusers_names' rename tables (UNet, VAE, SD 1.x text encoder).
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/diffusers_names.h"

namespace nb::test {

using namespace nb::diffusers;

inline const char* folder_of(Part p) {
    switch (p) {
        case Part::text_encoder: return "text_encoder";
        case Part::unet: return "unet";
        case Part::vae: return "vae";
    }
    return "";
}

struct DiffusersKey {
    std::string folder, key;
    bool squeeze = false;  // LDM [C,C,1,1] -> diffusers Linear [C,C]
};

// Inverts the rename tables: matches each rule's LDM template (last rule first, so the more specific
// "output_blocks.$.$.conv." wins over "output_blocks.$.1."), then searches the diffusers indices whose
// forward index rule gives the captured LDM indices.
inline std::optional<DiffusersKey> ldm_to_diffusers(const std::string& ldm, const Layout& layout) {
    auto rules = block_rules();
    for (size_t ri = rules.size(); ri-- > 0;) {
        const BlockRule& r = rules[ri];
        std::string_view prefix = ldm_prefix(r.part);
        if (!ldm.starts_with(prefix)) continue;
        std::string_view rest = std::string_view(ldm).substr(prefix.size());
        size_t used = 0;
        auto caps = match_template(r.to, rest, used);
        if (!caps) continue;
        size_t n = size_t(std::count(r.from.begin(), r.from.end(), '$'));
        std::optional<std::vector<int>> found;
        for (int combo = 0; combo < (1 << (3 * n)) && !found; ++combo) {
            std::vector<int> c;
            for (size_t k = 0; k < n; ++k) c.push_back((combo >> (3 * k)) & 7);
            auto idx = apply_index(r.ix, c, layout);
            if (idx && *idx == *caps) found = c;
        }
        if (!found) continue;
        DiffusersKey out{folder_of(r.part), fill_template(r.from, *found)};
        std::string inner(rest.substr(used));
        if (r.inner != Inner::keep) {
            bool hit = false;
            for (const auto& ir : inner_rules()) {
                if (ir.kind != r.inner || !inner.starts_with(std::string(ir.to) + ".")) continue;
                out.squeeze = ir.linear_as_conv1x1 && inner.ends_with(".weight");
                inner = std::string(ir.from) + inner.substr(ir.to.size());
                hit = true;
                break;
            }
            if (!hit) continue;
        }
        out.key += inner;
        return out;
    }
    return std::nullopt;
}

}  // namespace nb::test
