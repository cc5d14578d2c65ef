// A random-weight checkpoint with exactly the SD 1.5 single-file layout (LDM names, fp16), for `bench`
// and load tests without downloading weights; plus a byte-level stand-in CLIP vocabulary beside it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace nb::pipeline {

struct TensorSpec {
    std::string name;
    Shape shape;
};

// The SD 1.5 inventory: UNet (686), VAE (248), CLIP ViT-L/14 text tower (196, without position_ids).
std::vector<TensorSpec> sd15_inventory();

// $XDG_CACHE_HOME/nanobanana/random-sd15-fp16.safetensors (or ~/.cache/...), written on first use, streamed
// tensor by tensor as fp16 (weights N(0,1)/sqrt(fan_in), 1-D weights 1, biases 0; atomic), with
// <stem>.vocab.json / <stem>.merges.txt beside it.
Result<std::string> ensure_random_sd15(const std::function<void(const std::string&)>& log);

// The SD 2.x (768-v) inventory: SD 1.5's UNet with context 1024 and Linear transformer projections, the same VAE,
// open_clip ViT-H-14's text tower (24 layers, width 1024) under cond_stage_model.model.
std::vector<TensorSpec> sd2_inventory();
// "sd15" (ensure_random_sd15) or "sd2" ($XDG_CACHE_HOME/nanobanana/random-sd2-fp16.safetensors, written on first
// use; no parameterization metadata, so A1111's test forward decides eps / v as for a file without it).
Result<std::string> ensure_random_checkpoint(const std::string& layout,
                                             const std::function<void(const std::string&)>& log);

// A TAESD decoder for 4-channel latents (taesd.py's bare Sequential names, 1.2M parameters): the architecture
// of madebyollin's taesd_decoder for SD 1.x/2.x, for timing the tiny decode without downloading it.
std::vector<TensorSpec> taesd_decoder_inventory();
// $XDG_CACHE_HOME/nanobanana/random-taesd-decoder-fp16.safetensors, written on first use (fp16, random weights).
Result<std::string> ensure_random_taesd(const std::function<void(const std::string&)>& log);

}  // namespace nb::pipeline
