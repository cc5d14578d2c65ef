// `nanobanana tokenize [--vocab PATH] TEXT`: prints the CLIP ids with BOS/EOS as a one-line JSON array,
// then `tokens: N` (N without BOS/EOS). Errors: one line `nanobanana: <message>` on stderr, exit 2.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"

namespace nb::cli {

namespace {

struct TokenizeArgs {
    std::string text;
    std::string vocab;
};

int run_tokenize(const TokenizeArgs& args) {
    auto ids = tokenize(args.text, args.vocab);
    if (!ids && args.vocab.empty()) {
        // No vocabulary installed or named: the demo model's own (as `generate` without -m uses).
        const std::string demo = find_demo_model();
        if (!demo.empty())
            if (auto d = tokenize(args.text, "", demo)) {
                std::fprintf(stderr, "no --vocab given: using the demo model's vocabulary\n");
                ids = std::move(d);
            }
    }
    if (!ids) {
        std::fprintf(stderr, "nanobanana: %s\n", ids.error().message.c_str());
        return exit_code(ids.error());
    }
    std::string line = "[";
    for (std::size_t i = 0; i < ids->size(); ++i) line += (i ? ", " : "") + std::to_string((*ids)[i]);
    line += "]";
    std::printf("%s\ntokens: %zu\n", line.c_str(), ids->size() - 2);
    return 0;
}

}  // namespace

CommandRunner register_tokenize(CLI::App& app) {
    auto* sub = app.add_subcommand("tokenize", "Print the CLIP token ids of a text as JSON");
    auto args = std::make_shared<TokenizeArgs>();
    sub->add_option("text", args->text, "Text to tokenize")->required();
    sub->add_option("--vocab", args->vocab,
                    "CLIP vocabulary: bpe_simple_vocab_16e6.txt.gz, vocab.json/merges.txt or their folder "
                    "(default: NB_VOCAB, the data dirs, then the demo model's)");
    return [args] { return run_tokenize(*args); };
}

}  // namespace nb::cli
