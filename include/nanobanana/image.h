// 8-bit interleaved image, the pixel type of the public API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace nb {

struct Image {
    int width = 0, height = 0, channels = 0;  // channels: 3 (RGB) or 4 (RGBA); 1/2 (gray[+alpha]) for writing
    std::vector<uint8_t> pixels;              // row-major, interleaved: [height][width][channels]
    uint8_t* at(int x, int y) { return pixels.data() + (size_t(y) * size_t(width) + size_t(x)) * size_t(channels); }
    const uint8_t* at(int x, int y) const {
        return pixels.data() + (size_t(y) * size_t(width) + size_t(x)) * size_t(channels);
    }
};

}  // namespace nb
