// include/nanobanana/engine.h, upscaling part: Upscaler over esrgan::Model and pipeline/upscale.h.
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "backend/context.h"
#include "image/edit.h"
#include "image/image.h"
#include "nanobanana/engine.h"
#include "pipeline/infotext.h"
#include "pipeline/upscale.h"

namespace nb {

struct Upscaler::Impl {
    std::unique_ptr<backend::Context> ctx;  // its kernels' settings and caches (thread count), as an Engine's
    esrgan::Model model;
    std::string name;
};

Upscaler::Upscaler() : impl_(std::make_unique<Impl>()) {}
Upscaler::~Upscaler() = default;

Result<std::unique_ptr<Upscaler>> Upscaler::load(const std::string& model_path, int threads) {
    backend::Settings settings;
    settings.threads = threads;
    auto ctx = std::make_unique<backend::Context>(settings);
    backend::Scope scope(*ctx);
    NB_TRY(model, esrgan::Model::load(model_path));
    std::unique_ptr<Upscaler> u(new Upscaler());
    u->impl_->ctx = std::move(ctx);
    u->impl_->model = std::move(model);
    u->impl_->name = std::filesystem::path(model_path).stem().string();
    return u;
}

const std::string& Upscaler::name() const { return impl_->name; }
int Upscaler::native_scale() const { return impl_->model.config().scale; }
std::string Upscaler::describe() const { return impl_->model.config().summary(); }

namespace {

constexpr double kMaxScale = 8.0;

// Target size of a request: explicit WxH, else round(side * scale) with scale 0 = the model's factor.
Result<std::pair<int, int>> target_size(const Image& in, const UpscaleParams& p, int native) {
    if (p.width > 0 || p.height > 0) {
        if (p.width <= 0 || p.height <= 0)
            return make_error(Errc::invalid_argument, "upscale target size needs both width and height (got {}x{})",
                              p.width, p.height);
        if (p.width > in.width * kMaxScale || p.height > in.height * kMaxScale)
            return make_error(Errc::invalid_argument, "upscale target {}x{} is more than 8x the input {}x{}", p.width,
                              p.height, in.width, in.height);
        return std::pair{p.width, p.height};
    }
    const double s = p.scale == 0 ? native : p.scale;
    if (!(s >= 1.0 && s <= kMaxScale))
        return make_error(Errc::invalid_argument, "upscale factor must be between 1 and 8 (got {})", s);
    return std::pair{int(std::lround(in.width * s)), int(std::lround(in.height * s))};
}

}  // namespace

Result<Image> Upscaler::upscale(const Image& in, const UpscaleParams& p, const ProgressFn& progress) const {
    NB_TRY(size, target_size(in, p, native_scale()));
    if (p.tile > 0 && p.tile_overlap * 2 >= p.tile)
        return make_error(Errc::invalid_argument, "tile overlap {} must be less than half the tile size {}",
                          p.tile_overlap, p.tile);
    pipeline::UpscaleTiling t{p.tile, std::max(0, p.tile_overlap)};
    backend::Scope scope(*impl_->ctx);
    return pipeline::upscale_image(impl_->model, in, size.first, size.second, t,
                                   [&](int pass, int n_passes, int tile, int n_tiles) {
                                       return !progress ||
                                              progress(Progress{pass, n_passes, tile + 1, n_tiles, "upscale", {}});
                                   });
}

std::string Upscaler::postprocess_info(const UpscaleParams& p) const {
    if (p.width > 0 && p.height > 0)
        return fmt::format("Postprocess upscaler: {}, Postprocess upscale to: {}x{}", name(), p.width, p.height);
    const double s = p.scale == 0 ? native_scale() : p.scale;
    return fmt::format("Postprocess upscaler: {}, Postprocess upscale by: {}", name(), pipeline::format_number(s));
}

Result<void> save_upscaled_png(const std::string& path, const Image& image, const std::string& parameters,
                               const std::string& postprocessing) {
    TextChunks chunks;
    if (!parameters.empty()) {
        // The postprocess fields join the settings line (the last line, when the infotext has one), so tools
        // that read only "parameters" see them too.
        const bool has_settings = !pipeline::Infotext::parse(parameters).params.empty();
        const std::string sep = postprocessing.empty() ? "" : has_settings ? ", " : "\n";
        chunks.emplace_back("parameters", parameters + sep + postprocessing);
    }
    if (!postprocessing.empty()) chunks.emplace_back("postprocessing", postprocessing);
    return write_png(path, image, chunks);
}

}  // namespace nb

namespace nb {

Result<std::vector<uint8_t>> encode_png(const Image& image, const std::string& parameters) {
    TextChunks text;
    if (!parameters.empty()) text.emplace_back("parameters", parameters);
    return nb::encode_png(image, text);
}

Result<std::string> png_parameters(const std::vector<uint8_t>& png_bytes) {
    NB_TRY(text, decode_png_text(png_bytes, "PNG"));
    auto it = text.find("parameters");
    return it == text.end() ? std::string() : it->second;
}

}  // namespace nb

namespace nb {

Result<Image> resize_picture(const Image& in, int width, int height, bool nearest) {
    if (width < 1 || height < 1 || width > 16384 || height > 16384)
        return make_error(Errc::invalid_argument, "size {}x{} is out of range", width, height);
    if (in.width < 1 || in.height < 1 || in.pixels.size() != size_t(in.width) * size_t(in.height) * size_t(in.channels))
        return make_error(Errc::invalid_argument, "picture is malformed");
    return pil_resize(in, width, height, nearest ? Resample::nearest : Resample::lanczos);
}

}  // namespace nb
