#include <gtest/gtest.h>

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

}  // namespace
}  // namespace nb::pipeline
