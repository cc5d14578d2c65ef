// LDM UNets against CompVis / Stability ldm outputs on the tiny golden models (golden/README.md section 4).
#include <gtest/gtest.h>

#include "models/unet/model.h"
#include "testutil/golden.h"

namespace nb {
namespace {

struct Variant {
    const char* weights;
    const char* io;
    unet::HeadsHint heads;
    int64_t in_channels;
    int n_res;
    bool linear;
};

unet::UNet load(const Variant& v) {
    const SafeTensors& st = test::golden(v.weights);
    nn::Binder b([&st](std::string_view k) { return st.find(k); }, "model.diffusion_model.");
    auto cfg = unet::UNetConfig::detect(b, v.heads);
    EXPECT_TRUE(cfg) << cfg.error().message;
    EXPECT_EQ(cfg->in_channels, v.in_channels);
    EXPECT_EQ(cfg->model_channels, 32);
    EXPECT_EQ(cfg->channel_mult, (std::vector<int64_t>{1, 2}));
    EXPECT_EQ(cfg->res_blocks, (std::vector<int>{v.n_res, v.n_res}));
    EXPECT_EQ(cfg->attention, (std::vector<bool>{true, false}));
    EXPECT_EQ(cfg->linear_proj, v.linear);
    EXPECT_EQ(cfg->context_dim, 64);
    auto m = unet::UNet::load(b, *cfg);
    EXPECT_TRUE(m) << m.error().message;
    return std::move(*m);
}

std::vector<float> values(const Tensor& t) { return {t.span().begin(), t.span().end()}; }

class UNetGolden : public ::testing::TestWithParam<Variant> {};

TEST_P(UNetGolden, MatchesReferenceOutputs) {
    const Variant v = GetParam();
    unet::UNet u = load(v);
    auto g = [&](const char* n) { return test::golden_tensor(v.io, n); };
    EXPECT_TRUE(test::close_rel(unet::UNet::timestep_embedding(values(g("timesteps")), 32),
                                g("timestep_embedding_input"), 1e-6, 1e-6));
    EXPECT_TRUE(test::close_rel(u.forward(g("x"), values(g("timesteps")), g("context")), g("out"), 1e-4));
    EXPECT_TRUE(test::close_rel(u.forward(g("x_ctx154"), values(g("timesteps_ctx154")), g("context_ctx154")),
                                g("out_ctx154"), 1e-4));
}

INSTANTIATE_TEST_SUITE_P(
    Variants, UNetGolden,
    ::testing::Values(Variant{"golden/pipeline/sd_tiny_fp16.safetensors", "golden/unet/unet_sd1_io.safetensors", {2, -1}, 4, 2, false},
                      Variant{"golden/unet/unet_sd2_v.safetensors", "golden/unet/unet_sd2_v_io.safetensors", {-1, 16}, 4, 1, true},
                      Variant{"golden/unet/unet_sd1_inpaint.safetensors", "golden/unet/unet_sd1_inpaint_io.safetensors", {2, -1}, 9, 2, false}));

TEST(UNet, FamilyNames) {
    unet::UNetConfig c;
    c.channel_mult = {1, 2, 4, 4};
    c.res_blocks = {2, 2, 2, 2};
    EXPECT_EQ(c.family(), "SD 1.x");
    c.in_channels = 9;
    EXPECT_EQ(c.family(), "SD 1.x inpainting");
    c.in_channels = 4;
    c.res_blocks = {1, 1, 1, 1};
    c.has_middle = false;
    EXPECT_EQ(c.family(), "compact SD 1.x");
}

}  // namespace
}  // namespace nb
