// The server's request JSON -> typed request (a1111: /sdapi/v1/txt2img and img2img bodies, with base64 or data:
// URL images inside, and the C API's options JSON). Any bytes give a Request or a one-line error; an accepted
// request passes validate() and its info JSON is valid JSON.
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "../fuzz_input.h"
#include "nanobanana/a1111.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto req = nb::a1111::parse_request(text)) {
        nb::fuzz::require(bool(nb::validate(req->params)), "an accepted request is valid");
        const std::string info = nb::a1111::info_json(*req, {}, "fuzz");
        nb::fuzz::require(!nlohmann::json::parse(info, nullptr, false).is_discarded(), "info is JSON");
    } else {
        nb::fuzz::require(!req.error().message.empty(), "an error says why");
    }
    (void)nb::a1111::parse_load_options("model.safetensors", text);
    return 0;
}
