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

// cmd_upscale.cpp: writes a generated image, first upscaled with `up` when not null (generate --upscale-model).
Result<void> save_generated(const std::string& path, const Image& img, const std::string& parameters,
                            const Upscaler* up, const UpscaleParams& p);
CommandRunner register_bench(CLI::App& app);

}  // namespace nb::cli
