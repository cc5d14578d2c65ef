// SDXL's models against sgm / open_clip outputs on the tiny SDXL checkpoint (golden/README.md section 12): the
// two text towers (CLIP ViT-L penultimate without final LN; open_clip bigG penultimate without ln_final plus the
// projected pooled output).
#include <gtest/gtest.h>

#include "models/clip/model.h"
#include "testutil/golden.h"

namespace nb {
namespace {

constexpr const char* kWeights = "golden/sdxl/sdxl_tiny_fp16.safetensors";
constexpr const char* kText = "golden/sdxl/text_encoders.safetensors";

nn::Binder binder(const char* prefix) {
    const SafeTensors& st = test::golden(kWeights);
    return nn::Binder([&st](std::string_view k) { return st.find(k); }, prefix);
}

std::vector<int> ids_of(const Tensor& t) {
    std::vector<int> ids;
    for (float v : t.span()) ids.push_back(int(v));
    return ids;
}

Tensor g(const char* file, const std::string& name) { return test::golden_tensor(file, name); }

// test::close_rel, with the measured max|diff| (and its bound) kept in the test's XML properties under `what`
// (--gtest_output=xml): the numbers the commit messages quote.
::testing::AssertionResult close(const std::string& what, const Tensor& got, const Tensor& ref, double rel,
                                 double abs = 0.0) {
    auto r = test::close_rel(got, ref, rel, abs);
    ::testing::Test::RecordProperty(what, r.message());
    return r;
}

TEST(SdxlTextEncoders, ClipLPenultimateWithoutFinalLN) {
    auto b = binder("conditioner.embedders.0.transformer.text_model.");
    auto cfg = clip::CLIPConfig::detect(b, 2);
    ASSERT_TRUE(cfg) << cfg.error().message;
    EXPECT_EQ(cfg->hidden, 16);
    EXPECT_EQ(cfg->layers, 3);
    auto enc = clip::CLIPTextEncoder::load(b, *cfg);
    ASSERT_TRUE(enc) << enc.error().message;
    const auto ids = ids_of(g(kText, "clip_l.input_ids"));
    auto hs = enc->hidden_states(ids, 4, 3);
    for (int k = 0; k <= 3; ++k)
        EXPECT_TRUE(close("clip_l.hidden_states_" + std::to_string(k), hs[size_t(k)], g(kText, "clip_l.hidden_states_" + std::to_string(k)), 1e-5)) << k;
    EXPECT_TRUE(close("clip_l.penultimate", enc->encode_penultimate(ids, 4, false).hidden, g(kText, "clip_l.penultimate"), 1e-5));
    EXPECT_TRUE(close("clip_l.last_hidden_state", enc->encode(ids, 4, 1).hidden, g(kText, "clip_l.last_hidden_state"), 1e-5));
    EXPECT_TRUE(close("clip_l.pooled", enc->encode(ids, 4, 1).pooled, g(kText, "clip_l.pooled"), 1e-5));
}

TEST(SdxlTextEncoders, BigGPenultimateAndProjectedPooled) {
    auto b = binder("conditioner.embedders.1.model.");
    auto cfg = clip::CLIPConfig::detect_openclip(b, 2);
    ASSERT_TRUE(cfg) << cfg.error().message;
    EXPECT_EQ(cfg->hidden, 32);
    EXPECT_EQ(cfg->intermediate, 128);
    auto enc = clip::CLIPTextEncoder::load_openclip(b, *cfg);
    ASSERT_TRUE(enc) << enc.error().message;
    ASSERT_TRUE(enc->text_projection().defined());
    EXPECT_EQ(enc->text_projection().shape(), (Shape{32, 32}));
    const auto ids = ids_of(g(kText, "clip_g.input_ids"));
    auto hs = enc->hidden_states(ids, 4, 3);
    for (int k = 0; k <= 3; ++k)
        EXPECT_TRUE(close("clip_g.hidden_states_" + std::to_string(k), hs[size_t(k)], g(kText, "clip_g.hidden_states_" + std::to_string(k)), 1e-5)) << k;
    auto out = enc->encode_penultimate(ids, 4, true);
    EXPECT_TRUE(close("clip_g.penultimate", out.hidden, g(kText, "clip_g.penultimate"), 1e-5));
    EXPECT_TRUE(close("clip_g.pooled", out.pooled, g(kText, "clip_g.pooled"), 1e-5));
    EXPECT_TRUE(close("clip_g.last_ln", enc->encode(ids, 4, 1).hidden, g(kText, "clip_g.last_ln"), 1e-5));
}

}  // namespace
}  // namespace nb
