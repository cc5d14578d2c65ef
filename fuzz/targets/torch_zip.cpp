// PyTorch zip checkpoints (io/torch_zip): the zip reader (central directory, zip64, DEFLATE) and the
// restricted unpickler. Nothing in the file may run; every entry must lie inside the file or an inflated member.
#include <cstdint>

#include "../fuzz_input.h"
#include "io/torch_zip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    nb::fuzz::InputFile file(data, size);
    auto tz = nb::TorchZip::open(file.path());
    if (!tz) return 0;
    for (const auto& e : tz->entries()) {
        if (!e.mapping.empty())
            nb::fuzz::require(e.data >= e.mapping.data() && e.data + e.nbytes <= e.mapping.data() + e.mapping.size(),
                              "storage inside the file");
        if (!nb::check_convertible(e) || nb::shape_numel(e.shape) > (int64_t{1} << 16)) continue;
        nb::fuzz::require(bool(nb::entry_to_f32(e)), "check_convertible passed, so the conversion must");
    }
    return 0;
}
