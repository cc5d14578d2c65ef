// AND (A1111 composable diffusion): each part of the prompt its own conditioning and UNet evaluation, combined
// as combine_denoised does. Demo model (no ../shared needed).
#include <cmath>
#include <filesystem>
#include <stdexcept>

#include <gtest/gtest.h>

#include "nanobanana/engine.h"
#include "testutil/demo.h"

namespace nb {
namespace {

using test::demo_engine;

Image make(const std::string& prompt, const std::string& sampler = "dpmpp_2m", bool fp32 = false) {
    GenerateParams p;
    p.prompt = prompt;
    p.steps = 8;
    p.seed = 11;
    p.width = p.height = 64;
    p.sampler = sampler;
    auto r = (fp32 ? test::demo_engine_fp32() : demo_engine()).generate(p);
    if (!r) throw std::runtime_error(r.error().message);
    return r->front().image;
}

// Mean absolute difference per value (0..255).
double dist(const Image& a, const Image& b) {
    double d = 0;
    for (size_t i = 0; i < a.pixels.size(); ++i) d += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
    return d / double(a.pixels.size());
}

int max_diff(const Image& a, const Image& b) {
    int m = 0;
    for (size_t i = 0; i < a.pixels.size(); ++i) m = std::max(m, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
    return m;
}

// Two halves of one part add up to the part: d_u + 2 * (d_c - d_u) * 0.5 * s = d_u + (d_c - d_u) * s, up to
// float rounding (and a UNet batch of 3 instead of 2), so in fp32: bf16 attention (the default where the CPU has
// it) turns those rounding differences into 2 levels.
TEST(And, TwoHalvesEqualTheWhole) {
    const Image whole = make("a red circle on a blue background", "dpmpp_2m", true);
    const Image halves =
        make("a red circle on a blue background :0.5 AND a red circle on a blue background :0.5", "dpmpp_2m", true);
    EXPECT_LE(max_diff(whole, halves), 1);
}

// A part's trailing ":weight" is its weight (A1111's re_weight), not prompt text: ":1" is the plain prompt.
TEST(And, WeightOneIsThePlainPrompt) {
    EXPECT_EQ(max_diff(make("a red circle on a blue background"), make("a red circle on a blue background :1")), 0);
}

// Two different parts give a picture of both: different from each alone.
TEST(And, TwoPartsMakeANewPicture) {
    const Image a = make("a red circle on a blue background"), b = make("a green square on a yellow background");
    const Image both = make("a red circle on a blue background AND a green square on a yellow background");
    EXPECT_GT(dist(both, a), 1.0);
    EXPECT_GT(dist(both, b), 1.0);
}

// A negative weight pushes the picture away from that part.
TEST(And, NegativeWeightMovesAway) {
    const Image a = make("a red circle on a blue background"), b = make("a green square on a yellow background");
    const Image away = make("a red circle on a blue background AND a green square on a yellow background :-0.5");
    EXPECT_GT(dist(away, a), 1.0);
    EXPECT_GT(dist(away, b), dist(a, b)) << "the negative part did not push away from its picture";
}

// Every sampler takes multi-part conditioning (the denoiser is the same for all).
TEST(And, WorksWithEverySampler) {
    for (const char* s : {"euler_a", "heun", "dpm2", "dpmpp_sde", "ddim", "lcm"}) {
        const Image im = make("a red circle AND a blue background :0.7", s);
        EXPECT_EQ(im.width, 64) << s;
    }
}

}  // namespace
}  // namespace nb
