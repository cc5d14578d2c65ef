// A1111 web-API payloads (/sdapi/v1/txt2img and img2img) <-> GenerateParams, and A1111's `info` JSON: shared by
// the C API (include/nanobanana.h) and `nanobanana serve`. Built on the public C++ API only.
#include "nanobanana/a1111.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#ifndef NB_VERSION
#define NB_VERSION "0.1.0"
#endif

namespace nb::a1111 {

namespace {

using json = nlohmann::json;

Result<json> parse_object(std::string_view text, const char* what) {
    if (text.empty()) return json::object();
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
        return std::unexpected(Error{Errc::invalid_argument, std::string(what) + " is not a JSON object"});
    return j;
}

Error bad_field(const std::string& where, const std::string& key, const char* want) {
    return {Errc::invalid_argument, where + " field '" + key + "' must be " + want};
}

bool present(const json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

// Reads j[key] into out when present (null counts as absent); a value of the wrong type is an error.
Result<void> read(const json& j, const char* key, std::string& out, const std::string& where) {
    if (!present(j, key)) return {};
    if (!j[key].is_string()) return std::unexpected(bad_field(where, key, "a string"));
    out = j[key].get<std::string>();
    return {};
}
template <class Int>
    requires(std::is_integral_v<Int> && !std::is_same_v<Int, bool>)
Result<void> read(const json& j, const char* key, Int& out, const std::string& where) {
    if (!present(j, key)) return {};
    const json& v = j[key];
    if (v.is_number_integer()) {
        out = Int(v.get<int64_t>());
        if (int64_t(out) != v.get<int64_t>()) return std::unexpected(bad_field(where, key, "a smaller integer"));
        return {};
    }
    if (v.is_number_float()) {  // 20.0 is 20; 20.5 and 1e300 are not integers of any field
        const double d = v.get<double>();
        constexpr double kLimit = 9007199254740992.0;  // 2^53: every integer below it is exact in a double
        if (std::isfinite(d) && std::abs(d) <= kLimit && d == std::trunc(d)) {
            out = Int(int64_t(d));
            if (double(int64_t(out)) != d) return std::unexpected(bad_field(where, key, "a smaller integer"));
            return {};
        }
    }
    return std::unexpected(bad_field(where, key, "an integer"));
}
Result<void> read(const json& j, const char* key, float& out, const std::string& where) {
    if (!present(j, key)) return {};
    if (!j[key].is_number()) return std::unexpected(bad_field(where, key, "a number"));
    out = j[key].get<float>();
    return {};
}
// A1111 clients send flags as JSON booleans or as 0/1 (the web UI's radio-button indices, e.g.
// inpainting_mask_invert, inpaint_full_res).
Result<void> read(const json& j, const char* key, bool& out, const std::string& where) {
    if (!present(j, key)) return {};
    const json& v = j[key];
    const bool zero_one = v.is_number_integer() && (v.get<int64_t>() == 0 || v.get<int64_t>() == 1);
    if (!v.is_boolean() && !zero_one) return std::unexpected(bad_field(where, key, "true, false, 0 or 1"));
    out = v.is_boolean() ? v.get<bool>() : v.get<int64_t>() == 1;
    return {};
}

#define NB_READ(j, key, out, where) \
    if (auto r_ = read(j, key, out, where); !r_) return std::unexpected(r_.error())

Result<LoadOptions> load_options_impl(const std::string& model_path, std::string_view options_json) {
    auto j = parse_object(options_json, "options_json");
    if (!j) return std::unexpected(j.error());
    LoadOptions o;
    if (model_path.empty()) return std::unexpected(Error{Errc::invalid_argument, "no model path given"});
    o.model_path = model_path;
    const std::string where = "options";
    NB_READ(*j, "precision", o.precision, where);
    NB_READ(*j, "type", o.weight_type, where);
    NB_READ(*j, "threads", o.threads, where);
    NB_READ(*j, "vocab", o.vocab_path, where);
    NB_READ(*j, "lora_dir", o.lora_dir, where);
    NB_READ(*j, "embd_dir", o.embedding_dir, where);
    NB_READ(*j, "upscaler_dir", o.upscaler_dir, where);
    NB_READ(*j, "backend", o.backend, where);
    NB_READ(*j, "prediction", o.prediction, where);
    NB_READ(*j, "taesd", o.taesd, where);
    NB_READ(*j, "taesd_decode", o.taesd_decode, where);
    NB_READ(*j, "vae", o.vae, where);
    if (auto r = validate(o); !r) return std::unexpected(r.error());
    return o;
}

// ---- images in requests: base64 (RFC 4648), optionally as a data URL ----

int base64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

std::string describe_char(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7F) return std::string("'") + c + "'";
    static const char* kHex = "0123456789ABCDEF";
    return std::string("byte 0x") + kHex[u >> 4] + kHex[u & 15];
}

// Standard alphabet with '=' padding to a multiple of 4 (as Python's b64decode requires); spaces, tabs and
// line breaks are skipped, and so are the unused low bits of the last character before '=' (as Python does: a
// non-zero value there decodes to the same bytes as zero). Anything else is an error: A1111's decoder silently drops unknown characters,
// which turns a damaged or URL-safe payload into a different (or broken) image instead of an error.
Result<std::vector<uint8_t>> decode_base64_impl(std::string_view text, const std::string& what) {
    auto fail = [&](const std::string& why, size_t at) {
        return std::unexpected(
            Error{Errc::invalid_argument,
                      what + ": not valid base64 (" + why + " at offset " + std::to_string(at) + ")"});
    };
    std::vector<uint8_t> out;
    out.reserve(text.size() / 4 * 3);
    uint32_t group = 0;  // the sextets of the current 4-character group
    int n = 0, pad = 0;  // characters of the group so far ('=' included); '=' seen
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (pad && c != '=') return fail("data after the '=' padding", i);
        if (c == '=') {
            if (n < 2) return fail("'=' where data was expected", i);  // a group carries at least one byte
            ++pad;
        } else {
            const int v = base64_value(c);
            if (v < 0) return fail(describe_char(c), i);
            group = group << 6 | uint32_t(v);
        }
        if (++n == 4) {
            group <<= 6 * pad;
            const uint8_t bytes[3] = {uint8_t(group >> 16), uint8_t(group >> 8), uint8_t(group)};
            out.insert(out.end(), bytes, bytes + 3 - pad);
            group = 0, n = 0;  // after padding, `pad` stays set: only whitespace may follow
        }
    }
    if (n != 0) return fail("length not a multiple of 4: '=' padding missing, or cut short", text.size());
    return out;
}

// An A1111 image field: base64, or a data URL ("data:image/png;base64,..."); PNG or JPEG.
Result<Image> decode_image_json(const json& v, const std::string& field) {
    const std::string what = "request field '" + field + "'";
    if (!v.is_string())
        return std::unexpected(bad_field("request", field, "a base64-encoded PNG or JPEG string"));
    std::string_view text = v.get_ref<const std::string&>();
    if (text.starts_with("data:")) {
        const size_t comma = text.find(',');
        if (comma == std::string_view::npos || !text.substr(0, comma).ends_with(";base64"))
            return std::unexpected(
                Error{Errc::invalid_argument,
                          what + ": a data URL must be base64 (data:image/png;base64,...)"});
        text.remove_prefix(comma + 1);
    } else if (text.starts_with("http://") || text.starts_with("https://")) {
        return std::unexpected(Error{Errc::invalid_argument,
                                         what + ": image URLs are not fetched; send the image as base64"});
    }
    auto bytes = decode_base64_impl(text, what);
    if (!bytes) return std::unexpected(bytes.error());
    return decode_image(*bytes, what);
}

// ---- request_json -> GenerateParams ----


Result<void> read_txt2img_fields(const json& j, Request& req, const std::string& where) {
    GenerateParams& p = req.params;
    NB_READ(j, "prompt", p.prompt, where);
    NB_READ(j, "negative_prompt", p.negative_prompt, where);
    NB_READ(j, "seed", p.seed, where);
    NB_READ(j, "steps", p.steps, where);
    NB_READ(j, "cfg_scale", p.cfg_scale, where);
    NB_READ(j, "width", p.width, where);
    NB_READ(j, "height", p.height, where);
    NB_READ(j, "sampler_name", p.sampler, where);
    // Older clients send only sampler_index; webuiapi sends both. A1111: sampler_name or sampler_index.
    if (!present(j, "sampler_name") ||
        (j["sampler_name"].is_string() && j["sampler_name"].get_ref<const std::string&>().empty()))
        NB_READ(j, "sampler_index", p.sampler, where);
    NB_READ(j, "scheduler", p.scheduler, where);
    int batch_size = 1, n_iter = 1;
    NB_READ(j, "batch_size", batch_size, where);
    NB_READ(j, "n_iter", n_iter, where);
    if (batch_size < 1 || n_iter < 1)
        return std::unexpected(bad_field(where, batch_size < 1 ? "batch_size" : "n_iter", "at least 1"));
    p.batch_count = batch_size * n_iter;
    NB_READ(j, "clip_skip", p.clip_skip, where);
    NB_READ(j, "cache_mode", p.cache_mode, where);  // nanobanana extras: step caching (--cache-mode)
    NB_READ(j, "cache_interval", p.cache_interval, where);
    // Variation seed; seed_resize_from_* <= 0 (A1111 sends -1) means no seed resize.
    NB_READ(j, "subseed", p.subseed, where);
    NB_READ(j, "subseed_strength", p.subseed_strength, where);
    NB_READ(j, "seed_resize_from_w", req.seed_resize_from_w, where);
    NB_READ(j, "seed_resize_from_h", req.seed_resize_from_h, where);
    p.seed_resize_from_w = std::max(0, req.seed_resize_from_w);
    p.seed_resize_from_h = std::max(0, req.seed_resize_from_h);
    // Hires fix.
    NB_READ(j, "enable_hr", p.enable_hr, where);
    NB_READ(j, "hr_scale", p.hr_scale, where);
    NB_READ(j, "hr_resize_x", p.hr_resize_x, where);
    NB_READ(j, "hr_resize_y", p.hr_resize_y, where);
    NB_READ(j, "hr_upscaler", p.hr_upscaler, where);
    NB_READ(j, "hr_second_pass_steps", p.hr_second_pass_steps, where);
    NB_READ(j, "hr_prompt", p.hr_prompt, where);
    NB_READ(j, "hr_negative_prompt", p.hr_negative_prompt, where);
    NB_READ(j, "denoising_strength", p.denoising_strength, where);  // img2img and hires fix
    return {};
}

// A1111's initial_noise_multiplier scales the img2img noise; only its neutral value is supported.
Result<void> check_noise_multiplier(const json& j, const std::string& where) {
    float m = 1.f;
    NB_READ(j, "initial_noise_multiplier", m, where);
    if (m != 1.f)
        return std::unexpected(
            bad_field(where, "initial_noise_multiplier", "1 (nanobanana has no noise multiplier)"));
    return {};
}

Result<void> read_img2img_fields(const json& j, GenerateParams& p, const std::string& where) {
    // A1111 takes one init image per batch item; nanobanana uses the first for the whole batch.
    if (present(j, "init_images")) {
        const json& a = j["init_images"];
        if (!a.is_array() || a.empty())
            return std::unexpected(bad_field(where, "init_images", "a non-empty array of base64 images"));
        auto im = decode_image_json(a[0], "init_images[0]");
        if (!im) return std::unexpected(im.error());
        p.init_image = std::move(*im);
    }
    // "" means no mask, as in A1111's API.
    if (present(j, "mask") && !(j["mask"].is_string() && j["mask"].get_ref<const std::string&>().empty())) {
        auto im = decode_image_json(j["mask"], "mask");
        if (!im) return std::unexpected(im.error());
        p.mask = std::move(*im);
    }
    NB_READ(j, "resize_mode", p.resize_mode, where);
    // A1111's mask_blur sets both directions; nanobanana blurs with one sigma, so x and y must agree.
    int blur_x = p.mask_blur, blur_y = p.mask_blur;
    NB_READ(j, "mask_blur_x", blur_x, where);
    NB_READ(j, "mask_blur_y", blur_y, where);
    if (present(j, "mask_blur")) {
        NB_READ(j, "mask_blur", blur_x, where);
        blur_y = blur_x;
    }
    if (blur_x != blur_y)
        return std::unexpected(Error{Errc::invalid_argument,
                                         where + " field 'mask_blur_y' (" + std::to_string(blur_y) +
                                             ") must equal 'mask_blur_x' (" + std::to_string(blur_x) +
                                             "): nanobanana blurs the mask equally in both directions"});
    p.mask_blur = blur_x;
    NB_READ(j, "inpainting_mask_invert", p.inpainting_mask_invert, where);
    NB_READ(j, "inpainting_fill", p.inpainting_fill, where);
    NB_READ(j, "inpaint_full_res", p.inpaint_full_res, where);
    NB_READ(j, "inpaint_full_res_padding", p.inpaint_full_res_padding, where);
    NB_READ(j, "inpainting_mask_weight", p.inpainting_mask_weight, where);
    if (auto r = check_noise_multiplier(j, where); !r) return r;
    if (present(j, "outpaint")) {  // nanobanana extra: [left, top, right, bottom] pixels added to the canvas
        const json& a = j["outpaint"];
        int* sides[4] = {&p.outpaint_left, &p.outpaint_top, &p.outpaint_right, &p.outpaint_bottom};
        const auto pixels = [](const json& v) {  // validate() checks the range; this keeps the cast exact
            return v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= 1 << 20;
        };
        if (!a.is_array() || a.size() != 4 || !std::all_of(a.begin(), a.end(), pixels))
            return std::unexpected(bad_field(where, "outpaint", "[left, top, right, bottom] pixel counts"));
        for (size_t i = 0; i < 4; ++i) *sides[i] = int(a[i].get<int64_t>());
    }
    return {};
}

Result<void> read_override_settings(const json& j, GenerateParams& p, const std::string& where) {
    if (!present(j, "override_settings")) return {};
    const json& o = j["override_settings"];
    if (!o.is_object()) return std::unexpected(bad_field(where, "override_settings", "an object"));
    const std::string ow = "request override_settings";
    std::string randn;
    NB_READ(o, "randn_source", randn, ow);
    if (!randn.empty()) {
        if (randn != "GPU" && randn != "CPU" && randn != "NV")
            return std::unexpected(bad_field(ow, "randn_source", "\"GPU\", \"CPU\" or \"NV\""));
        p.rng = randn == "CPU" ? "cpu" : "cuda";
    }
    NB_READ(o, "CLIP_stop_at_last_layers", p.clip_skip, ow);
    NB_READ(o, "eta_noise_seed_delta", p.eta_noise_seed_delta, ow);
    NB_READ(o, "inpainting_mask_weight", p.inpainting_mask_weight, ow);  // an A1111 setting, hence here
    return check_noise_multiplier(o, ow);
}

Result<Request> request_impl(std::string_view request_json) {
    auto j = parse_object(request_json, "request_json");
    if (!j) return std::unexpected(j.error());
    Request req;
    const std::string where = "request";
    if (auto r = read_txt2img_fields(*j, req, where); !r) return std::unexpected(r.error());
    // The settings first: a top-level inpainting_mask_weight (nanobanana's extra) wins over the setting.
    if (auto r = read_override_settings(*j, req.params, where); !r) return std::unexpected(r.error());
    if (auto r = read_img2img_fields(*j, req.params, where); !r) return std::unexpected(r.error());
    if (auto r = validate(req.params); !r) return std::unexpected(r.error());
    // A1111 fix_seed: a random variation seed is chosen here, not in the engine, so info can report it.
    if (req.params.subseed < 0) req.params.subseed = int64_t(std::random_device{}() % 4294967294u);
    return req;
}

// A float as the double with the same shortest decimal form (0.3f -> 0.3, not 0.30000001192092896), so the
// info JSON shows the numbers a Python client sent.
double decimal(float f) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf - 1, f);
    *r.ptr = '\0';
    return std::strtod(buf, nullptr);
}

// A1111's Processed.js() fields (those nanobanana has).
std::string info_impl(const Request& req, const std::vector<GeneratedImage>& images,
                      const std::string& model) {
    const GenerateParams& p = req.params;
    const int64_t seed = images.empty() ? p.seed : images[0].seed;
    json all_seeds = json::array(), all_subseeds = json::array(), infotexts = json::array();
    json prompts = json::array(), negs = json::array();
    for (const auto& g : images) {
        all_seeds.push_back(g.seed);
        all_subseeds.push_back(g.subseed);
        infotexts.push_back(g.parameters);
        prompts.push_back(p.prompt);
        negs.push_back(p.negative_prompt);
    }
    json info = {{"prompt", p.prompt},
                 {"all_prompts", prompts},
                 {"negative_prompt", p.negative_prompt},
                 {"all_negative_prompts", negs},
                 {"seed", seed},
                 {"all_seeds", all_seeds},
                 {"subseed", p.subseed},
                 {"all_subseeds", all_subseeds},
                 {"subseed_strength", decimal(p.subseed_strength)},
                 {"width", p.width},
                 {"height", p.height},
                 {"sampler_name", p.sampler},
                 {"cfg_scale", decimal(p.cfg_scale)},
                 {"steps", p.steps},
                 {"batch_size", p.batch_count},
                 {"clip_skip", std::max(1, p.clip_skip)},
                 {"sd_model_name", model},
                 {"seed_resize_from_w", req.seed_resize_from_w},
                 {"seed_resize_from_h", req.seed_resize_from_h},
                 {"denoising_strength", decimal(p.denoising_strength)},
                 {"index_of_first_image", 0},
                 {"infotexts", infotexts},
                 {"styles", json::array()},
                 {"extra_generation_params", json::object()},
                 {"version", std::string("nanobanana ") + NB_VERSION}};
    return info.dump();
}


}  // namespace

Result<Request> parse_request(std::string_view json_text) { return request_impl(json_text); }

std::string info_json(const Request& req, const std::vector<GeneratedImage>& images, const std::string& model) {
    return info_impl(req, images, model);
}

Result<LoadOptions> parse_load_options(const std::string& model_path, std::string_view json_text) {
    return load_options_impl(model_path, json_text);
}

Result<std::vector<uint8_t>> decode_base64(std::string_view text, const std::string& what) {
    return decode_base64_impl(text, what);
}

std::string encode_base64(std::span<const uint8_t> bytes) {
    static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (size_t i = 0; i < bytes.size(); i += 3) {
        const size_t n = std::min<size_t>(3, bytes.size() - i);
        uint32_t v = uint32_t(bytes[i]) << 16;
        if (n > 1) v |= uint32_t(bytes[i + 1]) << 8;
        if (n > 2) v |= bytes[i + 2];
        for (size_t k = 0; k < 4; ++k) out += k <= n ? kAlphabet[(v >> (18 - 6 * k)) & 63] : '=';
    }
    return out;
}

Result<Image> decode_image_field(std::string_view text, const std::string& field) {
    return decode_image_json(json(std::string(text)), field);
}

}  // namespace nb::a1111
