#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <string>

#include "pipeline/infotext.h"

namespace nb::pipeline {
namespace {

TEST(Infotext, FormatsLikeA1111) {
    Infotext it;
    it.prompt = "a photo of a (red:1.3) cat";
    it.negative_prompt = "blurry";
    it.set("Steps", "20");
    it.set("Sampler", "DPM++ 2M");
    it.set("Schedule type", "Karras");
    it.set("CFG scale", format_number(7.0));
    it.set("Seed", "42");
    it.set("Size", "512x512");
    it.set("Model", "my, model");
    EXPECT_EQ(it.format(),
              "a photo of a (red:1.3) cat\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, "
              "CFG scale: 7, Seed: 42, Size: 512x512, Model: \"my, model\"");
}

TEST(Infotext, ParsesBackIncludingMultilinePrompts) {
    Infotext it;
    it.prompt = "line one\nline two";
    it.set("Steps", "8");
    it.set("Sampler", "Euler a");
    it.set("CFG scale", format_number(7.5));
    it.set("Lora hashes", "a: 0123456789ab, b: ba9876543210");
    Infotext back = Infotext::parse(it.format());
    EXPECT_EQ(back.prompt, it.prompt);
    EXPECT_EQ(back.negative_prompt, "");
    EXPECT_EQ(back.params, it.params);
    EXPECT_EQ(back.get("CFG scale"), "7.5");
}

// fuzz/regressions/infotext: a value that needs quoting (',' or ':') with bytes that are not UTF-8 made
// nlohmann::json throw out of format(); A1111 (Python str) cannot hold such bytes, so they become U+FFFD.
TEST(Infotext, InvalidUtf8InAQuotedValueIsReplacedNotThrown) {
    Infotext it;
    it.prompt = "p";
    it.set("Model", std::string("bad\xff, name"));
    std::string text;
    ASSERT_NO_THROW(text = it.format());
    EXPECT_EQ(Infotext::parse(text + ", Steps: 1, Seed: 2").get("Model"), "bad\xef\xbf\xbd, name");
}

// scan_params finds what A1111's re_param finds (std::regex, findall semantics) on short lines made of the
// characters that matter to it: key characters, separators, quotes, escapes, a carriage return, a UTF-8 byte.
TEST(Infotext, ScanParamsFindsWhatA1111sRegexFinds) {
    const std::regex re(R"re(\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$))re");
    const std::string alphabet = "ab_ 9-/:,\"\\\r\t\xc3";
    std::mt19937 rng(7);
    int with_matches = 0;
    for (int n = 0; n < 20000; ++n) {
        std::string line;
        const int len = int(rng() % 40);
        for (int i = 0; i < len; ++i) line += alphabet[rng() % alphabet.size()];
        std::vector<std::pair<std::string, std::string>> want;
        for (auto m = std::sregex_iterator(line.begin(), line.end(), re); m != std::sregex_iterator(); ++m)
            want.emplace_back((*m)[1].str(), (*m)[2].str());
        with_matches += !want.empty();
        ASSERT_EQ(scan_params(line), want) << "line: " << line;
    }
    EXPECT_GT(with_matches, 2000);  // the lines exercise matches, not only their absence
    // Cases too rare for the random lines: an escaped carriage return ('.' does not match it) or a backslash at the
    // end inside a quote with a comma after it, escaped quotes, an empty quote.
    for (std::string line : {"ab: \"x\\\r,y\", cd: 1", "ab: \"x\\", "ab: \"x\\\"y\", cd: \"\"", "ab: \"x\\\",y\",cd:2",
                             " ab c-d/e :  \"q\"  , fg: h"}) {
        std::vector<std::pair<std::string, std::string>> want;
        for (auto m = std::sregex_iterator(line.begin(), line.end(), re); m != std::sregex_iterator(); ++m)
            want.emplace_back((*m)[1].str(), (*m)[2].str());
        EXPECT_EQ(scan_params(line), want) << "line: " << line;
    }
}

// A value or a line of hundreds of KB (10,000 LoRA tags give a "Lora hashes" value of ~300 KB) parses: the regex
// matcher this replaced recursed per character and overflowed the stack, killing the server.
TEST(Infotext, HugeValuesAndLinesParseWithoutRecursion) {
    std::string hashes;
    for (int i = 0; i < 10000; ++i) hashes += (i ? ", " : "") + std::string("demo_monochrome: 0123456789ab");
    Infotext it;
    it.prompt = "x";
    it.set("Steps", "1");
    it.set("Seed", "2");
    it.set("Lora hashes", hashes);
    const Infotext back = Infotext::parse(it.format());
    EXPECT_EQ(back.get("Lora hashes"), hashes);
    EXPECT_EQ(back.get("Seed"), "2");
    // 1 MB of key characters without a ':' (every start position fails the same way) and 1 MB of unclosed quote.
    EXPECT_TRUE(scan_params(std::string(1 << 20, 'a')).empty());
    const std::string open_quote = "Ab: 1, Bc: 2, Cd: \"" + std::string(1 << 20, 'q');
    const auto found = scan_params(open_quote);
    ASSERT_EQ(found.size(), 3u);
    EXPECT_EQ(found[2].second.size(), (1u << 20) + 1);  // no closing quote: the value runs to the end, as [^,]*
}

}  // namespace
}  // namespace nb::pipeline
