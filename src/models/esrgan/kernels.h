// Elementwise and layout kernels the ESRGAN networks need beyond ops.h. Plain loops (OpenMP over planes):
// they are memory bound and a small share of the time next to the 3x3 convolutions.
#pragma once

#include "core/tensor.h"

namespace nb::esrgan {

// x = x >= 0 ? x : slope * x (in place). BasicSR uses slope 0.2.
void leaky_relu_(Tensor& x, float slope);
// x [N, C, H, W]; per-channel slopes a [C] (torch.nn.PReLU(num_parameters=C)).
void prelu_(Tensor& x, const Tensor& a);
// Depth-to-space as torch.nn.functional.pixel_shuffle: x [N, C*s*s, H, W] -> [N, C, H*s, W*s],
// out[n, c, y*s+i, x*s+j] = in[n, c*s*s + i*s + j, y, x].
Tensor pixel_shuffle(const Tensor& x, int s);
// Space-to-depth, the inverse: x [N, C, H*s, W*s] -> [N, C*s*s, H, W] (H, W must divide by s).
Tensor pixel_unshuffle(const Tensor& x, int s);
// y [N, C, H*s, W*s] += nearest-neighbour upsampling of x [N, C, H, W] (F.interpolate(x, scale_factor=s)).
void add_upsampled_nearest_(Tensor& y, const Tensor& x, int s);

}  // namespace nb::esrgan
