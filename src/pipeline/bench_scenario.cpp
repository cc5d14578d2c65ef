// `nanobanana bench --scenario`: one whole image as `generate` makes it (model loaded: text encode, sampling,
// decode, PNG encode), timed per phase. The scenarios are issue 21's targets:
//   lcm4-taesd  4-step LCM, CFG 1 (one UNet evaluation per step), TAESD decode
//   lcm4        the same with the checkpoint's VAE
//   dpm20       20-step DPM++ 2M Karras, CFG 7, the checkpoint's VAE
// Without --taesd, lcm4-taesd uses a random-weight decoder of TAESD's architecture (written once to the cache).
#include <algorithm>
#include <chrono>
#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backend/context.h"
#include "backend/ops.h"
#include "image/image.h"
#include "nanobanana/engine.h"
#include "pipeline/infotext.h"
#include "pipeline/options.h"
#include "pipeline/random_checkpoint.h"
#include "pipeline/sd_model.h"
#include "pipeline/stages.h"
#include "pipeline/txt2img.h"

namespace nb {

Result<backend::Settings> bench_settings(const BenchOptions& opt);       // bench.cpp
BenchReport bench_report(const BenchOptions& opt, const std::string& path);
double peak_rss_mb();

namespace {

struct Scenario {
    const char* name;
    const char* sampler;
    const char* scheduler;
    int steps;
    float cfg;
    bool taesd;
};
constexpr Scenario kScenarios[] = {
    {"lcm4-taesd", "lcm", "", 4, 1.f, true},
    {"lcm4", "lcm", "", 4, 1.f, false},
    {"dpm20", "DPM++ 2M", "karras", 20, 7.f, false},
};

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string cpu_model() {
    std::ifstream f("/proc/cpuinfo");
    std::string line, name, family;
    while (std::getline(f, line) && (name.empty() || family.empty())) {
        auto value = [&] { return line.substr(line.find(':') + 2); };
        if (name.empty() && line.starts_with("model name")) name = value();
        if (family.empty() && line.starts_with("cpu family")) family = value();
    }
    if (name.empty()) return "unknown CPU";
    return family.empty() ? name : name + " (family " + family + ")";
}

Result<BenchReport> run_scenario(const BenchOptions& opt, const BenchLog& log) {
    auto say = [&](const std::string& s) {
        if (log) log(s);
    };
    const Scenario* sc = nullptr;
    for (const auto& s : kScenarios)
        if (opt.scenario == s.name) sc = &s;
    if (!sc) {
        std::vector<std::string> names;
        for (const auto& s : kScenarios) names.push_back(s.name);
        return make_error(Errc::invalid_argument, "bench --scenario must be one of {} (got '{}')",
                          fmt::join(names, ", "), opt.scenario);
    }
    GenerateParams p;
    p.prompt = "a photo of an astronaut riding a horse on mars, highly detailed";
    p.negative_prompt = sc->cfg != 1.f ? "blurry, lowres" : "";
    p.sampler = sc->sampler;
    p.scheduler = sc->scheduler;
    p.steps = sc->steps;
    p.cfg_scale = sc->cfg;
    p.width = opt.width;
    p.height = opt.height;
    p.seed = 1;
    p.cache_mode = opt.cache_mode;
    p.cache_interval = opt.cache_interval;
    if (auto r = validate(p); !r) return std::unexpected(r.error());
    NB_TRY(settings, bench_settings(opt));
    NB_TRY(storage, parse_weight_type(opt.weight_type));
    backend::Context ctx(settings);
    backend::Scope scope(ctx);

    std::string path = opt.model_path;
    if (path.empty()) {
        NB_TRY(pth, pipeline::ensure_random_checkpoint(opt.random_layout, say));
        path = pth;
    }
    std::string taesd_path = opt.taesd;
    if (sc->taesd && taesd_path.empty()) {
        NB_TRY(t, pipeline::ensure_random_taesd(say));
        taesd_path = t;
    }
    BenchReport r = bench_report(opt, path);
    r.scenario = sc->name;
    say("loading " + path);
    const double t0 = now_s();
    NB_TRY(m, pipeline::SDModel::load(path, opt.vocab_path, false, storage));
    if (sc->taesd) {
        NB_TRY(tiny, taesd::Model::load(taesd_path));
        if (!tiny.has_decoder() || tiny.config().latent_channels != m->unet.config().out_channels)
            return make_error(Errc::invalid_argument, "bench --taesd: {} is not a decoder for this model's latents",
                              taesd_path);
        m->taesd = std::move(tiny);
        m->taesd_decode = true;
    }
    r.load_s = now_s() - t0;

    // One image as Engine::generate makes it: txt2img, then the PNG with its infotext.
    struct Run {
        double total_s;
        pipeline::PhaseTimes phases;
        double png_s;
        int64_t unet_macs;
    };
    auto image = [&]() -> Result<Run> {
        Run run{};
        pipeline::Txt2ImgRequest req;
        req.params = p;
        req.seed = p.seed;
        req.times = &run.phases;
        ops::reset_mac_count();
        const double start = now_s();
        NB_TRY(out, pipeline::txt2img(*m, req, {}));
        const double png0 = now_s();
        NB_TRY(png, encode_png(image_from_tensor(out[0].image, 0), TextChunks{{"parameters", p.prompt}}));
        run.png_s = now_s() - png0;
        run.total_s = now_s() - start;
        run.unet_macs = ops::mac_count();
        (void)png;
        return run;
    };
    say(fmt::format("{}: first image (kernels and weight layouts made on first use)", sc->name));
    NB_TRY(first, image());
    r.parts.push_back({"first image after load", first.total_s, 1, 0});
    const int runs = std::max(1, opt.steps);
    std::vector<Run> timed;
    for (int i = 0; i < runs; ++i) {
        NB_TRY(run, image());
        say(fmt::format("image {}: {:.2f} s", i + 1, run.total_s));
        timed.push_back(run);
    }
    std::sort(timed.begin(), timed.end(), [](const Run& a, const Run& b) { return a.total_s < b.total_s; });
    const Run& med = timed[timed.size() / 2];  // the median image, with its own breakdown
    const double gflop = 2.0 * double(med.unet_macs) / 1e9;
    r.parts.push_back({"whole image", med.total_s, runs, gflop});
    r.parts.push_back({"  text encode", med.phases.encode_s, runs, 0});
    r.parts.push_back({fmt::format("  sampling ({} steps, CFG {})", p.steps, pipeline::format_number(p.cfg_scale)),
                       med.phases.sample_s, runs, 0});
    r.parts.push_back({sc->taesd ? "  decode (TAESD)" : "  decode (VAE)", med.phases.decode_s, runs, 0});
    r.parts.push_back({"  PNG encode", med.png_s, runs, 0});
    const double rest = med.total_s - med.phases.encode_s - med.phases.sample_s - med.phases.decode_s - med.png_s;
    r.parts.push_back({"  other", rest, runs, 0});
    r.peak_rss_mb = peak_rss_mb();
    return r;
}

}  // namespace nb
