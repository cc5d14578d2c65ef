// Diffusers folder tensor names -> LDM single-file names (io/diffusers_names): the layout (resnets per level,
// levels, which up blocks have attention) is derived from the key names a stranger's folder holds, so the
// index arithmetic sees any integers. Input: one key per line; lines starting "vae/" are the VAE's, the others
// the UNet's, and every key is also renamed as a text-encoder key. Renaming never fails except by nullopt, and
// every name it gives carries its part's LDM prefix.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../fuzz_input.h"
#include "io/diffusers_names.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace nb::diffusers;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> unet, vae;
    for (size_t at = 0; at <= text.size();) {
        size_t end = text.find('\n', at);
        if (end == std::string_view::npos) end = text.size();
        const std::string_view line = text.substr(at, end - at);
        if (line.starts_with("vae/")) vae.emplace_back(line.substr(4));
        else unet.emplace_back(line);
        at = end + 1;
    }
    auto layout = detect_layout(unet, vae);
    if (!layout) return 0;
    auto check = [&](Part part, const std::string& key) {
        if (auto r = to_ldm(part, key, *layout))
            nb::fuzz::require(r->ldm.starts_with(ldm_prefix(part)), "an LDM name has its part's prefix");
    };
    for (const auto& k : unet) check(Part::unet, k), check(Part::text_encoder, k);
    for (const auto& k : vae) check(Part::vae, k);
    return 0;
}
