// `nanobanana upscale`: Real-ESRGAN family upscaling of a PNG, tiled, with A1111's postprocess metadata;
// also the upscale step of `generate --upscale-model`.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "progress.h"

namespace nb::cli {

namespace {

struct UpscaleArgs {
    std::string input, output, model, resize;
    UpscaleParams p;
    int threads = 0;
    bool benchmark = false;
    bool scale_given = false;
};

std::string fmt_number(const char* prefix, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%g", prefix, v);
    return buf;
}

int fail(const Error& e) {
    std::fprintf(stderr, "nanobanana: %s\n", e.message.c_str());
    return exit_code(e);
}

double peak_rss_mb() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_maxrss) / 1024.0;
}

int run_upscale(UpscaleArgs& a) {
    if (a.input.empty() || a.output.empty())
        return fail({Errc::invalid_argument, "upscale needs -i INPUT.png and -o OUTPUT.png"});
    if (a.model.empty()) return fail({Errc::invalid_argument, "no upscaler given: pass --upscale-model PATH"});
    if (!a.resize.empty() && (std::sscanf(a.resize.c_str(), "%dx%d", &a.p.width, &a.p.height) != 2 ||
                              a.p.width <= 0 || a.p.height <= 0))
        return fail({Errc::invalid_argument, "--resize must look like 2048x1152 (got '" + a.resize + "')"});
    // 0 is the engine's "the model's own factor", which is what leaving --scale out means; given, it must be 1..8.
    if (a.scale_given && !(a.p.scale >= 1 && a.p.scale <= 8))
        return fail({Errc::invalid_argument, fmt_number("--scale must be 1..8 (got ", a.p.scale) + ")"});
    if (a.p.tile < 0) return fail({Errc::invalid_argument, "--tile must be 0 (whole image) or more (got " +
                                                               std::to_string(a.p.tile) + ")"});
    if (a.p.tile_overlap < 0 || (a.p.tile > 0 && a.p.tile_overlap * 2 >= a.p.tile))
        return fail({Errc::invalid_argument, "--tile-overlap must be 0 or more and under half the tile (got " +
                                                 std::to_string(a.p.tile_overlap) + ")"});
    if (auto r = check_output_png(a.output, "-o/--output"); !r) return fail(r.error());
    auto img = load_png(a.input);
    if (!img) return fail(img.error());
    auto params = read_png_parameters(a.input);
    if (!params) return fail(params.error());
    auto up = Upscaler::load(a.model, a.threads);
    if (!up) return fail(up.error());
    install_interrupt_handler();
    ProgressBar bar;
    const auto t0 = std::chrono::steady_clock::now();
    auto out = (*up)->upscale(*img, a.p, [&](const Progress& pr) { return bar.update(pr); });
    if (!out) return fail(out.error());
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (auto r = save_upscaled_png(a.output, *out, *params, (*up)->postprocess_info(a.p)); !r) return fail(r.error());
    bar.finish();
    std::fprintf(stderr, "saved %s (%dx%d -> %dx%d, %s: %s)\n", a.output.c_str(), img->width, img->height,
                 out->width, out->height, (*up)->name().c_str(), (*up)->describe().c_str());
    if (a.benchmark) {
        const double mp = double(out->width) * double(out->height) / 1e6;
        std::printf("benchmark: %s %dx%d -> %dx%d, tile %d overlap %d: %.2f s, %.3f s per output megapixel, "
                    "peak RSS %.1f MB\n",
                    (*up)->name().c_str(), img->width, img->height, out->width, out->height, a.p.tile,
                    a.p.tile_overlap, secs, secs / mp, peak_rss_mb());
    }
    return 0;
}

}  // namespace

Result<void> save_generated(const std::string& path, const Image& img, const std::string& parameters,
                            const Upscaler* up, const UpscaleParams& p) {
    if (!up) return save_png(path, img, parameters);
    ProgressBar bar;
    auto out = up->upscale(img, p, [&](const Progress& pr) { return bar.update(pr); });
    if (!out) return std::unexpected(out.error());
    return save_upscaled_png(path, *out, parameters, up->postprocess_info(p));
}

CommandRunner register_upscale(CLI::App& app) {
    auto a = std::make_shared<UpscaleArgs>();
    auto* s = app.add_subcommand("upscale", "Upscale a PNG with a Real-ESRGAN family model (.pth / .safetensors)");
    s->add_option("-i,--input", a->input, "Input PNG (RGB or RGBA; its A1111 parameters are kept)");
    s->add_option("-o,--output", a->output, "Output PNG");
    s->add_option("--upscale-model", a->model, "SRVGGNetCompact or RRDBNet model (.pth / .safetensors)");
    s->add_option_function<double>(
        "--scale", [a](double v) { a->p.scale = v, a->scale_given = true; },
        "Target factor 1..8 [the model's own; x3 with a x4 model downsamples, 6x/8x apply the model again]");
    s->add_option("--resize", a->resize, "Explicit target size WxH (instead of --scale)");
    s->add_option("--tile", a->p.tile, "Tile side in input pixels (0 = whole image)")->capture_default_str();
    s->add_option("--tile-overlap", a->p.tile_overlap, "Pixels shared by neighbouring tiles")->capture_default_str();
    s->add_option("-t,--threads", a->threads, "Threads (0 = all cores)")->capture_default_str();
    s->add_flag("--benchmark", a->benchmark, "Print time per output megapixel and peak RSS");
    return [a] { return run_upscale(*a); };
}

}  // namespace nb::cli
