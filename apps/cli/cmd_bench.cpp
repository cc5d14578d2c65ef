// `nanobanana bench`: per-component medians, achieved GFLOP/s, peak RSS and thread count (--json for machines).
#include <cstdio>
#include <cstdlib>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "nanobanana/engine.h"

namespace nb::cli {

CommandRunner register_bench(CLI::App& app) {
    auto o = std::make_shared<BenchOptions>();
    auto json = std::make_shared<bool>(false);
    auto* s = app.add_subcommand("bench", "Time text encode, UNet steps and VAE decode on a model");
    s->add_option("-m,--model", o->model_path, "Checkpoint (default: a random-weight checkpoint, see --random)");
    s->add_option("--random", o->random_layout,
                  "Without -m: the random-weight checkpoint's layout, sd15 or sd2 (768-v; written once to the cache)")
        ->check(CLI::IsMember({"sd15", "sd2"}))
        ->capture_default_str();
    s->add_option("--vocab", o->vocab_path, "CLIP vocabulary");
    s->add_option("-W,--width", o->width, "Width")->capture_default_str();
    s->add_option("-H,--height", o->height, "Height")->capture_default_str();
    s->add_option("--steps", o->steps, "UNet CFG steps to time (median reported)")->capture_default_str();
    s->add_option("-t,--threads", o->threads, "Threads (0 = all cores)")->capture_default_str();
    s->add_option("--precision", o->precision, "auto, bf16 or fp32")->capture_default_str();
    s->add_option("--type", o->weight_type, "UNet weights in memory: auto, f32 or q8_0")->capture_default_str();
    s->add_option("--taesd", o->taesd, "Also time this TAESD decoder's decode of the same latent");
    s->add_option("--scenario", o->scenario,
                  "Time a whole image instead: lcm4-taesd (4-step LCM, CFG 1, TAESD; a random-weight TAESD without "
                  "--taesd), lcm4 (the same with the VAE) or dpm20 (20-step DPM++ 2M Karras, CFG 7); --steps is then "
                  "the number of timed images");
    s->add_option("--cache-mode", o->cache_mode, "Step caching for --scenario: none or deepcache");
    s->add_option("--cache-interval", o->cache_interval, "deepcache interval")->capture_default_str();
    s->add_flag("--profile", o->profile, "Also print where the UNet step's and the VAE decode's time goes, per op");
    s->add_option("--bf16-ops", o->bf16_ops,
                  "With --precision bf16: the op classes run in bf16 (of linear,conv,attention; the rest fp32)")
        ->capture_default_str();
    s->add_flag("--peak", o->peak,
                "Measure the matmul peak (GFLOP/s) on the spot; with --profile each op class's share of it");
    s->add_flag("--json", *json, "Print the report as JSON");
    return [o, json] {
        auto r = run_benchmark(*o, [&](const std::string& m) { std::fprintf(stderr, "%s\n", m.c_str()); });
        if (!r) {
            std::fprintf(stderr, "nanobanana: %s\n", r.error().message.c_str());
            return exit_code(r.error());
        }
        // The process's start-up tuning (main.cpp), part of what a figure was measured with.
        const char* set_tunables = std::getenv("GLIBC_TUNABLES");
        const std::string tunables = set_tunables ? set_tunables : "";
        if (*json) {
            nlohmann::json j = {{"model", r->model}, {"cpu", r->cpu}, {"glibc_tunables", tunables}, {"scenario", r->scenario}, {"threads", r->threads}, {"precision", r->precision}, {"weight_type", r->weight_type}, {"width", r->width},
                                {"height", r->height}, {"load_s", r->load_s}, {"peak_rss_mb", r->peak_rss_mb}};
            for (const auto& p : r->parts)
                j["parts"].push_back({{"name", p.name}, {"median_s", p.median_s}, {"runs", p.runs}, {"gflop", p.gflop},
                                      {"gflops", p.median_s > 0 ? p.gflop / p.median_s : 0}});
            if (!r->profile.empty()) j["profile"] = r->profile;  // one line per op, slowest first
            if (r->peak_gflops > 0) j["peak_gflops"] = r->peak_gflops;
            std::printf("%s\n", j.dump(2).c_str());
            return 0;
        }
        std::printf("model: %s\ncpu: %s\nglibc tunables: %s\n", r->model.c_str(), r->cpu.c_str(), tunables.c_str());
        if (!r->scenario.empty()) std::printf("scenario: %s\n", r->scenario.c_str());
        std::printf("size: %dx%d, threads: %d, precision: %s, weights: %s\nload: %.2f s\n", r->width, r->height,
                    r->threads, r->precision.c_str(), r->weight_type.c_str(), r->load_s);
        for (const auto& p : r->parts)
            if (p.gflop > 0)
                std::printf("%-32s %8.3f s  (median of %d)  %8.1f GFLOP  %7.1f GFLOP/s\n", p.name.c_str(), p.median_s,
                            p.runs, p.gflop, p.median_s > 0 ? p.gflop / p.median_s : 0);
            else
                std::printf("%-32s %8.3f s  (median of %d)\n", p.name.c_str(), p.median_s, p.runs);
        std::printf("peak RSS: %.0f MB\n", r->peak_rss_mb);
        if (r->peak_gflops > 0) std::printf("matmul peak (2048^3 linear): %.0f GFLOP/s\n", r->peak_gflops);
        for (const auto& l : r->profile) std::printf("  %s\n", l.c_str());
        return 0;
    };
}

}  // namespace nb::cli
