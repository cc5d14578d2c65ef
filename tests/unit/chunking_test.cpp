// A1111 75-token chunking vs golden/clip/a1111_conditioning.json (sd_hijack_clip.py, emphasis
// "Original", comma_padding_backtrack 20): tokens, multipliers and token_count of every case.
#include <fstream>
#include <stdexcept>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testutil/golden.h"
#include "text/chunking.h"

namespace nb::text {
namespace {

const ClipTokenizer& tokenizer() {
    static const ClipTokenizer t = [] {
        auto r = ClipTokenizer::load(test::shared_path("assets/tokenizer/bpe_simple_vocab_16e6.txt.gz"));
        if (!r) throw std::runtime_error(r.error().message);  // fails the test (no ../shared?) instead of crashing
        return std::move(*r);
    }();
    return t;
}

TEST(Chunking, AllGoldenCases) {
    std::ifstream in(test::shared_path("golden/clip/a1111_conditioning.json"));
    ASSERT_TRUE(in.good());
    const auto j = nlohmann::json::parse(in);
    ASSERT_GE(j["cases"].size(), 8u);
    for (const auto& c : j["cases"]) {
        const std::string name = c["name"];
        const auto got = tokenize_weighted(tokenizer(), c["prompt"].get<std::string>());
        EXPECT_EQ(got.token_count, c["token_count"].get<int>()) << name;
        ASSERT_EQ(got.chunks.size(), c["tokens"].size()) << name;
        for (std::size_t k = 0; k < got.chunks.size(); ++k) {
            const auto want_tokens = c["tokens"][k].get<std::vector<int>>();
            const auto want_mult = c["multipliers"][k].get<std::vector<double>>();
            ASSERT_EQ(want_tokens.size(), 77u);
            for (std::size_t i = 0; i < 77; ++i) {
                EXPECT_EQ(got.chunks[k].tokens[i], want_tokens[i]) << name << " chunk " << k << " pos " << i;
                EXPECT_EQ(got.chunks[k].multipliers[i], static_cast<float>(want_mult[i]))
                    << name << " chunk " << k << " pos " << i;
            }
        }
    }
}

TEST(Chunking, BreakAtStartAndLongWordsWithoutCommas) {
    // "BREAK" first closes an empty chunk, as A1111 does (2 chunks, the first all padding)
    const auto b = tokenize_weighted(tokenizer(), "BREAK cat");
    ASSERT_EQ(b.chunks.size(), 2u);
    EXPECT_EQ(b.chunks[0].tokens[1], ClipTokenizer::kEos);
    EXPECT_EQ(b.token_count, 76);
    // 80 words, no comma: hard cut at 75
    std::string p;
    for (int i = 0; i < 80; ++i) p += "cat ";
    const auto r = tokenize_weighted(tokenizer(), p);
    ASSERT_EQ(r.chunks.size(), 2u);
    EXPECT_EQ(r.token_count, 80);
    EXPECT_EQ(r.chunks[0].tokens[75], r.chunks[0].tokens[1]);
    EXPECT_EQ(r.chunks[1].tokens[5], 2368);  // fifth "cat" of chunk 2
    EXPECT_EQ(r.chunks[1].tokens[6], ClipTokenizer::kEos);
    // emphasis off: brackets are literal text
    const auto lit = tokenize_weighted(tokenizer(), "(cat:1.5)", {20, false});
    EXPECT_EQ(lit.chunks[0].multipliers[2], 1.0f);
    EXPECT_GT(lit.token_count, 1);
}

}  // namespace
}  // namespace nb::text
