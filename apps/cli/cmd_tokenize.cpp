// `nanobanana tokenize [--vocab PATH] TEXT`: placeholder until the tokenizer lands (src/text).
#include "commands.h"

namespace nb::cli {

CommandRunner register_tokenize(CLI::App& app) {
    auto* sub = app.add_subcommand("tokenize", "Print the CLIP token ids of a text as JSON");
    auto text = std::make_shared<std::string>();
    sub->add_option("text", *text, "Text to tokenize")->required();
    return [text] {
        std::fprintf(stderr, "nanobanana: tokenize: not implemented yet\n");
        return 1;
    };
}

}  // namespace nb::cli
