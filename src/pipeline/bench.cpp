// `nanobanana bench`: what one generation costs, per component, on this machine. Work is counted by the
// kernels themselves (ops::mac_count), so GFLOP/s needs no hand-written model formula.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>

#include <algorithm>
#include <chrono>
#include <random>

#include <fmt/format.h>

#include "backend/context.h"
#include "backend/ops.h"
#include "nanobanana/engine.h"
#include "pipeline/conditioning.h"
#include "pipeline/denoiser.h"
#include "pipeline/random_checkpoint.h"
#include "pipeline/stages.h"

namespace nb {

Result<ops::Precision> parse_precision(const std::string& name);     // engine.cpp
Result<ops::WeightStorage> parse_weight_type(const std::string& name);  // engine.cpp

namespace {

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double current_rss_mb() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        std::fclose(f);
    }
    return double(resident) * double(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

double peak_rss_mb() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_maxrss) / 1024.0;
}

// Times `fn` `runs` times; returns the median and the work of one run.
template <class F>
BenchPart time_part(const std::string& name, int runs, F&& fn) {
    std::vector<double> t;
    int64_t macs = 0;
    for (int i = 0; i < runs; ++i) {
        ops::reset_mac_count();
        const double t0 = now_s();
        fn();
        t.push_back(now_s() - t0);
        macs = ops::mac_count();
    }
    std::sort(t.begin(), t.end());
    return {name, t[t.size() / 2], runs, 2.0 * double(macs) / 1e9};
}

}  // namespace

Result<BenchReport> run_benchmark(const BenchOptions& opt, const BenchLog& log) {
    auto say = [&](const std::string& s) {
        if (log) log(s);
    };
    if (opt.width % 8 || opt.height % 8 || opt.width <= 0 || opt.height <= 0)
        return make_error(Errc::invalid_argument, "bench size must be positive multiples of 8 (got {}x{})", opt.width,
                          opt.height);
    NB_TRY(precision, parse_precision(opt.precision));
    NB_TRY(storage, parse_weight_type(opt.weight_type));
    if (storage == ops::WeightStorage::q8_0 && precision != ops::Precision::fp32)
        return make_error(Errc::invalid_argument, "weight type q8_0 needs --precision fp32 (bf16 keeps bf16 weights)");
    backend::Settings settings;  // bench's own context, as an engine's, current on this thread
    settings.precision = precision;
    settings.threads = opt.threads;
    backend::Context ctx(settings);
    backend::Scope scope(ctx);
    std::string path = opt.model_path;
    if (path.empty()) {
        NB_TRY(p, pipeline::ensure_random_sd15(say));
        path = p;
    }
    BenchReport r;
    r.model = path;
    r.threads = ops::num_threads();
    r.precision = ops::precision() == ops::Precision::bf16 ? "bf16" : "fp32";
    r.weight_type = opt.weight_type.empty() ? "auto" : opt.weight_type;
    r.width = opt.width;
    r.height = opt.height;
    say("loading " + path);
    const double t0 = now_s();
    NB_TRY(m, pipeline::SDModel::load(path, opt.vocab_path, false, storage));
    r.load_s = now_s() - t0;
    say(fmt::format("loaded in {:.2f} s: RSS {:.0f} MB, peak so far {:.0f} MB", r.load_s, current_rss_mb(), peak_rss_mb()));

    pipeline::Conditioning cond;  // as generate builds it (SDXL: with the vector for this size)
    r.parts.push_back(time_part("text encode (cond + uncond)", 1, [&] {
        cond = pipeline::encode_conditioning(*m, "a photo of an astronaut riding a horse on mars, highly detailed", "",
                                             1, 1, {opt.height, opt.width});
    }));
    say(fmt::format("text encode: {:.2f} s", r.parts.back().median_s));

    // As generate runs it: cond and uncond batched or one after the other, by size.
    const bool batched = pipeline::batch_cond_uncond_for(int64_t(opt.height / 8) * (opt.width / 8));
    auto den = pipeline::make_cfg_denoiser(*m, cond.cond, cond.uncond, {7.f, {}, {}, batched});
    Tensor x = Tensor::empty({1, 4, opt.height / 8, opt.width / 8});
    std::mt19937 g(0);
    std::normal_distribution<float> nd;
    for (auto& v : x.span()) v = nd(g) * 14.6f;
    int step = 0;
    Tensor warm = den(x, 14.6f);  // first call creates kernels and reorders weights: not timed
    say("unet warm-up step done");
    const float sigmas[] = {14.6f, 9.7f, 6.6f, 4.6f, 3.2f, 2.2f, 1.5f, 1.0f};
    ops::set_profiling(opt.profile);
    ops::take_profile();
    r.parts.push_back(time_part(batched ? "unet step (cond + uncond batch)" : "unet step (cond, uncond)",
                                std::max(1, opt.steps), [&] {
        Tensor d = den(x, sigmas[step++ % 8]);
        say(fmt::format("unet step {}", step));
    }));
    say(fmt::format("unet step: {:.2f} s; RSS {:.0f} MB, peak so far {:.0f} MB", r.parts.back().median_s,
                    current_rss_mb(), peak_rss_mb()));
    // Where a part's time went, per op, averaged over its runs.
    auto take_profile = [&](const std::string& part, int runs) {
        if (!opt.profile) return;
        auto prof = ops::take_profile();
        std::sort(prof.begin(), prof.end(), [](auto& a, auto& b) { return a.seconds > b.seconds; });
        r.profile.push_back(part + ":");
        for (const auto& o : prof) {
            std::string line = fmt::format("  {:<16} {:8.3f} s  {:4} calls", o.op, o.seconds / runs, o.calls / runs);
            if (o.macs > 0 && o.seconds > 0)
                line += fmt::format("  {:7.1f} GFLOP  {:6.1f} GFLOP/s", 2e-9 * double(o.macs) / runs,
                                    2e-9 * double(o.macs) / o.seconds);
            r.profile.push_back(std::move(line));
        }
    };
    take_profile("unet step, per step", std::max(1, opt.steps));

    Tensor latent = x.clone();
    ops::scale_(latent, 0.05f);
    r.parts.push_back(time_part("vae decode", 1, [&] { Tensor img = m->vae.decode_auto(latent); }));
    say(fmt::format("vae decode: {:.2f} s", r.parts.back().median_s));
    take_profile("vae decode", 1);
    if (!opt.taesd.empty()) {
        NB_TRY(tiny, taesd::Model::load(opt.taesd));
        if (!tiny.has_decoder() || tiny.config().latent_channels != latent.dim(1))
            return make_error(Errc::invalid_argument, "bench --taesd: {} is not a decoder for {}-channel latents",
                              opt.taesd, latent.dim(1));
        r.parts.push_back(time_part("taesd decode", 1, [&] { Tensor img = tiny.decode(latent); }));
        say(fmt::format("taesd decode: {:.2f} s", r.parts.back().median_s));
        take_profile("taesd decode", 1);
    }
    ops::set_profiling(false);
    r.peak_rss_mb = peak_rss_mb();
    return r;
}

}  // namespace nb
