// include/nanobanana.h: the C face of the public C++ API (include/nanobanana/engine.h). JSON in, plain C out;
// no exception crosses it.
#include "nanobanana.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "nanobanana/a1111.h"
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

}  // namespace

extern "C" {

nb_engine* nb_engine_load(const char* model_path, const char* options_json, char** error) {
    if (error) *error = nullptr;
    try {
        auto opt = nb::a1111::parse_load_options(model_path ? model_path : "", options_json ? options_json : "");
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
        auto p = nb::a1111::parse_request(request_json ? request_json : "");
        if (!p) return set_error(error, p.error().message), code_of(p.error());
        bool cancelled = false;
        auto on_progress = [&](const nb::Progress& pr) {
            if (!progress) return true;
            // Over the whole request: a batch of 2 x 20 steps reports 1..40 of 40.
            const int step = pr.image * pr.total + pr.step, steps = pr.n_images * pr.total;
            if (progress(step, steps, user) != 0) cancelled = true;
            return !cancelled;
        };
        auto images = e->engine->generate(p->params, on_progress);
        if (!images) return set_error(error, images.error().message), code_of(images.error());
        auto r = std::make_unique<nb_result>();
        r->info = nb::a1111::info_json(*p, *images, e->engine->model_name());
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
