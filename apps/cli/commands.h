// Each subcommand lives in its own cmd_<name>.cpp and registers itself here; main.cpp only dispatches.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "nanobanana/engine.h"

namespace nb::cli {

// Exit codes: 0 ok, 1 failure while working, 2 bad input (flags, files, models), 130 interrupted.
inline int exit_code(const Error& e) {
    switch (e.code) {
        case Errc::cancelled: return 130;
        case Errc::internal: return 1;
        default: return 2;
    }
}

// Adds the subcommand to `app` and returns the function to run when it was chosen (returns the exit code).
using CommandRunner = std::function<int()>;
using CommandRegistrar = CommandRunner (*)(CLI::App& app);

CommandRunner register_tokenize(CLI::App& app);
CommandRunner register_generate(CLI::App& app);
CommandRunner register_info(CLI::App& app);
CommandRunner register_upscale(CLI::App& app);
CommandRunner register_serve(CLI::App& app);
CommandRunner register_worker(CLI::App& app);

// The demo model shipped with the project (models/demo): <exe>/../share/nanobanana/demo (installed layout),
// <exe>/../../share/nanobanana/demo (build tree: <build>/apps/cli/nanobanana), then the source tree; "" if none.
std::string find_demo_model();
// Its default picture size (it was trained at 64x64 and 32x32).
inline constexpr int kDemoSize = 64;

// An output file we can write: a .png name in an existing, writable folder. `flag` names the option in errors.
// Checked before any model loads, so a typo does not cost a whole generation.
Result<void> check_output_png(const std::string& path, const char* flag);

// cmd_upscale.cpp: writes a generated image, first upscaled with `up` when not null (generate --upscale-model).
Result<void> save_generated(const std::string& path, const Image& img, const std::string& parameters,
                            const Upscaler* up, const UpscaleParams& p);
CommandRunner register_bench(CLI::App& app);

}  // namespace nb::cli
