// LoRA files (models/lora): a stranger's .safetensors read as a LoRA -- module grouping (kohya and PEFT
// spellings), rank and alpha checks, the name mapping to checkpoint keys, and the merge product of small
// modules. Any bytes give a LoraFile or an error; a module that was accepted always forms a rank-r product.
#include <cstdint>
#include <map>
#include <string>

#include "../fuzz_input.h"
#include "models/lora/lora.h"
#include "models/lora/name_map.h"

namespace {

// A few real SD 1.x weights, so that TargetIndex::find has something to resolve against.
const nb::lora::TargetIndex& index() {
    static const std::map<std::string, nb::Tensor> weights = [] {
        std::map<std::string, nb::Tensor> w;
        for (const char* k : {"model.diffusion_model.input_blocks.1.1.proj_in.weight",
                              "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight",
                              "model.diffusion_model.middle_block.0.in_layers.2.weight",
                              "model.diffusion_model.output_blocks.11.1.proj_out.weight",
                              "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight",
                              "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.weight"})
            w.emplace(k, nb::Tensor());
        return w;
    }();
    static const nb::lora::TargetIndex ix(weights);
    return ix;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    nb::fuzz::InputFile file(data, size);
    auto st = nb::SafeTensors::open(file.path());
    if (!st) return 0;
    (void)nb::lora::is_lora(*st);
    auto f = nb::lora::LoraFile::from(*st);
    if (!f) return 0;
    nb::fuzz::require(!f->modules.empty(), "an accepted LoRA file has modules");
    for (const auto& m : f->modules) {
        nb::fuzz::require(m.rank > 0 && m.down.shape[0] == m.rank, "rank = rows of down");
        nb::fuzz::require(m.up.shape.size() >= 2 && m.up.shape[1] == m.rank, "up's columns = rank");
        (void)nb::lora::kohya_to_compvis(m.name);
        (void)index().find(m.name);
        (void)index().fused(m.name);
        const int64_t out = m.up.shape[0], k = nb::shape_numel(m.down.shape) / m.rank;
        const nb::Shape fits{out, k}, wrong{out + 1, k};
        nb::fuzz::require(bool(nb::lora::check_fit(m, fits, "fuzz")), "[out, k] always fits");
        nb::fuzz::require(!nb::lora::check_fit(m, wrong, "fuzz"), "[out + 1, k] never fits");
        if (out * k * m.rank > (int64_t{1} << 16) || !nb::check_convertible(m.up) || !nb::check_convertible(m.down))
            continue;  // the product is linear in size: big modules add nothing
        auto d = nb::lora::module_delta(m, fits, 0.8f, "fuzz");
        nb::fuzz::require(d && d->numel() == out * k, "the delta of a fitting module has the weight's size");
    }
    return 0;
}
