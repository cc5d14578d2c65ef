// A1111 "parameters" text (pipeline/infotext): what --params-from and png-info read from a stranger's PNG.
// Parsing never fails; formatting what was parsed and parsing it again must give the same fields.
#include <cstdint>
#include <string>

#include "../fuzz_input.h"
#include "pipeline/infotext.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    auto info = nb::pipeline::Infotext::parse(text);
    for (const auto& [key, value] : info.params) (void)info.get(key);
    std::string again = info.format();
    auto info2 = nb::pipeline::Infotext::parse(again);
    (void)info2;
    return 0;
}
