// nanobanana: one binary, subcommands (generate, upscale, edit, serve, worker, info, bench, tokenize).
#include <malloc.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "commands.h"

namespace {

// Settings read only at process start-up, so the CLI sets what is missing and starts itself again, once (values
// the user set are kept):
// - OpenMP threads that wait by spinning (libgomp's default) starve when another process shares the cores: a
//   64x64 demo generation took 1.6-3.2 s beside a busy process instead of 0.6-1.1 s with OMP_WAIT_POLICY=PASSIVE
//   (libgomp reads it when it is loaded, before main).
// - glibc.malloc.hugetlb=1 (GLIBC_TUNABLES, read by the dynamic loader) has malloc ask for transparent huge pages
//   for its heap and mapped blocks: the packed weights under 4 MB and oneDNN's buffers then fault in 2 MiB at a
//   time. Loading the fp16 SD 1.5 checkpoint took 1.85 s instead of 4.03 s on a VM where page faults are dear
//   (AMD EPYC Zen 5); peak RSS unchanged.
void restart_with_startup_settings(char** argv) {
    if (std::getenv("NB_NO_REEXEC")) return;
    bool changed = false;
    if (!std::getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        changed = true;
    }
    const char* set_tunables = std::getenv("GLIBC_TUNABLES");
    const std::string tunables = set_tunables ? set_tunables : "";
    if (tunables.find("glibc.malloc.hugetlb") == std::string::npos) {
        setenv("GLIBC_TUNABLES", ((tunables.empty() ? "" : tunables + ":") + "glibc.malloc.hugetlb=1").c_str(), 1);
        changed = true;
    }
    if (!changed) return;
    setenv("NB_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then run on with the defaults
}

// Process-wide allocator tuning belongs to the program, not the library. Large tensors (activations, kernels'
// temporaries, expanded weights) come from the library's activation heap; what glibc still serves are
// oneDNN's own buffers and the packed weights. Blocks from 8 MB are mapped: a big block oneDNN frees while
// creating a step's kernels goes back at once instead of staying resident in the heap (512x512 generate with a
// 64 MB threshold: 26-42 MB free but resident during sampling). Below that they come from the heap, which is not
// trimmed on each free (the library hands free pages back between phases), so the 3.3 and 6.6 MB packing
// buffers that oneDNN's sgemm allocates on every fp32 linear call reuse their pages. With a 1 MB threshold each
// call mapped fresh ones: ~96k page faults per 4-step 512x512 LCM image, which took 12.0-13.7 s instead of
// 10.8 s on a VM where faults are dear (AMD EPYC Zen 5). 512x512 generate peak RSS: 1,815,324 KiB with 8 MB,
// 1,818,856 KiB with 1 MB.
void tune_malloc() {
    mallopt(M_MMAP_THRESHOLD, 8 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace

int main(int argc, char** argv) {
    restart_with_startup_settings(argv);
    tune_malloc();
    // Past a file-size limit (ulimit -f, a quota) a write fails with EFBIG instead of the process being killed
    // mid-write: the writers then remove their temporary file and say why (tests/e2e/faults_test.cpp).
    std::signal(SIGXFSZ, SIG_IGN);
    CLI::App app{"nanobanana: local Stable Diffusion image generation"};
    app.set_version_flag("--version", std::string("nanobanana ") + NB_VERSION);
    app.require_subcommand(1);
    // One line per subcommand (see commands.h).
    const nb::cli::CommandRegistrar registrars[] = {
        nb::cli::register_generate,
        nb::cli::register_info,
        nb::cli::register_bench,
        nb::cli::register_tokenize,
        nb::cli::register_upscale,
        nb::cli::register_serve,
        nb::cli::register_worker,
    };
    std::vector<std::pair<CLI::App*, nb::cli::CommandRunner>> commands;
    for (auto reg : registrars) {
        size_t before = app.get_subcommands({}).size();
        auto run = reg(app);
        commands.emplace_back(app.get_subcommands({})[before], std::move(run));
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        // One line, exit code 2 (bad input), like every other input error.
        std::fprintf(stderr, "nanobanana: %s (see --help)\n", e.what());
        return 2;
    }
    for (auto& [sub, run] : commands)
        if (sub->parsed()) return run();
    return 2;
}
