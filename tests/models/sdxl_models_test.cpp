// SDXL's models against sgm / open_clip outputs on the tiny SDXL checkpoint (golden/README.md section 12): the
// two text towers (CLIP ViT-L penultimate without final LN; open_clip bigG penultimate without ln_final plus the
// projected pooled output) and the UNet with its label embedding and per-level transformer depth.
#include <gtest/gtest.h>

#include "models/clip/model.h"
#include "models/unet/model.h"
#include "testutil/golden.h"

namespace nb {
namespace {

constexpr const char* kWeights = "golden/sdxl/sdxl_tiny_fp16.safetensors";
constexpr const char* kText = "golden/sdxl/text_encoders.safetensors";
constexpr const char* kUNetIO = "golden/sdxl/unet_io.safetensors";

nn::Binder binder(const char* prefix) {
    const SafeTensors& st = test::golden(kWeights);
    return nn::Binder([&st](std::string_view k) { return st.find(k); }, prefix);
}

std::vector<int> ids_of(const Tensor& t) {
    std::vector<int> ids;
    for (float v : t.span()) ids.push_back(int(v));
    return ids;
}

std::vector<float> values(const Tensor& t) { return {t.span().begin(), t.span().end()}; }

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

unet::UNet load_unet() {
    auto b = binder("model.diffusion_model.");
    auto cfg = unet::UNetConfig::detect(b, {-1, 16});
    if (!cfg) throw std::runtime_error(cfg.error().message);
    auto u = unet::UNet::load(b, *cfg);
    if (!u) throw std::runtime_error(u.error().message);
    return std::move(*u);
}

TEST(SdxlUNet, ConfigFromTheTensors) {
    auto cfg = unet::UNetConfig::detect(binder("model.diffusion_model."), {-1, 16});
    ASSERT_TRUE(cfg) << cfg.error().message;
    EXPECT_EQ(cfg->model_channels, 32);
    EXPECT_EQ(cfg->channel_mult, (std::vector<int64_t>{1, 1, 1}));
    EXPECT_EQ(cfg->res_blocks, (std::vector<int>{2, 2, 2}));
    EXPECT_EQ(cfg->attention, (std::vector<bool>{false, true, true}));
    EXPECT_EQ(cfg->depth, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(cfg->middle_depth, 2);
    EXPECT_EQ(cfg->context_dim, 48);
    EXPECT_EQ(cfg->adm_in_channels, 80);
    EXPECT_TRUE(cfg->linear_proj);
    EXPECT_EQ(cfg->family(), "SDXL");
    EXPECT_EQ(cfg->heads_for(32), 2);
}

TEST(SdxlUNet, MatchesSgm) {
    const unet::UNet u = load_unet();
    const std::vector<float> t = values(g(kUNetIO, "timesteps"));
    EXPECT_TRUE(test::close_rel(unet::UNet::timestep_embedding(t, 32), g(kUNetIO, "timestep_embedding_input"), 1e-5));
    EXPECT_TRUE(close("emb", u.embedding(t, g(kUNetIO, "y")), g(kUNetIO, "emb"), 1e-4));
    EXPECT_TRUE(close("out", u.forward(g(kUNetIO, "x"), t, g(kUNetIO, "context"), g(kUNetIO, "y")),
                                g(kUNetIO, "out"), 1e-4));
    EXPECT_TRUE(close("out_ctx154", u.forward(g(kUNetIO, "x_ctx154"), values(g(kUNetIO, "timesteps_ctx154")),
                                          g(kUNetIO, "context_ctx154"), g(kUNetIO, "y_ctx154")),
                                g(kUNetIO, "out_ctx154"), 1e-4));
}

}  // namespace
}  // namespace nb
