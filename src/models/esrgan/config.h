// Real-ESRGAN family hyper-parameters, detected from tensor names and shapes only (STYLE.md #9).
//   SRVGGNetCompact: Real-ESRGAN realesrgan/archs/srvgg_arch.py (animevideov3, general-x4v3, xsx2/xsx4).
//   RRDBNet: BasicSR basicsr/archs/rrdbnet_arch.py (ESRGAN, RealESRGAN_x4plus / x2plus, anime_6B).
#pragma once

#include <string>

namespace nb::esrgan {

enum class Arch { srvgg, rrdb };

struct Config {
    Arch arch = Arch::srvgg;
    int scale = 4;        // net factor: output side = input side * scale
    int in_ch = 3, out_ch = 3;
    int num_feat = 64;
    int num_conv = 16;    // SRVGG: 3x3 convs between the first and the last conv (each followed by PReLU)
    int num_block = 23;   // RRDB: residual-in-residual dense blocks
    int num_grow = 32;    // RRDB: dense growth channels
    int unshuffle = 1;    // RRDB: pixel_unshuffle factor applied to the input (x2 models: 2, x1 models: 4)

    // "SRVGGNetCompact x4 (num_feat 64, num_conv 16)" / "RRDBNet x2 (num_feat 64, 23 blocks, grow 32, unshuffle 2)".
    std::string summary() const;
    // Context (in input pixels) that influences one output pixel: the receptive-field radius of the 3x3 convs.
    int receptive_radius() const;
};

}  // namespace nb::esrgan
