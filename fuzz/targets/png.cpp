// PNG decoding (image/png, libpng) and its text chunks (tEXt / zTXt / iTXt: A1111's "parameters").
#include <cstdint>
#include <span>

#include "../fuzz_input.h"
#include "image/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::span<const uint8_t> bytes(data, size);
    if (auto img = nb::decode_image(bytes, "fuzz input")) {
        nb::fuzz::require(img->width > 0 && img->height > 0, "a decoded image has a size");
        nb::fuzz::require(img->pixels.size() == size_t(img->width) * size_t(img->height) * size_t(img->channels),
                          "pixel buffer matches the size");
    }
    if (auto text = nb::decode_png_text(bytes, "fuzz input"))
        for (const auto& [key, value] : *text) nb::fuzz::require(!key.empty(), "a text chunk has a keyword");
    return 0;
}
