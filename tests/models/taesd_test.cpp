// TAESD against PyTorch: the real TAEF2 (FLUX.2 TAESD, fp16 .pth) encoder and decoder on the MANIFEST's golden
// input / latent (assets/golden/taef2_*.npy, float32 PyTorch, tolerance 1e-4 as the MANIFEST says), files of
// the wrong kind refused with errors naming them.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "image/image.h"
#include "models/taesd/model.h"
#include "testutil/golden.h"

namespace nb {
namespace {

TEST(Taesd, Taef2DecoderMatchesPyTorch) {
    auto m = taesd::Model::load(test::shared_path("assets/latent_decoders/taef2/taef2_decoder.pth"));
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_TRUE(m->has_decoder());
    EXPECT_FALSE(m->has_encoder());
    EXPECT_EQ(m->config().latent_channels, 32);
    EXPECT_TRUE(m->config().pooled);
    const Tensor z = test::read_npy(test::shared_path("assets/golden/taef2_latent_1x32x16x16.npy"));
    const Tensor ref = test::read_npy(test::shared_path("assets/golden/taef2_decoded_1x3x128x128.npy"));
    const Tensor y = m->decode(z);
    ASSERT_EQ(y.shape(), ref.shape());
    EXPECT_TRUE(test::close_rel(y, ref, 1e-4));
}

TEST(Taesd, Taef2EncoderMatchesPyTorch) {
    auto m = taesd::Model::load(test::shared_path("assets/latent_decoders/taef2/taef2_encoder.pth"));
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_TRUE(m->has_encoder());
    EXPECT_FALSE(m->has_decoder());
    auto img = read_png(test::shared_path("assets/golden/taef2_input_128.png"));
    ASSERT_TRUE(img) << img.error().message;
    Tensor x({1, 3, img->height, img->width});  // uint8 / 255, NCHW
    for (int y = 0; y < img->height; ++y)
        for (int xx = 0; xx < img->width; ++xx)
            for (int c = 0; c < 3; ++c)
                x.data()[(c * img->height + y) * img->width + xx] = float(img->at(xx, y)[c]) / 255.f;
    const Tensor ref = test::read_npy(test::shared_path("assets/golden/taef2_latent_1x32x16x16.npy"));
    const Tensor z = m->encode(x);
    ASSERT_EQ(z.shape(), ref.shape());
    EXPECT_TRUE(test::close_rel(z, ref, 1e-4));
}

TEST(Taesd, OtherFilesAreRefusedNamingThem) {
    auto esrgan = taesd::Model::load(test::shared_path("assets/upscalers/realesr-animevideov3.pth"));
    ASSERT_FALSE(esrgan);
    EXPECT_NE(esrgan.error().message.find("realesr-animevideov3.pth: not a TAESD"), std::string::npos)
        << esrgan.error().message;
    const std::string junk = ::testing::TempDir() + "/junk_taesd.safetensors";
    std::ofstream(junk) << "not a model";
    auto bad = taesd::Model::load(junk);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("junk_taesd.safetensors"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace nb
