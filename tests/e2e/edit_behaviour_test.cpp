// What img2img, inpaint, outpaint, hires fix and variation seeds promise, on the demo model shipped in
// models/demo (no ../shared needed): strength 0 returns the input, pixels outside the (blurred) mask are the
// original's, only-masked pastes back in place at every border, outpaint grows each side, every masked-content
// fill runs, hires fix with the latent and a pixel upscaler, variation seeds blend toward the subseed's noise.
// Exactness against A1111 itself is edit_test.cpp (golden data).
#include <cmath>

#include <gtest/gtest.h>

#include "image/edit.h"
#include "image/image.h"
#include "nanobanana/engine.h"
#include "testutil/demo.h"
#include "testutil/golden.h"

namespace nb {
namespace {

// The shared demo-model engine of tests/testutil/demo.h.
Engine& engine() { return test::demo_engine(); }

// A smooth, asymmetric RGB test picture.
Image picture(int w, int h) {
    Image im{w, h, 3, std::vector<uint8_t>(size_t(w) * size_t(h) * 3)};
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            uint8_t* p = im.at(x, y);
            p[0] = uint8_t(40 + 180 * x / w);
            p[1] = uint8_t(200 - 150 * y / h);
            p[2] = uint8_t((x * 7 + y * 3) % 256);
        }
    return im;
}

// White where x in [x0, x1), y in [y0, y1).
Image rect_mask(int w, int h, int x0, int y0, int x1, int y1) {
    Image m{w, h, 1, std::vector<uint8_t>(size_t(w) * size_t(h), 0)};
    for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) *m.at(x, y) = 255;
    return m;
}

GenerateParams base(int w = 64, int h = 64) {
    GenerateParams p;
    p.prompt = "a red circle on a blue background";
    p.steps = 6;
    p.seed = 7;
    p.width = w;
    p.height = h;
    return p;
}

GeneratedImage run(const GenerateParams& p) {
    auto r = engine().generate(p);
    if (!r) throw std::runtime_error(r.error().message);
    return (*r)[0];
}

// Pixels where `keep` is 0 must equal `orig`'s; returns how many differ elsewhere.
size_t check_kept(const Image& out, const Image& orig, const Image& keep) {
    EXPECT_EQ(out.width, orig.width);
    EXPECT_EQ(out.height, orig.height);
    size_t changed = 0, wrong = 0;
    for (int y = 0; y < orig.height; ++y)
        for (int x = 0; x < orig.width; ++x) {
            const bool same = std::equal(out.at(x, y), out.at(x, y) + 3, orig.at(x, y));
            if (*keep.at(x, y) == 0) wrong += !same;
            else changed += !same;
        }
    EXPECT_EQ(wrong, 0u) << "pixels outside the mask changed";
    return changed;
}

TEST(EditBehaviour, StrengthZeroReturnsTheResizedInput) {
    GenerateParams p = base(64, 40);
    p.init_image = picture(96, 60);
    p.denoising_strength = 0;
    const GeneratedImage g = run(p);
    const Image want = resize_image(0, p.init_image, 64, 40);
    EXPECT_EQ(g.image.width, 64);
    EXPECT_EQ(g.image.height, 40);
    EXPECT_EQ(g.image.pixels, want.pixels);
    EXPECT_NE(g.parameters.find("Denoising strength: 0"), std::string::npos) << g.parameters;
}

TEST(EditBehaviour, Img2ImgKeepsTheSizeAndMovesWithStrength) {
    GenerateParams p = base();
    p.init_image = picture(64, 64);
    double prev = -1;
    for (float s : {0.15f, 0.7f}) {
        p.denoising_strength = s;
        const GeneratedImage g = run(p);
        ASSERT_EQ(g.image.pixels.size(), p.init_image.pixels.size());
        double diff = 0;
        for (size_t i = 0; i < g.image.pixels.size(); ++i)
            diff += std::abs(int(g.image.pixels[i]) - int(p.init_image.pixels[i]));
        diff /= double(g.image.pixels.size());
        EXPECT_GT(diff, prev) << "strength " << s << " should move the picture further than the one before";
        prev = diff;
    }
}

TEST(EditBehaviour, PixelsOutsideTheBlurredMaskAreTheOriginal) {
    GenerateParams p = base();
    p.init_image = picture(64, 64);
    p.mask = rect_mask(64, 64, 20, 16, 44, 40);
    const GeneratedImage g = run(p);
    // A1111's overlay mask: the blurred mask doubled; where it is 0 the original pixel is pasted back.
    Image m3 = gaussian_blur_mask(p.mask, 4, 4);
    for (auto& v : m3.pixels) v = uint8_t(std::min(2 * int(v), 255));
    EXPECT_GT(check_kept(g.image, p.init_image, m3), 300u) << "the masked area was not repainted";
    EXPECT_NE(g.parameters.find("Mask blur: 4"), std::string::npos) << g.parameters;
}

TEST(EditBehaviour, InvertedMaskRepaintsTheOutside) {
    GenerateParams p = base();
    p.init_image = picture(64, 64);
    p.mask = rect_mask(64, 64, 0, 0, 64, 32);  // top half white; inverted: the bottom half is repainted
    p.inpainting_mask_invert = true;
    p.mask_blur = 0;
    const GeneratedImage g = run(p);
    Image keep = invert(p.mask);
    for (auto& v : keep.pixels) v = uint8_t(std::min(2 * int(v), 255));
    EXPECT_GT(check_kept(g.image, p.init_image, keep), 500u);
    EXPECT_NE(g.parameters.find("Mask mode: Inpaint not masked"), std::string::npos) << g.parameters;
}

TEST(EditBehaviour, EveryMaskedContentFillRunsAndMatters) {
    GenerateParams p = base();
    p.init_image = picture(64, 64);
    p.mask = rect_mask(64, 64, 16, 16, 48, 48);
    p.denoising_strength = 0.6f;
    Image m3 = gaussian_blur_mask(p.mask, 4, 4);
    for (auto& v : m3.pixels) v = uint8_t(std::min(2 * int(v), 255));
    std::vector<std::vector<uint8_t>> results;
    for (int fill : {0, 1, 2, 3}) {
        SCOPED_TRACE(fill);
        p.inpainting_fill = fill;
        const GeneratedImage g = run(p);
        check_kept(g.image, p.init_image, m3);
        for (const auto& r : results) EXPECT_NE(r, g.image.pixels) << "two fills gave the same picture";
        results.push_back(g.image.pixels);
    }
}

TEST(EditBehaviour, OnlyMaskedPastesBackInPlaceAtEveryBorder) {
    const int W0 = 96, H0 = 80;
    struct Case {
        const char* name;
        int x0, y0, x1, y1;
    };
    for (const Case c : {Case{"left", 0, 30, 14, 50}, Case{"top", 40, 0, 60, 12}, Case{"right", 82, 30, 96, 50},
                         Case{"bottom", 40, 68, 60, 80}, Case{"corner", 80, 64, 96, 80}}) {
        SCOPED_TRACE(c.name);
        GenerateParams p = base(64, 64);
        p.init_image = picture(W0, H0);
        p.mask = rect_mask(W0, H0, c.x0, c.y0, c.x1, c.y1);
        p.inpaint_full_res = true;
        p.inpaint_full_res_padding = 8;
        const GeneratedImage g = run(p);
        ASSERT_EQ(g.image.width, W0);  // the full picture comes back, not the processing size
        ASSERT_EQ(g.image.height, H0);
        const Image m2 = gaussian_blur_mask(p.mask, 4, 4);  // only masked: the blurred mask is the overlay mask
        EXPECT_GT(check_kept(g.image, p.init_image, m2), 50u);
        // check_kept proved nothing moved outside the blurred mask; the repaint also covers the mask itself.
        size_t inside = 0, area = 0;
        for (int y = c.y0; y < c.y1; ++y)
            for (int x = c.x0; x < c.x1; ++x) {
                ++area;
                inside += !std::equal(g.image.at(x, y), g.image.at(x, y) + 3, p.init_image.at(x, y));
            }
        EXPECT_GT(inside * 10, area * 9) << inside << " of " << area << " pixels inside the mask changed";
        EXPECT_NE(g.parameters.find("Inpaint area: Only masked"), std::string::npos);
    }
}

TEST(EditBehaviour, OutpaintGrowsEachSide) {
    const Image orig = picture(48, 48);
    for (int side = 0; side < 4; ++side) {
        SCOPED_TRACE(side);
        GenerateParams p = base();
        p.init_image = orig;
        int* ext[] = {&p.outpaint_left, &p.outpaint_top, &p.outpaint_right, &p.outpaint_bottom};
        *ext[side] = 16;
        p.width = 48 + (side % 2 == 0 ? 16 : 0);
        p.height = 48 + (side % 2 == 1 ? 16 : 0);
        const GeneratedImage g = run(p);
        ASSERT_EQ(g.image.width, p.width);
        ASSERT_EQ(g.image.height, p.height);
        const int ox = p.outpaint_left, oy = p.outpaint_top;
        // Far from the seam (beyond the blur's reach, 2 sigma doubled) the original pixels are kept exactly, and
        // the new strip is painted (not left black).
        size_t kept_wrong = 0, black = 0, strip = 0;
        for (int y = 0; y < p.height; ++y)
            for (int x = 0; x < p.width; ++x) {
                const int ix = x - ox, iy = y - oy;
                const bool in_orig = ix >= 0 && iy >= 0 && ix < 48 && iy < 48;
                const int dist = std::min({ix < 0 ? 0 : ix, iy < 0 ? 0 : iy, 47 - ix, 47 - iy});
                const bool far_inside = in_orig && (side == 0 ? ix >= 16 : side == 1 ? iy >= 16 : side == 2 ? ix < 32 : iy < 32);
                (void)dist;
                if (far_inside) kept_wrong += !std::equal(g.image.at(x, y), g.image.at(x, y) + 3, orig.at(ix, iy));
                if (!in_orig) {
                    ++strip;
                    const uint8_t* px = g.image.at(x, y);
                    black += px[0] < 8 && px[1] < 8 && px[2] < 8;
                }
            }
        EXPECT_EQ(kept_wrong, 0u);
        EXPECT_LT(black * 4, strip) << "the new strip stayed black";
        EXPECT_NE(g.parameters.find("Masked content: latent noise"), std::string::npos) << g.parameters;
    }
}

TEST(EditBehaviour, HiresFixUpscalesWithLatentAndPixelUpscalers) {
    for (const char* up : {"Latent", "Latent (nearest-exact)", "Latent (bicubic antialiased)", "Lanczos"}) {
        SCOPED_TRACE(up);
        GenerateParams p = base(32, 32);
        p.enable_hr = true;
        p.hr_scale = 2;
        p.hr_upscaler = up;
        p.hr_second_pass_steps = 3;
        p.denoising_strength = 0.5f;
        const GeneratedImage g = run(p);
        EXPECT_EQ(g.image.width, 64);
        EXPECT_EQ(g.image.height, 64);
        EXPECT_NE(g.parameters.find(std::string("Hires upscaler: ") + up), std::string::npos) << g.parameters;
        EXPECT_NE(g.parameters.find("Hires upscale: 2"), std::string::npos) << g.parameters;
    }
}

TEST(EditBehaviour, HiresFixWithAnUpscalerModel) {
    const std::string model = test::shared_path("assets/upscalers/RealESRGANv2-animevideo-xsx2.pth");
    GenerateParams p = base(32, 32);
    p.enable_hr = true;
    p.hr_resize_x = 64;
    p.hr_upscaler = model;
    p.hr_second_pass_steps = 3;
    p.denoising_strength = 0.5f;
    const GeneratedImage g = run(p);
    EXPECT_EQ(g.image.width, 64);
    EXPECT_EQ(g.image.height, 64);
    EXPECT_NE(g.parameters.find("Hires upscaler: RealESRGANv2-animevideo-xsx2"), std::string::npos) << g.parameters;
    EXPECT_NE(g.parameters.find("Hires resize: 64x64"), std::string::npos) << g.parameters;
    p.hr_upscaler = "no-such-upscaler";
    auto bad = engine().generate(p);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("no-such-upscaler"), std::string::npos);
}

TEST(EditBehaviour, VariationSeedsBlendTowardTheSubseed) {
    GenerateParams p = base();
    p.sampler = "DPM++ 2M";  // no noise after the first draw: strength 1 is exactly the subseed's picture
    const auto plain = run(p);
    p.subseed = 1234;
    p.subseed_strength = 0;
    EXPECT_EQ(run(p).image.pixels, plain.image.pixels);
    p.subseed_strength = 1;
    const auto full = run(p);
    GenerateParams q = base();
    q.sampler = p.sampler;
    q.seed = 1234;
    EXPECT_EQ(full.image.pixels, run(q).image.pixels);
    p.subseed_strength = 0.3f;
    const auto some = run(p);
    EXPECT_NE(some.image.pixels, plain.image.pixels);
    EXPECT_NE(some.image.pixels, full.image.pixels);
    EXPECT_NE(some.parameters.find("Variation seed: 1234, Variation seed strength: 0.3"), std::string::npos)
        << some.parameters;
    // A batch with a variation seed keeps the seed and advances the subseed (A1111's all_seeds / all_subseeds).
    p.batch_count = 2;
    auto batch = engine().generate(p);
    ASSERT_TRUE(batch);
    ASSERT_EQ(batch->size(), 2u);
    EXPECT_EQ((*batch)[1].seed, p.seed);
    EXPECT_EQ((*batch)[1].subseed, 1235);
    EXPECT_NE((*batch)[1].parameters.find("Seed: 7, "), std::string::npos) << (*batch)[1].parameters;
    EXPECT_NE((*batch)[1].parameters.find("Variation seed: 1235"), std::string::npos) << (*batch)[1].parameters;
    // Eta noise seed delta: only the sampler's later noise moves (Euler a), not a noise-free sampler's picture.
    GenerateParams e = base();
    e.sampler = "DPM++ 2M";
    e.eta_noise_seed_delta = 31337;
    EXPECT_EQ(run(e).image.pixels, plain.image.pixels);
    e.sampler = "Euler a";
    GenerateParams e0 = e;
    e0.eta_noise_seed_delta = 0;
    const GeneratedImage with_ensd = run(e);
    EXPECT_NE(with_ensd.image.pixels, run(e0).image.pixels);
    EXPECT_NE(with_ensd.parameters.find("ENSD: 31337"), std::string::npos) << with_ensd.parameters;
    GenerateParams back;
    ASSERT_TRUE(params_from_infotext(with_ensd.parameters, back));
    EXPECT_EQ(back.eta_noise_seed_delta, 31337);
    // Seed resize from the same size changes nothing.
    GenerateParams r = base();
    r.sampler = p.sampler;
    r.seed_resize_from_w = r.seed_resize_from_h = 64;
    EXPECT_EQ(run(r).image.pixels, plain.image.pixels);
}

// img2img and inpaint with every sampler (DDIM noises z0 to its own timestep and blends the model input, as
// A1111's timestep samplers do) and a non-default schedule: the picture moves, the unmasked part stays exact.
TEST(EditBehaviour, EverySamplerDoesImg2ImgAndInpaint) {
    const Image orig = picture(64, 64);
    const Image mask = rect_mask(64, 64, 16, 16, 48, 48);
    Image m3 = gaussian_blur_mask(mask, 4, 4);
    for (auto& v : m3.pixels) v = uint8_t(std::min(2 * int(v), 255));
    for (const char* sampler : {"euler", "euler_a", "heun", "dpm2", "dpm2_a", "dpm++2s_a", "dpm++2m", "dpm++2m_sde",
                                "dpm++_sde", "dpm++3m_sde", "lms", "lcm", "ddim", "DPM++ 2M Karras"}) {
        SCOPED_TRACE(sampler);
        GenerateParams p = base();
        p.sampler = sampler;
        p.init_image = orig;
        p.denoising_strength = 0.5f;
        const GeneratedImage a = run(p);
        EXPECT_NE(a.image.pixels, orig.pixels);
        for (float v : a.latent) ASSERT_TRUE(std::isfinite(v));
        p.mask = mask;
        p.scheduler = "exponential";
        EXPECT_GT(check_kept(run(p).image, orig, m3), 100u);
    }
}

// The infotext carries hires fix and variation seeds: read back, it makes the same picture (A1111's
// "send to txt2img").
TEST(EditBehaviour, InfotextRoundTripsHiresAndVariationSettings) {
    GenerateParams p = base(32, 32);
    p.enable_hr = true;
    p.hr_scale = 1.5f;
    p.hr_upscaler = "Latent (bicubic)";
    p.hr_second_pass_steps = 2;
    p.denoising_strength = 0.45f;
    p.subseed = 99;
    p.subseed_strength = 0.25f;
    const GeneratedImage g = run(p);
    EXPECT_EQ(g.image.width, 48);
    GenerateParams q;
    ASSERT_TRUE(params_from_infotext(g.parameters, q));
    EXPECT_TRUE(q.enable_hr);
    EXPECT_EQ(q.hr_scale, 1.5f);
    EXPECT_EQ(q.hr_upscaler, "Latent (bicubic)");
    EXPECT_EQ(q.hr_second_pass_steps, 2);
    EXPECT_EQ(q.denoising_strength, 0.45f);
    EXPECT_EQ(q.subseed, 99);
    EXPECT_EQ(q.subseed_strength, 0.25f);
    EXPECT_EQ(run(q).image.pixels, g.image.pixels);
}

TEST(EditBehaviour, BadRequestsAreRefusedNamingTheField) {
    GenerateParams p = base();
    p.init_image = picture(64, 64);
    p.mask = rect_mask(64, 64, 0, 0, 0, 0);
    auto r = engine().generate(p);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("mask is empty"), std::string::npos) << r.error().message;
    p.mask = {};
    p.denoising_strength = 1.5f;
    r = engine().generate(p);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("denoising strength"), std::string::npos) << r.error().message;
    p.denoising_strength = 0.5f;
    p.outpaint_left = 8;
    p.mask = rect_mask(64, 64, 0, 0, 8, 8);
    r = engine().generate(p);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("outpaint"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace nb
