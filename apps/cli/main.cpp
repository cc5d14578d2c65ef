// nanobanana: one binary, subcommands (generate, upscale, edit, serve, info, bench, tokenize).
#include <cstdio>
#include <vector>

#include "commands.h"

int main(int argc, char** argv) {
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
