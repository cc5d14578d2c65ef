// Convolutions over few output pixels with weights held in 16 bits: an SD UNet's 8x8 and 4x4 latent levels
// (32-128 pixels per call at 256x256) hold most of its weights. The direct kernel first expands such a
// weight to fp32 (a 1280x1280x3x3 weight: 29 MB read, 59 MB written and read again) and then uses each value
// for only 32-128 pixels, so the expansion costs as much as the arithmetic. Here the input is unfolded
// (im2col) into panels and a GEMM streams the weights as held, converting them in registers: the same
// products, summed in fp32 (results equal the direct kernel's within fp32 rounding). AVX-512 only.
#pragma once

#include <cstdint>

#include <dnnl.hpp>

#include "core/dtype.h"

namespace nb::cpu {

struct SmallConvShape {
    int64_t n, c, h, w, o, kh, kw;
    int stride, pt, pl;
    int64_t ho, wo;
};

// Whether this CPU runs the kernel (AVX-512).
bool small_conv_available();
// The output-channel block B of a weight layout the kernel reads (fp32 desc of [O, C, KH, KW]): dense
// "Ohwi<B>o" with B a multiple of 16 up to 64, the direct kernel's usual layout for these shapes; 0 otherwise.
int64_t small_conv_block(const dnnl::memory::desc& layout);
// y [n, o, ho, wo] = conv(x [n, c, h, w], weights) + bias. wt: the whole weight in Ohwi<block>o order (several
// such groups stacked are the same thing when each group has a multiple of `block` channels), as fp32, fp16
// or bf16 values. o must be a multiple of block.
void small_conv(const SmallConvShape& s, const float* x, const void* wt, DType wtype, int64_t block,
                const float* bias, float* y);

}  // namespace nb::cpu
