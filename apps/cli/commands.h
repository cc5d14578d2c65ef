// Each subcommand lives in its own cmd_<name>.cpp and registers itself here; main.cpp only dispatches.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace nb::cli {

// Adds the subcommand to `app` and returns the function to run when it was chosen (returns the exit code).
using CommandRunner = std::function<int()>;
using CommandRegistrar = CommandRunner (*)(CLI::App& app);

CommandRunner register_tokenize(CLI::App& app);
CommandRunner register_generate(CLI::App& app);
CommandRunner register_info(CLI::App& app);
CommandRunner register_bench(CLI::App& app);

}  // namespace nb::cli
