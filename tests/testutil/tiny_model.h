// The tiny golden SD 1.x checkpoint (golden/pipeline/sd_tiny_fp16.safetensors) loaded through the real
// loader, with the real CLIP vocabulary: shared by the pipeline, LoRA and bf16 tests.
#pragma once

#include <memory>
#include <stdexcept>

#include "pipeline/sd_model.h"
#include "testutil/golden.h"

namespace nb::test {

// A fresh model (callers that modify weights or precision own their copy).
inline std::unique_ptr<pipeline::SDModel> load_tiny_sd(ops::WeightStorage unet = ops::WeightStorage::exact) {
    auto r = pipeline::SDModel::load(shared_path("golden/pipeline/sd_tiny_fp16.safetensors"),
                                     shared_path("assets/tokenizer/bpe_simple_vocab_16e6.txt.gz"), false, unet);
    if (!r) throw std::runtime_error(r.error().message);
    return std::move(*r);
}

}  // namespace nb::test
