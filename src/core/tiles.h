// Tile layout shared by tiled VAE coding and tiled upscaling.
#pragma once

#include <cstdint>
#include <vector>

namespace nb {

// Start offsets of tiles of length `tile` covering [0, n), neighbours sharing >= `overlap`; the last tile is
// moved back to end at n (so it may share more). Values are multiples of an alignment when n, tile and
// overlap are.
inline std::vector<int64_t> tile_starts(int64_t n, int64_t tile, int64_t overlap) {
    if (n <= tile) return {0};
    std::vector<int64_t> s;
    for (int64_t p = 0;; p += tile - overlap) {
        if (p + tile >= n) {
            s.push_back(n - tile);
            return s;
        }
        s.push_back(p);
    }
}

}  // namespace nb
