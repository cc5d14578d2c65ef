// base64 and image fields (a1111::decode_base64, decode_image_field: every image a client sends). Decoding
// is strict RFC 4648: what decodes re-encodes to the same text (whitespace and unused pad bits aside), and an
// image field gives an image of the size it says or an error.
#include <cstdint>
#include <string>
#include <string_view>

#include "../fuzz_input.h"
#include "nanobanana/a1111.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto bytes = nb::a1111::decode_base64(text, "fuzz")) {
        const std::string again = nb::a1111::encode_base64(*bytes);
        auto twice = nb::a1111::decode_base64(again, "fuzz");
        nb::fuzz::require(twice && *twice == *bytes, "decode(encode(x)) == x");
        std::string compact;
        for (char c : text)
            if (c != ' ' && c != '\n' && c != '\r' && c != '\t') compact += c;
        // Strict: one spelling per byte string, except the unused low bits of the last character before '='
        // (ignored, as Python's b64decode does; decode(encode(x)) == x above covers the used ones).
        const size_t last = again.find('=') == std::string::npos ? again.size() : again.find('=');
        nb::fuzz::require(compact.size() == again.size(), "strict base64: no extra characters");
        for (size_t i = 0; i < again.size(); ++i)
            nb::fuzz::require(compact[i] == again[i] || (last < again.size() && i + 1 == last),
                              "strict base64: one spelling per byte string");
    }
    if (auto im = nb::a1111::decode_image_field(text, "image"))
        nb::fuzz::require(im->width > 0 && im->height > 0 &&
                              im->pixels.size() == size_t(im->width) * size_t(im->height) * size_t(im->channels),
                          "a decoded image has the size it says");
    return 0;
}
