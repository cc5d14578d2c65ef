// A1111 prompt syntax vs golden/prompt/prompt_cases.json (prompt_parser.py run with lark 1.1.5) and the
// <lora:...> extra-network tags.
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testutil/golden.h"
#include "text/prompt.h"

namespace nb::text {
namespace {

const nlohmann::json& golden() {
    static const nlohmann::json j = [] {
        std::ifstream in(test::shared_path("golden/prompt/prompt_cases.json"));
        EXPECT_TRUE(in.good()) << "prompt_cases.json missing";
        return nlohmann::json::parse(in);
    }();
    return j;
}

TEST(PromptAttention, AllGoldenCases) {
    const auto& cases = golden()["parse_prompt_attention"];
    ASSERT_GE(cases.size(), 30u);
    for (const auto& c : cases) {
        const std::string prompt = c["prompt"];
        const auto got = parse_prompt_attention(prompt);
        const auto& want = c["parsed"];
        ASSERT_EQ(got.size(), want.size()) << "prompt: " << prompt;
        for (std::size_t i = 0; i < got.size(); ++i) {
            EXPECT_EQ(got[i].text, want[i][0].get<std::string>()) << "prompt: " << prompt << " item " << i;
            EXPECT_NEAR(got[i].weight, want[i][1].get<double>(), 1e-12) << "prompt: " << prompt << " item " << i;
        }
    }
}

std::string dump(const std::vector<ScheduledText>& s) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& e : s) j.push_back({e.end_step, e.text});
    return j.dump();
}

TEST(PromptSchedules, AllGoldenCases) {
    const auto& cases = golden()["prompt_schedules"];
    ASSERT_GE(cases.size(), 15u);
    for (const auto& c : cases) {
        const std::string prompt = c["prompt"];
        const int steps = c["steps"];
        EXPECT_EQ(dump(prompt_schedules(prompt, steps)), c["schedule"].dump()) << prompt;
        EXPECT_EQ(dump(prompt_schedules(prompt, 20, 10)), c["schedule_hires_base20_hires10"].dump()) << prompt;
        EXPECT_EQ(dump(prompt_schedules(prompt, steps, 0, true)), c["schedule_old_scheduling"].dump()) << prompt;
    }
}

// The doctests of get_learned_conditioning_prompt_schedules (steps 10), except the one upstream marks
// "not handling this right now".
TEST(PromptSchedules, UpstreamDoctests) {
    const auto g = [](const char* p) { return dump(prompt_schedules(p, 10)); };
    EXPECT_EQ(g("test"), R"j([[10,"test"]])j");
    EXPECT_EQ(g("a [b:3]"), R"j([[3,"a "],[10,"a b"]])j");
    EXPECT_EQ(g("a [b: 3]"), R"j([[3,"a "],[10,"a b"]])j");
    EXPECT_EQ(g("a [[[b]]:2]"), R"j([[2,"a "],[10,"a [[b]]"]])j");
    EXPECT_EQ(g("[(a:2):3]"), R"j([[3,""],[10,"(a:2)"]])j");
    EXPECT_EQ(g("a [b : c : 1] d"), R"j([[1,"a b  d"],[10,"a  c  d"]])j");
    EXPECT_EQ(g("a[b:[c:d:2]:1]e"), R"j([[1,"abe"],[2,"ace"],[10,"ade"]])j");
    EXPECT_EQ(g("a [unbalanced"), R"j([[10,"a [unbalanced"]])j");
    EXPECT_EQ(g("a [b:.5] c"), R"j([[5,"a  c"],[10,"a b c"]])j");
    EXPECT_EQ(g("((a][:b:c [d:3]"), R"j([[3,"((a][:b:c "],[10,"((a][:b:c d"]])j");
    EXPECT_EQ(g("[a|(b:1.1)]"), R"j([[1,"a"],[2,"(b:1.1)"],[3,"a"],[4,"(b:1.1)"],[5,"a"],[6,"(b:1.1)"],[7,"a"],[8,"(b:1.1)"],[9,"a"],[10,"(b:1.1)"]])j");
    EXPECT_EQ(g("[fe|||]male"), R"j([[1,"female"],[2,"male"],[3,"male"],[4,"male"],[5,"female"],[6,"male"],[7,"male"],[8,"male"],[9,"female"],[10,"male"]])j");
    EXPECT_EQ(dump(prompt_schedules("a [b:.5] c", 10, 10)), R"j([[10,"a b c"]])j");
    EXPECT_EQ(dump(prompt_schedules("a [b:1.5] c", 10, 10)), R"j([[5,"a  c"],[10,"a b c"]])j");
    // rejected by the grammar: returned unchanged
    EXPECT_EQ(g("a | b [c:3]"), R"j([[10,"a | b [c:3]"]])j");
    EXPECT_EQ(g("trailing \\"), R"j([[10,"trailing \\"]])j");
    EXPECT_EQ(g("esc \\[b:3]"), R"j([[10,"esc \\[b:3]"]])j");
}

TEST(AndSplit, AllGoldenCases) {
    for (const auto& c : golden()["and_split"]) {
        const std::string prompt = c["prompt"];
        const auto got = and_split(prompt);
        EXPECT_EQ(nlohmann::json(got.subprompts), c["subprompts"]) << prompt;
        const auto& want = c["indexes_weights"][0];
        ASSERT_EQ(got.parts.size(), want.size()) << prompt;
        for (std::size_t i = 0; i < got.parts.size(); ++i) {
            EXPECT_EQ(got.parts[i].index, want[i][0].get<int>()) << prompt;
            EXPECT_NEAR(got.parts[i].weight, want[i][1].get<double>(), 1e-12) << prompt;
        }
    }
}

TEST(AndSplit, RepeatedTextSharesIndex) {
    const auto got = and_split(" cat AND dog:2 AND cat");  // parts keep their leading space
    ASSERT_EQ(got.subprompts.size(), 2u);
    ASSERT_EQ(got.parts.size(), 3u);
    EXPECT_EQ(got.parts[2].index, 0);
    EXPECT_EQ(got.parts[1].weight, 2.0);
    EXPECT_EQ(and_split("a:b:.5").subprompts[0], "a:b");
    EXPECT_EQ(and_split("a: .").subprompts[0], "a: .");
}

TEST(LoraTags, ExtractsAndRemoves) {
    auto r = extract_lora_tags("<lora:add_detail:0.8> a castle, <lora:style:0.5:1.2> <hypernet:h:1><lora:plain>");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->prompt, " a castle,  ");
    ASSERT_EQ(r->loras.size(), 3u);
    EXPECT_EQ(r->loras[0].name, "add_detail");
    EXPECT_EQ(r->loras[0].te_weight, 0.8);
    EXPECT_EQ(r->loras[0].unet_weight, 0.8);
    EXPECT_EQ(r->loras[1].name, "style");
    EXPECT_EQ(r->loras[1].te_weight, 0.5);
    EXPECT_EQ(r->loras[1].unet_weight, 1.2);
    EXPECT_EQ(r->loras[2].name, "plain");
    EXPECT_EQ(r->loras[2].te_weight, 1.0);
    ASSERT_EQ(r->ignored.size(), 1u);
    EXPECT_EQ(r->ignored[0], "hypernet:h:1");
}

TEST(LoraTags, NamedWeightsAndNonTags) {
    auto r = extract_lora_tags("a <lora:x:te=0.3:unet=0.7> b <not a tag> c <lora:> d < e");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->prompt, "a  b <not a tag> c <lora:> d < e");
    ASSERT_EQ(r->loras.size(), 1u);
    EXPECT_EQ(r->loras[0].te_weight, 0.3);
    EXPECT_EQ(r->loras[0].unet_weight, 0.7);
    auto bad = extract_lora_tags("<lora:x:abc>");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("lora:x:abc"), std::string::npos);
}

}  // namespace
}  // namespace nb::text
