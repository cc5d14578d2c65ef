// JPEG decoding (image/jpeg, libjpeg-turbo): baseline, progressive, grey, CMYK, truncated, corrupt.
#include <cstdint>
#include <span>

#include "../fuzz_input.h"
#include "image/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (auto img = nb::decode_jpeg(std::span<const uint8_t>(data, size), "fuzz input")) {
        nb::fuzz::require(img->width > 0 && img->height > 0, "a decoded image has a size");
        nb::fuzz::require(img->pixels.size() == size_t(img->width) * size_t(img->height) * size_t(img->channels),
                          "pixel buffer matches the size");
    }
    return 0;
}
