// DeepCache step caching (issue 21 item 4, --cache-mode deepcache), on the demo model (no ../shared needed):
// the UNet's cached pass is its full pass minus the deep path, off is bit-identical, and the option travels
// through the engine, the infotext and the CLI.
#include <cmath>
#include <filesystem>
#include <random>

#include <gtest/gtest.h>

#include "backend/ops.h"
#include "nanobanana/engine.h"
#include "pipeline/sd_model.h"
#include "testutil/cli.h"
#include "testutil/demo.h"

namespace nb {
namespace {

Tensor randn(Shape s, unsigned seed) {
    Tensor t(s);
    std::mt19937 g(seed);
    std::normal_distribution<float> nd;
    for (auto& v : t.span()) v = nd(g);
    return t;
}

bool same(const Tensor& a, const Tensor& b) {
    if (a.shape() != b.shape()) return false;
    for (int64_t i = 0; i < a.numel(); ++i)
        if (a.data()[i] != b.data()[i]) return false;
    return true;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
    double m = 0;
    for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, double(std::abs(a.data()[i] - b.data()[i])));
    return m;
}

struct UNetCase {
    std::unique_ptr<pipeline::SDModel> m;
    Tensor x, ctx;
    std::vector<float> t{500.f, 500.f};
};

UNetCase unet_case() {
    UNetCase c;
    auto r = pipeline::SDModel::load(test::demo_model_path(), "", false, ops::WeightStorage::exact);
    if (!r) throw std::runtime_error(r.error().message);
    c.m = std::move(*r);
    if (auto a = c.m->unet_weights.acquire(); !a) throw std::runtime_error(a.error().message);
    const auto& cfg = c.m->unet.config();
    c.x = randn({2, cfg.in_channels, 8, 8}, 1);
    c.ctx = randn({2, 77, cfg.context_dim}, 2);
    return c;
}

// A full pass given a slot computes exactly what the plain forward does and stores the deep feature; a cached pass
// on the same inputs then reproduces it exactly (the shallow branch is the same math), with a fraction of the work.
TEST(DeepCache, CachedPassIsTheFullPassMinusTheDeepPath) {
    UNetCase c = unet_case();
    const auto& unet = c.m->unet;
    ops::reset_mac_count();
    const Tensor full = unet.forward(c.x, c.t, c.ctx);
    const int64_t full_macs = ops::mac_count();
    unet::DeepCacheSlot slot;
    const Tensor stored = unet.forward(c.x, c.t, c.ctx, {}, &slot, false);
    EXPECT_TRUE(same(full, stored)) << "a full pass that stores the feature must not change the result";
    ASSERT_TRUE(slot.feature.defined());
    ops::reset_mac_count();
    const Tensor cached = unet.forward(c.x, c.t, c.ctx, {}, &slot, true);
    const int64_t cached_macs = ops::mac_count();
    EXPECT_TRUE(same(full, cached)) << "max |diff| " << max_abs_diff(full, cached);
    std::printf("UNet work: full pass %lld MACs, cached pass %lld (%.0f %%)\n", (long long)full_macs,
                (long long)cached_macs, 100.0 * double(cached_macs) / double(full_macs));
    EXPECT_GT(cached_macs, 0);
    EXPECT_LT(cached_macs, full_macs * 3 / 4);

    // On the next step's input the cached pass differs from the full pass (it reuses the old deep feature) ...
    Tensor x2 = c.x.clone();
    for (int64_t i = 0; i < x2.numel(); ++i) x2.data()[i] *= 0.9f;
    const Tensor full2 = unet.forward(x2, c.t, c.ctx);
    const Tensor cached2 = unet.forward(x2, c.t, c.ctx, {}, &slot, true);
    EXPECT_FALSE(same(full2, cached2));
    // ... and a slot filled for another batch size is not used: the pass runs in full.
    unet::DeepCacheSlot other;
    Tensor x1 = c.x.slice0(0, 1).clone(), ctx1 = c.ctx.slice0(0, 1).clone();
    (void)unet.forward(x1, {500.f}, ctx1, {}, &other, false);
    EXPECT_TRUE(same(full2, unet.forward(x2, c.t, c.ctx, {}, &other, true)));
}

GenerateParams demo_params() {
    GenerateParams p;
    p.prompt = "a red circle on a blue background";
    p.seed = 11;
    p.width = p.height = 64;
    p.steps = 12;
    p.sampler = "DPM++ 2M Karras";
    return p;
}

Image generate(const GenerateParams& p, std::string* info = nullptr) {
    auto r = test::demo_engine().generate(p);
    if (!r) throw std::runtime_error(r.error().message);
    if (info) *info = (*r)[0].parameters;
    return (*r)[0].image;
}

double mean_abs_diff(const Image& a, const Image& b) {
    double s = 0;
    for (size_t i = 0; i < a.pixels.size(); ++i) s += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
    return s / double(a.pixels.size());
}

TEST(DeepCache, OffIsBitIdenticalAndOnTravelsInTheInfotext) {
    GenerateParams p = demo_params();
    std::string info_off, info_on;
    const Image base = generate(p, &info_off);
    p.cache_mode = "none";
    EXPECT_EQ(base.pixels, generate(p).pixels);
    EXPECT_EQ(info_off.find("Cache"), std::string::npos) << info_off;

    p.cache_mode = "deepcache";
    p.cache_interval = 3;
    const Image cached = generate(p, &info_on);
    const double diff = mean_abs_diff(base, cached);
    std::printf("deepcache interval 3 vs off: mean |diff| %.2f of 255\n", diff);
    EXPECT_GT(diff, 0.0);    // the cached steps reuse old deep features ...
    EXPECT_LT(diff, 10.0);   // ... and the picture stays the same picture
    EXPECT_NE(info_on.find("Cache mode: deepcache, Cache interval: 3"), std::string::npos) << info_on;
    EXPECT_EQ(cached.pixels, generate(p).pixels) << "deterministic";

    GenerateParams back;
    ASSERT_TRUE(params_from_infotext(info_on, back));
    EXPECT_EQ(back.cache_mode, "deepcache");
    EXPECT_EQ(back.cache_interval, 3);

    p.cache_interval = 1;
    EXPECT_FALSE(test::demo_engine().generate(p));
    p.cache_interval = 3;
    p.sampler = "euler_a";  // adds noise every step: refused, naming the sampler
    auto noisy = test::demo_engine().generate(p);
    ASSERT_FALSE(noisy);
    EXPECT_NE(noisy.error().message.find("Euler a adds fresh noise"), std::string::npos) << noisy.error().message;
    p.sampler = "DPM++ 2M Karras";
    p.cache_interval = 3;
    p.cache_mode = "fast";
    auto bad = test::demo_engine().generate(p);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("cache mode"), std::string::npos) << bad.error().message;
}

TEST(DeepCache, CliFlagsAndEarlyRefusal) {
    const std::string dir = ::testing::TempDir() + "deepcache_cli";
    std::filesystem::create_directories(dir);
    const std::string out = dir + "/dc.png";
    auto r = test::run_cli("generate -m " + test::demo_model_path() +
                           " -p 'a red circle on a blue background' -W 64 -H 64 -s 3 --steps 6 --sampling-method euler"
                           " --cache-mode deepcache"
                           " --cache-interval 2 -o " + out);
    ASSERT_EQ(r.code, 0) << r.err;
    auto info = read_png_parameters(out);
    ASSERT_TRUE(info);
    EXPECT_NE(info->find("Cache mode: deepcache, Cache interval: 2"), std::string::npos) << *info;

    // Refused before the model loads (this path does not exist), in one line, with no output file.
    const std::string bad = dir + "/bad.png";
    auto e = test::run_cli("generate -m /nonexistent/model.safetensors -p x --cache-mode turbo -o " + bad);
    EXPECT_NE(e.code, 0);
    EXPECT_NE(e.err.find("cache mode must be none or deepcache (got 'turbo')"), std::string::npos) << e.err;
    EXPECT_FALSE(std::filesystem::exists(bad));
}

}  // namespace
}  // namespace nb
