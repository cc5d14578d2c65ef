// A cancel during sampling (GenerateParams::keep_interrupted): A1111's Interrupt / Skip keep the image being
// sampled as it stands, decoded from the last step's denoised prediction; without it the image is dropped.
// Demo model (no ../shared needed).
#include <filesystem>
#include <stdexcept>

#include <gtest/gtest.h>

#include "nanobanana/engine.h"
#include "testutil/demo.h"

namespace nb {
namespace {

using test::demo_engine;

GenerateParams params(int batch = 1) {
    GenerateParams p;
    p.prompt = "a red circle on a blue background";
    p.steps = 8;
    p.seed = 5;
    p.width = p.height = 64;
    p.sampler = "dpmpp_2m";
    p.batch_count = batch;
    return p;
}

// Cancels at `step` (1-based) of image `image`.
ProgressFn cancel_at(int image, int step) {
    return [=](const Progress& pr) { return !(pr.phase == "sample" && pr.image == image && pr.step >= step); };
}

int64_t diff(const Image& a, const Image& b) {
    int64_t d = 0;
    for (size_t i = 0; i < a.pixels.size(); ++i) d += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
    return d;
}

TEST(Interrupt, WithoutKeepTheImageIsDropped) {
    auto r = demo_engine().generate(params(), cancel_at(0, 3));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::cancelled);
}

TEST(Interrupt, KeptImageIsTheLastStepsPrediction) {
    GenerateParams p = params();
    auto full = demo_engine().generate(p);
    ASSERT_TRUE(full) << full.error().message;
    p.keep_interrupted = true;
    auto early = demo_engine().generate(p, cancel_at(0, 2));
    auto late = demo_engine().generate(p, cancel_at(0, 7));
    ASSERT_TRUE(early) << early.error().message;
    ASSERT_TRUE(late) << late.error().message;
    ASSERT_EQ(early->size(), 1u);
    EXPECT_TRUE(early->front().interrupted);
    EXPECT_FALSE(full->front().interrupted);
    EXPECT_EQ(early->front().image.width, 64);
    // The prediction sharpens towards the finished picture as sampling goes on.
    const int64_t d_early = diff(early->front().image, full->front().image);
    const int64_t d_late = diff(late->front().image, full->front().image);
    EXPECT_GT(d_early, 0);
    EXPECT_LT(d_late, d_early);
    // Not cancelled: the same picture as without the option.
    auto kept = demo_engine().generate(p);
    ASSERT_TRUE(kept);
    EXPECT_EQ(diff(kept->front().image, full->front().image), 0);
}

TEST(Interrupt, BatchKeepsFinishedImagesAndStopsAtTheInterruptedOne) {
    GenerateParams p = params(3);
    p.keep_interrupted = true;
    auto r = demo_engine().generate(p, cancel_at(1, 4));
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->size(), 2u);
    EXPECT_FALSE((*r)[0].interrupted);
    EXPECT_TRUE((*r)[1].interrupted);
    EXPECT_EQ((*r)[1].seed, 6);
}

TEST(Interrupt, InpaintKeepsPixelsOutsideTheMask) {
    GenerateParams p = params();
    p.keep_interrupted = true;
    p.init_image = Image{64, 64, 3, std::vector<uint8_t>(64 * 64 * 3, 90)};
    p.mask = Image{64, 64, 1, std::vector<uint8_t>(64 * 64, 0)};
    for (int y = 16; y < 48; ++y)
        for (int x = 16; x < 48; ++x) p.mask.pixels[size_t(y * 64 + x)] = 255;
    p.mask_blur = 0;
    auto r = demo_engine().generate(p, cancel_at(0, 2));
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_TRUE(r->front().interrupted);
    EXPECT_EQ(r->front().image.pixels[0], 90) << "the overlay outside the mask applies to a kept image too";
}

}  // namespace
}  // namespace nb
