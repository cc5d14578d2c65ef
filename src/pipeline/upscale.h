// AI upscaling with the Real-ESRGAN family: tiled inference in bounded memory, alpha kept, any target size
// (repeated passes as A1111's Upscaler.upscale, then a Lanczos resize to the exact size).
#pragma once

#include <functional>

#include "core/error.h"
#include "core/tensor.h"
#include "image/image.h"
#include "models/esrgan/model.h"

namespace nb::pipeline {

struct UpscaleTiling {
    int tile = 192;     // tile side in input pixels; <= 0: the whole image at once
    int overlap = 32;   // input pixels shared by neighbouring tiles, blended with linear ramps
};

// (tile index 0-based, number of tiles) after each tile; return false to cancel.
using TileFn = std::function<bool(int done, int total)>;

// x [1, C, H, W] in [0,1] -> model output [1, C, H*s, W*s] (unclamped), computed tile by tile. Each tile's
// output is weighted by a ramp across every overlap with a neighbour and the sum normalised, so seams fade;
// sizes not divisible by the model's unshuffle factor are edge-padded and cropped back.
Result<Tensor> upscale_tiled(const esrgan::Model& m, const Tensor& x, const UpscaleTiling& t, const TileFn& on_tile);

// One pass of the model over an RGB(A) image; alpha is resized (Lanczos) to the output size.
Result<Image> upscale_pass(const esrgan::Model& m, const Image& in, const UpscaleTiling& t, const TileFn& on_tile);

// Passes the model needs for an in -> target size (A1111: repeat while smaller than the target, at most 3;
// a x1 model runs once).
int upscale_passes(int model_scale, int in_w, int in_h, int out_w, int out_h);

// Full request: upscale_passes() passes, then a Lanczos resize to exactly out_w x out_h when needed.
// on_tile gets (pass, n_passes, tile, n_tiles).
using PassTileFn = std::function<bool(int pass, int n_passes, int tile, int n_tiles)>;
Result<Image> upscale_image(const esrgan::Model& m, const Image& in, int out_w, int out_h, const UpscaleTiling& t,
                            const PassTileFn& on_tile);

}  // namespace nb::pipeline
