// nanobanana: one binary, subcommands (generate, upscale, edit, serve, info, bench, tokenize).
#include <cstdio>

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
    CLI::App app{"nanobanana: local Stable Diffusion image generation"};
    app.set_version_flag("--version", std::string("nanobanana ") + NB_VERSION);
    app.require_subcommand(1);
    CLI11_PARSE(app, argc, argv);
    return 0;
}
