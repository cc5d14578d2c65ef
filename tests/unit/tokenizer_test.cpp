// CLIP BPE tokenizer vs openai/CLIP simple_tokenizer.py ids (assets/tokenizer/clip_cases.json), both
// vocabulary formats, html.unescape, and the vocabulary search order.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testutil/golden.h"
#include "text/clip_tokenizer.h"
#include "text/html_unescape.h"

namespace nb::text {
namespace {

namespace fs = std::filesystem;

const ClipTokenizer& gz_tokenizer() {
    static const ClipTokenizer t = [] {
        auto r = ClipTokenizer::load(test::shared_path("assets/tokenizer/bpe_simple_vocab_16e6.txt.gz"));
        if (!r) throw std::runtime_error(r.error().message);  // fails the test (no ../shared?) instead of crashing
        return std::move(*r);
    }();
    return t;
}

const ClipTokenizer& hf_tokenizer() {
    static const ClipTokenizer t = [] {
        auto r = ClipTokenizer::load(test::shared_path("assets/tokenizer/clip-vit-large-patch14"));
        if (!r) throw std::runtime_error(r.error().message);  // fails the test (no ../shared?) instead of crashing
        return std::move(*r);
    }();
    return t;
}

nlohmann::json cases() {
    std::ifstream in(test::shared_path("assets/tokenizer/clip_cases.json"));
    EXPECT_TRUE(in.good());
    return nlohmann::json::parse(in);
}

std::string ids_str(const std::vector<int>& v) { return nlohmann::json(v).dump(); }

void check_all_cases(const ClipTokenizer& tok) {
    const auto all = cases();
    ASSERT_EQ(all.size(), 35u);
    for (const auto& c : all) {
        const auto& want_json = c.contains("ids_without_ftfy") ? c["ids_without_ftfy"] : c["ids"];
        const auto want = want_json.get<std::vector<int>>();
        const auto got = tok.encode_with_special(c["text"].get<std::string>());
        EXPECT_EQ(ids_str(got), ids_str(want)) << "text: " << c["text"].get<std::string>();
    }
}

TEST(ClipTokenizer, GzMatchesAllCases) { check_all_cases(gz_tokenizer()); }
TEST(ClipTokenizer, HuggingFaceMatchesAllCases) { check_all_cases(hf_tokenizer()); }

TEST(ClipTokenizer, BothFormatsAgreeOnVocabulary) {
    EXPECT_EQ(gz_tokenizer().vocab_size(), 49408u);
    EXPECT_EQ(hf_tokenizer().vocab_size(), 49408u);
    EXPECT_EQ(gz_tokenizer().comma_id(), 267);
    EXPECT_EQ(hf_tokenizer().comma_id(), 267);
}

TEST(ClipTokenizer, EncodeHasNoSpecialTokensAndCaches) {
    const auto& t = gz_tokenizer();
    EXPECT_EQ(ids_str(t.encode("a photo of a cat")), "[320,1125,539,320,2368]");
    EXPECT_EQ(ids_str(t.encode("A PHOTO of a cat")), "[320,1125,539,320,2368]");  // cached path
    EXPECT_TRUE(t.encode("").empty());
    EXPECT_TRUE(t.encode(" \t\n ").empty());
}

TEST(ClipTokenizer, LoadErrorsNameTheFile) {
    auto missing = ClipTokenizer::load("/nonexistent/vocab.json");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("/nonexistent/vocab.json"), std::string::npos);
    const std::string bad = ::testing::TempDir() + "/bad_vocab.txt.gz";
    std::ofstream(bad) << "not gzip at all";
    auto r = ClipTokenizer::load(bad);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("bad_vocab.txt.gz"), std::string::npos);
}

TEST(HtmlUnescape, MatchesPython) {
    EXPECT_EQ(html_unescape("a &amp; b"), "a & b");
    EXPECT_EQ(html_unescape("&amp;amp;"), "&amp;");  // one level per call
    EXPECT_EQ(html_unescape("&lt;3 &gt"), "<3 >");
    EXPECT_EQ(html_unescape("&#65;&#x42;&#X43"), "ABC");
    EXPECT_EQ(html_unescape("&#128;&#0;"), "\u20AC\uFFFD");
    EXPECT_EQ(html_unescape("&#1;x&#xD800;"), "x\uFFFD");
    EXPECT_EQ(html_unescape("&ampxyz; &notit; &hellip; &bogus; & &#;"), "&xyz; \u00ACit; \u2026 &bogus; & &#;");
    EXPECT_EQ(html_unescape("caf&eacute;"), "caf\u00E9");
}

TEST(ClipTokenizer, HtmlEntitiesAreUnescapedTwice) {
    const auto& t = gz_tokenizer();
    EXPECT_EQ(ids_str(t.encode("tom &amp;amp; jerry")), ids_str(t.encode("tom & jerry")));
}

// Sets an environment variable for the scope of a test.
struct EnvGuard {
    std::string name;
    std::optional<std::string> old;
    EnvGuard(std::string n, const std::string& value) : name(std::move(n)) {
        if (const char* v = std::getenv(name.c_str())) old = v;
        if (value.empty()) ::unsetenv(name.c_str());
        else ::setenv(name.c_str(), value.c_str(), 1);
    }
    ~EnvGuard() {
        if (old) ::setenv(name.c_str(), old->c_str(), 1);
        else ::unsetenv(name.c_str());
    }
};

TEST(FindVocab, OrderAndErrors) {
    const fs::path root = fs::path(::testing::TempDir()) / "nb_find_vocab";
    fs::remove_all(root);
    fs::create_directories(root / "model" / "tokenizer");
    fs::create_directories(root / "data" / "nanobanana");
    fs::create_directories(root / "files");
    for (const auto& p : {root / "model" / "tokenizer" / "vocab.json", root / "model" / "tokenizer" / "merges.txt",
                          root / "files" / "m.vocab.json", root / "files" / "merges.txt",
                          root / "files" / "m.safetensors", root / "data" / "nanobanana" / "bpe_simple_vocab_16e6.txt.gz"})
        std::ofstream(p) << "x";
    EnvGuard no_env("NB_VOCAB", ""), xdg("XDG_DATA_HOME", (root / "data").string()), home("HOME", root.string());

    EXPECT_EQ(*find_vocab((root / "files" / "merges.txt").string(), (root / "model").string()),
              (root / "files" / "merges.txt").string());
    EXPECT_FALSE(find_vocab((root / "nope").string(), ""));
    EXPECT_EQ(*find_vocab("", (root / "model").string()), (root / "model" / "tokenizer").string());
    EXPECT_EQ(*find_vocab("", (root / "model" / "unet").string()), (root / "model" / "tokenizer").string());
    EXPECT_EQ(*find_vocab("", (root / "files" / "m.safetensors").string()), (root / "files" / "m.vocab.json").string());
    EXPECT_EQ(*find_vocab("", ""), (root / "data" / "nanobanana" / "bpe_simple_vocab_16e6.txt.gz").string());
    {
        EnvGuard env("NB_VOCAB", (root / "files" / "m.vocab.json").string());
        EXPECT_EQ(*find_vocab("", (root / "model").string()), (root / "files" / "m.vocab.json").string());
    }
    fs::remove(root / "data" / "nanobanana" / "bpe_simple_vocab_16e6.txt.gz");
    auto err = find_vocab("", (root / "elsewhere" / "x.safetensors").string());
    ASSERT_FALSE(err);
    for (const char* where : {"NB_VOCAB", "elsewhere/tokenizer/vocab.json", "x.vocab.json",
                              "data/nanobanana/bpe_simple_vocab_16e6.txt.gz", "/usr/share/nanobanana/clip/vocab.json"})
        EXPECT_NE(err.error().message.find(where), std::string::npos) << where << " in: " << err.error().message;
}

}  // namespace
}  // namespace nb::text
