// open_clip text tower (SD 2.x, ldm FrozenOpenCLIPEmbedder) against open_clip outputs on the tiny SD2
// checkpoint (golden/README.md section 11, openclip_outputs).
#include <gtest/gtest.h>

#include "models/clip/model.h"
#include "testutil/golden.h"

namespace nb {
namespace {

constexpr const char* kIO = "golden/sd2/openclip_outputs.safetensors";
constexpr const char* kWeights = "golden/sd2/sd2_tiny_fp16.safetensors";
constexpr const char* kPrefix = "cond_stage_model.model.";

std::vector<int> ids_of(const Tensor& t) {
    std::vector<int> ids;
    for (float v : t.span()) ids.push_back(int(v));
    return ids;
}

TEST(OpenCLIP, DetectsConfigFromShapes) {
    const SafeTensors& st = test::golden(kWeights);
    nn::Binder b([&st](std::string_view k) { return st.find(k); }, kPrefix);
    auto cfg = clip::CLIPConfig::detect_openclip(b, 2);
    ASSERT_TRUE(cfg) << cfg.error().message;
    EXPECT_EQ(cfg->vocab, 49408);
    EXPECT_EQ(cfg->positions, 77);
    EXPECT_EQ(cfg->hidden, 16);
    EXPECT_EQ(cfg->heads, 2);
    EXPECT_EQ(cfg->layers, 3);
    EXPECT_EQ(cfg->intermediate, 64);
    EXPECT_EQ(cfg->act, clip::Activation::gelu);
    // Without a hint: width / 64 heads (ViT-H-14: 1024 -> 16), at least one.
    EXPECT_EQ(clip::CLIPConfig::detect_openclip(b)->heads, 1);
    // An SD 1.x layout is not an open_clip tower.
    nn::Binder hf([&st](std::string_view k) { return st.find(k); },
                  "cond_stage_model.transformer.text_model.");
    EXPECT_FALSE(clip::CLIPConfig::detect_openclip(hf));
}

TEST(OpenCLIP, MatchesOpenClipOutputs) {
    const SafeTensors& st = test::golden(kWeights);
    nn::Binder b([&st](std::string_view k) { return st.find(k); }, kPrefix);
    auto enc = clip::CLIPTextEncoder::load_openclip(b, *clip::CLIPConfig::detect_openclip(b, 2));
    ASSERT_TRUE(enc) << enc.error().message;
    auto ids = ids_of(test::golden_tensor(kIO, "input_ids"));
    auto hs = enc->hidden_states(ids, 5, 3);
    for (int k = 0; k <= 3; ++k)
        EXPECT_TRUE(test::close_rel(hs[size_t(k)],
                                    test::golden_tensor(kIO, "hidden_states_" + std::to_string(k)), 1e-5))
            << "hidden_states_" << k;
    // The SD 2.x conditioning (layer "penultimate", with ln_final) = clip skip 2; clip skip N =
    // ln_final(hs[-N]).
    EXPECT_TRUE(
        test::close_rel(enc->encode(ids, 5, 2).hidden, test::golden_tensor(kIO, "penultimate_ln"), 1e-5));
    EXPECT_TRUE(test::close_rel(enc->encode(ids, 5, 1).hidden, test::golden_tensor(kIO, "last_ln"), 1e-5));
    for (int n = 1; n <= 3; ++n)
        EXPECT_TRUE(test::close_rel(enc->encode(ids, 5, n).hidden,
                                    test::golden_tensor(kIO, "clipskip" + std::to_string(n)), 1e-5))
            << "clipskip" << n;
}

TEST(OpenCLIP, WrongShapeNamesTheKey) {
    const SafeTensors& st = test::golden(kWeights);
    nn::Binder b([&st](std::string_view k) { return st.find(k); }, kPrefix);
    auto cfg = clip::CLIPConfig::detect_openclip(b, 2);
    ASSERT_TRUE(cfg);
    cfg->hidden = 32;
    auto m = clip::CLIPTextEncoder::load_openclip(b, *cfg);
    ASSERT_FALSE(m);
    EXPECT_NE(
        m.error().message.find("'cond_stage_model.model.token_embedding.weight' has wrong shape: got [49408, "
                               "16], expected [49408, 32]"),
        std::string::npos)
        << m.error().message;
}

}  // namespace
}  // namespace nb
