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
#include "backend/weights.h"
#include "nanobanana/engine.h"
#include "pipeline/conditioning.h"
#include "pipeline/denoiser.h"
#include "pipeline/options.h"
#include "pipeline/random_checkpoint.h"
#include "pipeline/stages.h"

namespace nb {

Result<BenchReport> run_scenario(const BenchOptions& opt, const BenchLog& log);  // bench_scenario.cpp
std::string cpu_model();                                                        // bench_scenario.cpp

namespace {

constexpr std::pair<const char*, ops::OpClass> kOpClasses[] = {
    {"linear", ops::kLinear}, {"conv", ops::kConv}, {"attention", ops::kAttention}};

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

// A square fp32-in, fp32-out matmul through ops::linear (oneDNN, the bench's precision), big enough to run at
// the kernels' best: GFLOP/s of the fastest of 5 runs after a warm-up.
double matmul_peak_gflops() {
    constexpr int64_t n = 2048;
    Tensor x = Tensor::empty({n, n}), w = Tensor::empty({n, n});
    std::mt19937 g(1);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (auto* t : {&x, &w})
        for (auto& v : t->span()) v = u(g);
    ops::prepack_linear(w);
    Tensor y = ops::linear(x, w, Tensor());
    double best = 1e30;
    for (int i = 0; i < 5; ++i) {
        const double t0 = now_s();
        y = ops::linear(x, w, Tensor());
        best = std::min(best, now_s() - t0);
    }
    return 2.0 * double(n) * double(n) * double(n) / best / 1e9;
}

}  // namespace

Result<backend::Settings> bench_settings(const BenchOptions& opt) {
    NB_TRY(precision, parse_precision(opt.precision));
    NB_TRY(storage, parse_weight_type(opt.weight_type));
    if (storage == ops::WeightStorage::q8_0 && precision == PrecisionMode::bf16)
        return make_error(Errc::invalid_argument, "weight type q8_0 needs --precision fp32 (bf16 keeps bf16 weights)");
    backend::Settings settings;  // bench's own context, as an engine's, current on this thread
    unsigned mask = ops::kAllOps;
    for (const auto& [name, bit] : kOpClasses)
        if (opt.bf16_ops.find(name) == std::string::npos) mask &= ~unsigned(bit);
    apply_precision(precision, mask, settings);  // --bf16-ops applies to --precision bf16
    settings.threads = opt.threads;
    return settings;
}

BenchReport bench_report(const BenchOptions& opt, const std::string& path) {
    BenchReport r;
    r.model = path;
    r.cpu = cpu_model();
    r.threads = ops::num_threads();
    r.precision = ops::precision() == ops::Precision::bf16 ? "bf16" : "fp32";
    if (ops::precision() == ops::Precision::bf16 && ops::bf16_ops() != ops::kAllOps) {
        std::string in_bf16;
        for (const auto& [name, bit] : kOpClasses)
            if (ops::bf16_ops() & bit) in_bf16 += (in_bf16.empty() ? "" : ",") + std::string(name);
        r.precision += " (" + in_bf16 + "; the rest fp32)";
    }
    r.weight_type = opt.weight_type.empty() ? "auto" : opt.weight_type;
    r.width = opt.width;
    r.height = opt.height;
    return r;
}

double peak_rss_mb() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_maxrss) / 1024.0;
}

Result<BenchReport> run_benchmark(const BenchOptions& opt, const BenchLog& log) {
    auto say = [&](const std::string& s) {
        if (log) log(s);
    };
    if (opt.width % 8 || opt.height % 8 || opt.width <= 0 || opt.height <= 0)
        return make_error(Errc::invalid_argument, "bench size must be positive multiples of 8 (got {}x{})", opt.width,
                          opt.height);
    if (!opt.scenario.empty()) return run_scenario(opt, log);
    NB_TRY(settings, bench_settings(opt));
    NB_TRY(storage, parse_weight_type(opt.weight_type));
    backend::Context ctx(settings);
    backend::Scope scope(ctx);
    std::string path = opt.model_path;
    if (path.empty()) {
        NB_TRY(p, pipeline::ensure_random_checkpoint(opt.random_layout, say));
        path = p;
    }
    BenchReport r = bench_report(opt, path);
    if (opt.peak) {
        r.peak_gflops = matmul_peak_gflops();
        say(fmt::format("matmul peak ({}): {:.0f} GFLOP/s", r.precision, r.peak_gflops));
    }
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
            if (o.macs > 0 && o.seconds > 0) {
                const double gflops = 2e-9 * double(o.macs) / o.seconds;
                line += fmt::format("  {:7.1f} GFLOP  {:6.1f} GFLOP/s", 2e-9 * double(o.macs) / runs, gflops);
                if (r.peak_gflops > 0) line += fmt::format("  {:3.0f} % of peak", 100.0 * gflops / r.peak_gflops);
            }
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
