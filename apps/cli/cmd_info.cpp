// `nanobanana info FILE`: a checkpoint's layout, or the A1111 parameters stored in a PNG.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "nanobanana/engine.h"

namespace nb::cli {

CommandRunner register_info(CLI::App& app) {
    auto path = std::make_shared<std::string>();
    auto* s = app.add_subcommand("info", "Describe a checkpoint, or print the generation parameters of a PNG");
    s->add_option("file", *path, "Model (.safetensors, diffusers folder, .ckpt), LoRA .safetensors, or PNG image")->required();
    return [path] {
        const bool png = path->size() > 4 && path->substr(path->size() - 4) == ".png";
        auto text = png                  ? read_png_parameters(*path)
                    : is_lora_file(*path) ? describe_lora(*path)
                                          : describe_checkpoint(*path);
        // No Stable Diffusion part in it: perhaps an upscaler (Real-ESRGAN .pth / .safetensors).
        if (text && !png && text->find("\nUNet: absent") != std::string::npos &&
            text->find("\ntext encoder (CLIP): absent") != std::string::npos) {
            if (auto up = Upscaler::load(*path)) {
                const std::string head = text->substr(0, text->find("\ntext encoder (CLIP)") + 1);
                text = head + "architecture: upscaler " + (*up)->describe() +
                       "\nscale: x" + std::to_string((*up)->native_scale()) + "\n";
            }
        }
        if (!text) {
            std::fprintf(stderr, "nanobanana: %s\n", text.error().message.c_str());
            return exit_code(text.error());
        }
        if (png && text->empty()) {
            std::fprintf(stderr, "nanobanana: %s: no A1111 'parameters' text chunk\n", path->c_str());
            return 2;
        }
        std::printf("%s\n", text->c_str());
        return 0;
    };
}

}  // namespace nb::cli
