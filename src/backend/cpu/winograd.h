// Winograd F(4x4, 3x3) convolution of our own for 3x3 stride-1 "same" fp32 convolutions (Lavin & Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2015): each 4x4 output tile takes 36 multiplications per
// input/output channel pair instead of 144. Unlike oneDNN's Winograd kernel it needs no cached transformed
// weights: the weight transform is cheap enough to run per call (one pass over the weight, vectorised over
// output channels, reading 16-bit packed weights as held), so it adds no memory between calls.
//
//   input tiles  V = B^T d B   (6x6 per 4x4 output tile and input channel; [36][tiles][C])
//   weights      U = G g G^T   (6x6 per channel pair; [36][C][O], in chunks of output channels)
//   products     M[k] = V[k] U[k] for each of the 36 points k: 36 matrix products (oneDNN matmul)
//   output       Y = A^T M A   (4x4 per tile) + bias
#pragma once

#include <cstdint>

#include <dnnl.hpp>

#include "core/dtype.h"
#include "core/tensor.h"

namespace nb::cpu {

// Where weight element (o, c, kh, kw) lies in a 4-D oneDNN layout (plain or blocked): the kernel reads the
// weights in whatever layout the direct kernel packed them, so a weight never changes layout between the two.
class WeightLayout {
public:
    explicit WeightLayout(const dnnl::memory::desc& d);
    // Blocked, fp32, with output channels innermost in blocks of a multiple of 16 (e.g. OIhw16i16o): 16
    // consecutive output channels from a multiple of 16 are then contiguous.
    bool o_innermost() const { return ok_; }
    int64_t offset(int64_t o, int64_t c, int64_t kh, int64_t kw) const;

private:
    dnnl_memory_desc_t d_;
    int64_t block_[4] = {1, 1, 1, 1};  // product of each dimension's inner blocks
    bool ok_ = false;
};

class WinogradF43 {
public:
    // Whether this kernel handles a convolution of c -> o channels (multiples of 16).
    static bool supports(int64_t c, int64_t o) { return c % 16 == 0 && o % 16 == 0; }
    // Number of 4x4 output tiles of an n x h x w output.
    static int64_t tiles(int64_t n, int64_t h, int64_t w) { return n * ((h + 3) / 4) * ((w + 3) / 4); }

    // For input x [n, c, h, w] (NCHW, fp32; kept by the caller until done). The transformed input (2.25x the
    // input's size) is made for bands of rows of tiles of at most about band_bytes (one row of tiles at
    // least): for each band, load_band(), then run() for each group of output channels. More than one band
    // costs one weight transform per band and group.
    WinogradF43(const float* x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t band_bytes);
    int64_t bands() const { return (th_ + band_rows_ - 1) / band_rows_; }
    void load_band(int64_t band);
    // Output channels [o0, o0 + og) of the band's rows of y [n, o_total, h, w] (NCHW) from weights g
    // [og, c, 3, 3] in `layout` (o_innermost()) as fp32 values or fp16 / bf16 bits (`type`: a 16-bit packed
    // copy is read as held, converted in registers) and bias (og values, or null).
    void run(const void* g, DType type, const WeightLayout& layout, int64_t og, const float* bias, float* y,
             int64_t o_total, int64_t o0) const;

private:
    const float* x_;
    int64_t n_, c_, h_, w_, th_, tw_;  // th_ x tw_ tiles per image
    int64_t band_rows_;                // rows of tiles per band
    int64_t ty0_ = 0, rows_ = 0;       // the loaded band
    Tensor v_;                         // its transformed input [36][tiles][c]
};

}  // namespace nb::cpu
