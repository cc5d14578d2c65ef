// CLIP BPE tokenizer + A1111 75-token chunking (text/clip_tokenizer, text/chunking) on the demo model's
// vocabulary (models/demo, found through NB_FUZZ_VOCAB_DIR or the source tree), for any prompt bytes
// (invalid UTF-8, HTML entities, emphasis, BREAK, long prompts).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "../fuzz_input.h"
#include "text/chunking.h"
#include "text/clip_tokenizer.h"

#ifndef NB_FUZZ_VOCAB_DIR
#define NB_FUZZ_VOCAB_DIR "models/demo"
#endif

namespace {
const nb::text::ClipTokenizer& tokenizer() {
    static const nb::text::ClipTokenizer tok = [] {
        const char* dir = std::getenv("NB_FUZZ_VOCAB_DIR");
        std::string d = dir ? dir : NB_FUZZ_VOCAB_DIR;
        auto t = nb::text::ClipTokenizer::load_hf(d + "/vocab.json", d + "/merges.txt");
        nb::fuzz::require(bool(t), "the demo vocabulary loads");
        return std::move(*t);
    }();
    return tok;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto& tok = tokenizer();
    auto ids = tok.encode(text);
    for (int id : ids) nb::fuzz::require(id >= 0 && size_t(id) < tok.vocab_size(), "token ids are in the vocabulary");
    auto chunks = nb::text::tokenize_weighted(tok, text);
    nb::fuzz::require(!chunks.chunks.empty(), "at least one chunk");
    for (const auto& c : chunks.chunks)
        for (float m : c.multipliers) nb::fuzz::require(m == m, "multipliers are numbers");
    return 0;
}
