// include/nanobanana.h: the C face of the public C++ API (include/nanobanana/engine.h). JSON in, plain C out;
// no exception crosses it.
#include "nanobanana.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nanobanana/engine.h"

#ifndef NB_VERSION
#define NB_VERSION "0.1.0"
#endif

struct nb_engine {
    std::unique_ptr<nb::Engine> engine;
};

struct nb_result {
    std::vector<nb::GeneratedImage> images;
    std::string info;
};

namespace {

using json = nlohmann::json;

char* dup(const std::string& s) {
    char* p = static_cast<char*>(std::malloc(s.size() + 1));
    if (p) std::memcpy(p, s.c_str(), s.size() + 1);
    return p;
}

void set_error(char** error, const std::string& message) {
    if (error) *error = dup(message);
}

int code_of(const nb::Error& e) {
    switch (e.code) {
        case nb::Errc::cancelled: return NB_CANCELLED;
        case nb::Errc::internal: return NB_ERROR;
        default: return NB_ERROR_INPUT;
    }
}

nb::Result<json> parse_object(const char* text, const char* what) {
    if (!text || !*text) return json::object();
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
        return std::unexpected(nb::Error{nb::Errc::invalid_argument, std::string(what) + " is not a JSON object"});
    return j;
}

nb::Error bad_field(const std::string& where, const char* key, const char* want) {
    return {nb::Errc::invalid_argument, where + " field '" + key + "' must be " + want};
}

// Reads j[key] into out when present (null counts as absent); a value of the wrong type is an error.
nb::Result<void> read(const json& j, const char* key, std::string& out, const std::string& where) {
    if (!j.contains(key) || j[key].is_null()) return {};
    if (!j[key].is_string()) return std::unexpected(bad_field(where, key, "a string"));
    out = j[key].get<std::string>();
    return {};
}
template <class Int>
    requires std::is_integral_v<Int>
nb::Result<void> read(const json& j, const char* key, Int& out, const std::string& where) {
    if (!j.contains(key) || j[key].is_null()) return {};
    const json& v = j[key];
    if (v.is_number_integer()) {
        out = Int(v.get<int64_t>());
        if (int64_t(out) != v.get<int64_t>()) return std::unexpected(bad_field(where, key, "a smaller integer"));
        return {};
    }
    if (v.is_number_float() && v.get<double>() == double(int64_t(v.get<double>()))) {  // 20.0
        out = Int(v.get<double>());
        return {};
    }
    return std::unexpected(bad_field(where, key, "an integer"));
}
nb::Result<void> read(const json& j, const char* key, float& out, const std::string& where) {
    if (!j.contains(key) || j[key].is_null()) return {};
    if (!j[key].is_number()) return std::unexpected(bad_field(where, key, "a number"));
    out = j[key].get<float>();
    return {};
}

#define NB_READ(j, key, out, where) \
    if (auto r_ = read(j, key, out, where); !r_) return std::unexpected(r_.error())

nb::Result<nb::LoadOptions> load_options(const char* model_path, const char* options_json) {
    auto j = parse_object(options_json, "options_json");
    if (!j) return std::unexpected(j.error());
    nb::LoadOptions o;
    if (!model_path || !*model_path) return std::unexpected(nb::Error{nb::Errc::invalid_argument, "no model path given"});
    o.model_path = model_path;
    const std::string where = "options";
    NB_READ(*j, "precision", o.precision, where);
    NB_READ(*j, "type", o.weight_type, where);
    NB_READ(*j, "threads", o.threads, where);
    NB_READ(*j, "vocab", o.vocab_path, where);
    NB_READ(*j, "lora_dir", o.lora_dir, where);
    NB_READ(*j, "backend", o.backend, where);
    if (auto r = nb::validate(o); !r) return std::unexpected(r.error());
    return o;
}

nb::Result<nb::GenerateParams> request_params(const char* request_json) {
    auto j = parse_object(request_json, "request_json");
    if (!j) return std::unexpected(j.error());
    nb::GenerateParams p;
    const std::string where = "request";
    NB_READ(*j, "prompt", p.prompt, where);
    NB_READ(*j, "negative_prompt", p.negative_prompt, where);
    NB_READ(*j, "seed", p.seed, where);
    NB_READ(*j, "steps", p.steps, where);
    NB_READ(*j, "cfg_scale", p.cfg_scale, where);
    NB_READ(*j, "width", p.width, where);
    NB_READ(*j, "height", p.height, where);
    NB_READ(*j, "sampler_name", p.sampler, where);
    NB_READ(*j, "sampler_index", p.sampler, where);  // older A1111 clients
    NB_READ(*j, "scheduler", p.scheduler, where);
    int batch_size = 1, n_iter = 1;
    NB_READ(*j, "batch_size", batch_size, where);
    NB_READ(*j, "n_iter", n_iter, where);
    if (batch_size < 1 || n_iter < 1)
        return std::unexpected(bad_field(where, batch_size < 1 ? "batch_size" : "n_iter", "at least 1"));
    p.batch_count = batch_size * n_iter;
    NB_READ(*j, "clip_skip", p.clip_skip, where);
    if (j->contains("override_settings") && !(*j)["override_settings"].is_null()) {
        const json& o = (*j)["override_settings"];
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
    }
    if (auto r = nb::validate(p); !r) return std::unexpected(r.error());
    return p;
}

std::string info_json(const nb::GenerateParams& p, const std::vector<nb::GeneratedImage>& images,
                      const std::string& model) {
    json all_seeds = json::array(), infotexts = json::array(), prompts = json::array(), negs = json::array();
    for (const auto& g : images) {
        all_seeds.push_back(g.seed);
        infotexts.push_back(g.parameters);
        prompts.push_back(p.prompt);
        negs.push_back(p.negative_prompt);
    }
    json info = {{"prompt", p.prompt},
                 {"all_prompts", prompts},
                 {"negative_prompt", p.negative_prompt},
                 {"all_negative_prompts", negs},
                 {"seed", images.empty() ? p.seed : images[0].seed},
                 {"all_seeds", all_seeds},
                 {"subseed", -1},
                 {"all_subseeds", json::array()},
                 {"subseed_strength", 0},
                 {"width", p.width},
                 {"height", p.height},
                 {"sampler_name", p.sampler},
                 {"cfg_scale", p.cfg_scale},
                 {"steps", p.steps},
                 {"batch_size", p.batch_count},
                 {"clip_skip", std::max(1, p.clip_skip)},
                 {"sd_model_name", model},
                 {"index_of_first_image", 0},
                 {"infotexts", infotexts},
                 {"styles", json::array()},
                 {"extra_generation_params", json::object()},
                 {"version", std::string("nanobanana ") + NB_VERSION}};
    return info.dump();
}

}  // namespace

extern "C" {

nb_engine* nb_engine_load(const char* model_path, const char* options_json, char** error) {
    if (error) *error = nullptr;
    try {
        auto opt = load_options(model_path, options_json);
        if (!opt) return set_error(error, opt.error().message), nullptr;
        auto e = nb::Engine::load(*opt);
        if (!e) return set_error(error, e.error().message), nullptr;
        return new nb_engine{std::move(*e)};
    } catch (const std::exception& ex) {
        set_error(error, std::string("internal error while loading: ") + ex.what());
    } catch (...) {
        set_error(error, "internal error while loading");
    }
    return nullptr;
}

int nb_generate(nb_engine* e, const char* request_json, nb_progress_fn progress, void* user, nb_result** result,
                char** error) {
    if (error) *error = nullptr;
    if (result) *result = nullptr;
    if (!e || !result) return set_error(error, "nb_generate: engine and result must not be NULL"), NB_ERROR_INPUT;
    try {
        auto p = request_params(request_json);
        if (!p) return set_error(error, p.error().message), code_of(p.error());
        bool cancelled = false;
        auto on_progress = [&](const nb::Progress& pr) {
            if (!progress) return true;
            // Over the whole request: a batch of 2 x 20 steps reports 1..40 of 40.
            const int step = pr.image * pr.total + pr.step, steps = pr.n_images * pr.total;
            if (progress(step, steps, user) != 0) cancelled = true;
            return !cancelled;
        };
        auto images = e->engine->generate(*p, on_progress);
        if (!images) return set_error(error, images.error().message), code_of(images.error());
        auto r = std::make_unique<nb_result>();
        r->info = info_json(*p, *images, e->engine->model_name());
        r->images = std::move(*images);
        *result = r.release();
        return cancelled ? NB_CANCELLED : NB_OK;
    } catch (const std::exception& ex) {
        set_error(error, std::string("internal error while generating: ") + ex.what());
    } catch (...) {
        set_error(error, "internal error while generating");
    }
    return NB_ERROR;
}

size_t nb_result_count(const nb_result* r) { return r ? r->images.size() : 0; }

const unsigned char* nb_result_image(const nb_result* r, size_t i, int* width, int* height) {
    if (!r || i >= r->images.size()) return nullptr;
    const nb::Image& im = r->images[i].image;
    if (width) *width = im.width;
    if (height) *height = im.height;
    return im.pixels.data();
}

const char* nb_result_info(const nb_result* r) { return r ? r->info.c_str() : nullptr; }

void nb_result_free(nb_result* r) { delete r; }

void nb_engine_free(nb_engine* e) { delete e; }

void nb_free(void* p) { std::free(p); }

const char* nb_version(void) { return "nanobanana " NB_VERSION; }

}  // extern "C"
