// .safetensors header + tensor table (io/safetensors): every entry must lie inside the file, and converting
// one either works or is an error, for any bytes.
#include <cstdint>

#include "../fuzz_input.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    nb::fuzz::InputFile file(data, size);
    auto st = nb::SafeTensors::open(file.path());
    if (!st) return 0;
    for (const auto& e : st->entries()) {
        if (!e.mapping.empty())
            nb::fuzz::require(e.data >= e.mapping.data() && e.data + e.nbytes <= e.mapping.data() + e.mapping.size(),
                              "tensor data inside the file");
        if (!nb::check_convertible(e)) continue;
        if (nb::shape_numel(e.shape) > (int64_t{1} << 16)) continue;  // converting is linear; big tensors add nothing
        auto t = nb::entry_to_f32(e);
        nb::fuzz::require(bool(t), "check_convertible passed, so the conversion must");
    }
    for (const auto& [k, v] : st->metadata()) (void)k, (void)v;
    return 0;
}
