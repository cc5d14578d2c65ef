// AUTOMATIC1111 web-API payloads: /sdapi/v1/txt2img and /sdapi/v1/img2img request JSON -> GenerateParams, and
// A1111's `info` JSON for the result. Used by the C API (include/nanobanana.h) and `nanobanana serve`; field
// names and meanings are A1111 v1.10's. Unknown keys are ignored; a known key with a bad value is an error
// naming it ("request field 'steps' must be an integer").
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nanobanana/engine.h"

namespace nb::a1111 {

struct Request {
    GenerateParams params;
    int seed_resize_from_w = -1, seed_resize_from_h = -1;  // as sent (A1111's default -1; <= 0 is off)
};

// txt2img and img2img fields (init_images / mask as base64 or data: URLs), override_settings
// (randn_source, CLIP_stop_at_last_layers, inpainting_mask_weight), then validate(params). A random variation
// seed (subseed -1) is chosen here so that info_json can report it. "" = {}.
Result<Request> parse_request(std::string_view json_text);

// A1111 Processed.js(): prompt, all_prompts, seed, all_seeds, subseed, all_subseeds, width, height,
// sampler_name, cfg_scale, steps, infotexts, ... as a JSON object text.
std::string info_json(const Request& req, const std::vector<GeneratedImage>& images, const std::string& model);

// The C API's options_json: precision, type, threads, vocab, lora_dir, embd_dir, upscaler_dir, backend.
Result<LoadOptions> parse_load_options(const std::string& model_path, std::string_view json_text);

// Strict RFC 4648 base64 (standard alphabet, '=' padding; whitespace skipped); errors name `what`.
Result<std::vector<uint8_t>> decode_base64(std::string_view text, const std::string& what);
std::string encode_base64(std::span<const uint8_t> bytes);
// An A1111 image field: base64 or a data: URL of a PNG or JPEG; errors name "request field '<field>'".
Result<Image> decode_image_field(std::string_view text, const std::string& field);

}  // namespace nb::a1111
