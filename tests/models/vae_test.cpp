// VAE (ldm AutoencoderKL) against golden/vae (tiny VAE from pipeline/sd_tiny_fp16.safetensors, upcast),
// config detection, shape errors, and tiled vs untiled encode/decode.
#include <cmath>
#include <string>

#include <gtest/gtest.h>

#include "backend/ops.h"
#include "models/vae/model.h"
#include "testutil/golden.h"

namespace nb {
namespace {

const char* kCkpt = "golden/pipeline/sd_tiny_fp16.safetensors";
const char* kIO = "golden/vae/vae_io.safetensors";

nn::TensorLookup ckpt_lookup() {
    const SafeTensors& st = test::golden(kCkpt);
    return [&st](std::string_view k) { return st.find(k); };
}

Tensor io(const std::string& name) { return test::golden_tensor(kIO, name); }

const vae::VAE& tiny_vae() {
    static const vae::VAE model = [] {
        auto cfg = vae::VAEConfig::detect(ckpt_lookup());
        if (!cfg) throw std::runtime_error(cfg.error().message);
        auto m = vae::VAE::load(ckpt_lookup(), *cfg);
        if (!m) throw std::runtime_error(m.error().message);
        return std::move(*m);
    }();
    return model;
}

TEST(VAE, DetectTinyConfig) {
    auto cfg = vae::VAEConfig::detect(ckpt_lookup());
    ASSERT_TRUE(cfg) << cfg.error().message;
    EXPECT_EQ(cfg->ch, 32);
    EXPECT_EQ(cfg->ch_mult, (std::vector<int>{1, 2, 2, 2}));
    EXPECT_EQ(cfg->num_res_blocks, 1);
    EXPECT_EQ(cfg->z_channels, 4);
    EXPECT_EQ(cfg->embed_dim, 4);
    EXPECT_EQ(cfg->in_channels, 3);
    EXPECT_EQ(cfg->out_ch, 3);
    EXPECT_TRUE(cfg->mid_attention);
    EXPECT_EQ(cfg->downscale(), 8);
}

TEST(VAE, SdPresetDoesNotMatchTinyCheckpoint) {
    auto m = vae::VAE::load(ckpt_lookup(), vae::VAEConfig::sd());
    ASSERT_FALSE(m);
    EXPECT_NE(m.error().message.find("first_stage_model.encoder.conv_in.weight"), std::string::npos)
        << m.error().message;
}

TEST(VAE, WrongShapeNamesKey) {
    const std::string bad = "first_stage_model.decoder.up.1.block.0.conv1.weight";
    const SafeTensors& st = test::golden(kCkpt);
    TensorEntry fake = *st.find(bad);
    fake.shape = {64, 32, 3, 3};  // real: [64, 64, 3, 3]
    auto lookup = [&](std::string_view k) { return k == bad ? &fake : st.find(k); };
    auto cfg = vae::VAEConfig::detect(lookup);
    ASSERT_TRUE(cfg);
    auto m = vae::VAE::load(lookup, *cfg);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().code, Errc::shape);
    EXPECT_NE(m.error().message.find(bad), std::string::npos) << m.error().message;
    EXPECT_NE(m.error().message.find("[64, 32, 3, 3]"), std::string::npos) << m.error().message;
}

TEST(VAE, MissingTensorNamesKey) {
    const std::string gone = "first_stage_model.encoder.mid.attn_1.proj_out.bias";
    const SafeTensors& st = test::golden(kCkpt);
    auto lookup = [&](std::string_view k) { return k == gone ? nullptr : st.find(k); };
    auto m = vae::VAE::load(lookup, *vae::VAEConfig::detect(lookup));
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().code, Errc::missing);
    EXPECT_NE(m.error().message.find(gone), std::string::npos) << m.error().message;
}

TEST(VAE, StandaloneNamesWithoutPrefix) {
    const SafeTensors& st = test::golden(kCkpt);
    auto lookup = [&](std::string_view k) { return st.find("first_stage_model." + std::string(k)); };
    auto cfg = vae::VAEConfig::detect(lookup);
    ASSERT_TRUE(cfg) << cfg.error().message;
    EXPECT_TRUE(vae::VAE::load(lookup, *cfg));
}

TEST(VAE, EncodeMatchesGolden) {
    const vae::VAE& m = tiny_vae();
    const Tensor image = io("image");
    ASSERT_TRUE(m.check_image(image));
    EXPECT_TRUE(test::close_rel(m.encoder_out(image), io("encoder_out"), 1e-4));
    const Tensor moments = m.encode_moments(image);
    EXPECT_TRUE(test::close_rel(moments, io("moments"), 1e-4));
    const auto post = vae::Posterior::from_moments(moments);
    EXPECT_TRUE(test::close_rel(post.mean, io("mean"), 1e-4));
    EXPECT_TRUE(test::close_rel(post.logvar, io("logvar"), 1e-4));
    EXPECT_TRUE(test::close_rel(post.std(), io("std"), 1e-4));
    EXPECT_TRUE(test::close_rel(post.sample(io("sample_noise")), io("sample"), 1e-4));
    EXPECT_TRUE(test::close_rel(m.encode_scaled(image, io("sample_noise")), io("z_scaled"), 1e-4));
}

TEST(VAE, DecodeMatchesGolden) {
    const vae::VAE& m = tiny_vae();
    ASSERT_TRUE(m.check_latent(io("latent_scaled")));
    EXPECT_TRUE(test::close_rel(m.decode_unscaled(io("mean")), io("decode_of_mean"), 1e-4));
    EXPECT_TRUE(test::close_rel(m.decode(io("latent_scaled")), io("decoded"), 1e-4));
    EXPECT_TRUE(test::close_rel(m.decode_auto(io("latent_scaled")), io("decoded"), 1e-4));
}

TEST(VAE, ShapeChecksRejectBadInput) {
    const vae::VAE& m = tiny_vae();
    EXPECT_FALSE(m.check_image(Tensor({1, 3, 60, 64})));
    EXPECT_FALSE(m.check_image(Tensor({1, 4, 64, 64})));
    EXPECT_FALSE(m.check_latent(Tensor({1, 3, 8, 8})));
}

TEST(VAE, LogvarIsClamped) {
    Tensor moments({1, 2, 1, 2});
    moments.data()[2] = -100.f;
    moments.data()[3] = 100.f;
    const auto post = vae::Posterior::from_moments(moments);
    EXPECT_EQ(post.logvar.data()[0], -30.f);
    EXPECT_EQ(post.logvar.data()[1], 20.f);
}

}  // namespace
}  // namespace nb
