// Generic overlapped tiling used by the VAE's tiled encode/decode (tiling.cpp); public so tests can check the
// crop/blend/normalise machinery on a local operation, where tiled and untiled results must agree exactly.
#pragma once

#include <cstdint>
#include <functional>

#include "core/tensor.h"

namespace nb::vae {

// Runs fn on tiles of x [N, C, H, W] (tile side `tile`, neighbours sharing >= `overlap`, all in input units
// and multiples of `den`) and blends the outputs [N, out_c, h*num/den, w*num/den] with linear ramps across each
// overlap into one [N, out_c, H*num/den, W*num/den] tensor. tile < den is raised to den, overlap clamped to [0, tile - den].
Tensor tiled_map(const Tensor& x, int64_t tile, int64_t overlap, int64_t num, int64_t den, int64_t out_c,
                 const std::function<Tensor(const Tensor&)>& fn);

}  // namespace nb::vae
