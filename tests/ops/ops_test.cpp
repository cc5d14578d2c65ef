// Every fast kernel against its scalar reference (ops/ref.h), on SD-like and odd shapes.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "backend/cpu/vec_math.h"
#include "backend/context.h"
#include "backend/ops.h"
#include "backend/weights.h"
#include "core/dtype.h"
#include "ops/ref.h"
#include "testutil/golden.h"

namespace nb {
namespace {

Tensor randn(Shape s, uint32_t seed, float scale = 1.f, float shift = 0.f) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.f, 1.f);
    Tensor t = Tensor::empty(std::move(s));
    for (auto& v : t.span()) v = d(g) * scale + shift;
    return t;
}

Tensor to_f16_grid(Tensor t) {  // values an fp16 checkpoint could hold: packed copies keep them in 16 bits
    for (auto& v : t.span()) v = f16_to_f32(f32_to_f16(v));
    return t;
}

Tensor to_bf16_grid(Tensor t) {  // bf16 values below fp16's range: held as bf16
    for (auto& v : t.span()) v = bf16_to_f32(f32_to_bf16(v * 1e-6f));
    return t;
}

// conv2d's output and the kernel that ran it (the profile's op name).
std::pair<Tensor, std::string> conv_and_kernel(const Tensor& x, const Tensor& w, const Tensor& b, int stride,
                                               ops::Pad2d pad) {
    ops::set_profiling(true);
    Tensor y = ops::conv2d(x, w, b, stride, pad);
    auto prof = ops::take_profile();
    ops::set_profiling(false);
    return {y, prof.size() == 1 ? prof[0].op : std::string("not one op")};
}

// A 3x3 "same" convolution of n x c x hw x hw -> o channels with random fp32 weights (seeds seed..seed + 2)
// runs on the direct kernel and matches the reference.
void expect_direct_kernel(int64_t n, int64_t c, int64_t hw, int64_t o, uint32_t seed) {
    Tensor x = randn({n, c, hw, hw}, seed), wt = randn({o, c, 3, 3}, seed + 1, 0.1f), b = randn({o}, seed + 2);
    Tensor r = Tensor::empty({n, o, hw, hw});
    ops::ref::conv2d({n, c, hw, hw, o, 3, 3, 1, 1, 1, 1, 1}, x.data(), wt.data(), b.data(), r.data());
    auto [y, kernel] = conv_and_kernel(x, wt, b, 1, ops::Pad2d::same(1));
    EXPECT_EQ(kernel, "conv2d") << n << "x" << c << "x" << hw << "x" << hw;
    EXPECT_TRUE(test::close_rel(y, r, 1e-5)) << n << "x" << c << "x" << hw << "x" << hw;
}

struct ConvCase {
    int64_t n, c, h, w, o, k;
    int stride;
    ops::Pad2d pad;
};

class ConvTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvTest, MatchesReference) {
    const auto p = GetParam();
    Tensor x = randn({p.n, p.c, p.h, p.w}, 1), w = randn({p.o, p.c, p.k, p.k}, 2, 0.1f), b = randn({p.o}, 3);
    ops::ref::Conv2dShape s{p.n, p.c, p.h, p.w, p.o, p.k, p.k, p.stride, p.pad.t, p.pad.l, p.pad.b, p.pad.r};
    Tensor r = Tensor::empty({p.n, p.o, s.out_h(), s.out_w()});
    ops::ref::conv2d(s, x.data(), w.data(), b.data(), r.data());  // first: conv2d packs w, releasing its values
    Tensor y = ops::conv2d(x, w, b, p.stride, p.pad);
    ASSERT_EQ(y.shape(), r.shape());
    EXPECT_TRUE(test::close_rel(y, r, 1e-5));
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvTest,
                         ::testing::Values(ConvCase{2, 320, 16, 16, 320, 3, 1, ops::Pad2d::same(1)},  // SD level 0
                                           ConvCase{1, 4, 64, 64, 320, 3, 1, ops::Pad2d::same(1)},    // conv_in
                                           ConvCase{2, 640, 8, 8, 320, 1, 1, {}},                   // skip 1x1
                                           ConvCase{1, 320, 16, 16, 320, 3, 2, ops::Pad2d::same(1)},  // downsample
                                           ConvCase{1, 32, 15, 17, 16, 3, 2, {0, 0, 1, 1}},  // VAE asym. pad
                                           ConvCase{3, 7, 9, 5, 5, 3, 1, ops::Pad2d::same(1)}));

// VAE-sized 3x3 stride-1 fp32 convolutions (128x128 pixels and more) take the Winograd kernel (the profile
// names it) in bands of tile rows at the default budget: same tolerance as the direct kernel, also after the
// weight's values were released into its packed copy, and the direct kernel still sees the same weight.
TEST(Ops, WinogradConvMatchesReference) {
    for (auto [n, c, h, w, o] : {std::tuple{1, 64, 128, 128, 48}, {2, 32, 96, 100, 32}}) {
        Tensor x = randn({n, c, h, w}, 7), wt = randn({o, c, 3, 3}, 8, 0.1f), b = randn({o}, 9);
        ops::ref::Conv2dShape s{n, c, h, w, o, 3, 3, 1, 1, 1, 1, 1};
        Tensor r = Tensor::empty({n, o, h, w});
        ops::ref::conv2d(s, x.data(), wt.data(), b.data(), r.data());
        ops::prepack_conv(wt, 1, ops::Pad2d::same(1));  // as at load: packed for the direct kernel, values released
        auto [y, kernel] = conv_and_kernel(x, wt, b, 1, ops::Pad2d::same(1));
        EXPECT_EQ(kernel, "conv2d_winograd") << n << "x" << c << "x" << h << "x" << w;
        EXPECT_TRUE(test::close_rel(y, r, 1e-5)) << n << "x" << c << "x" << h << "x" << w;
        // the direct kernel on a smaller input still sees the same weight
        Tensor xs = randn({1, c, 8, 8}, 10), rs = Tensor::empty({1, o, 8, 8});
        ops::ref::Conv2dShape ss{1, c, 8, 8, o, 3, 3, 1, 1, 1, 1, 1};
        ops::ensure_values(wt);
        ops::ref::conv2d(ss, xs.data(), wt.data(), b.data(), rs.data());
        EXPECT_TRUE(test::close_rel(ops::conv2d(xs, wt, b, 1, ops::Pad2d::same(1)), rs, 1e-5));
    }
}

// 3x3 stride-1 fp32 convolutions with channel counts that are multiples of 16 and at least 32 output tiles of
// 4x4 take the Winograd kernel (backend/cpu/winograd.h): same tolerance as the direct
// kernel, on sizes that are not multiples of 4 (partial edge tiles), with output channels in several
// transformed-weight chunks (c = 960), in bands of tile rows (a budget of 1 MB: 4, 8 and 4 bands, the last
// short), and after the weight's values were released into its packed copy.
TEST(Ops, WinogradF43MatchesReference) {
    for (auto [n, c, h, w, o, band] : {std::tuple{3, 32, 13, 10, 48, 32 << 20}, {2, 320, 32, 32, 320, 32 << 20},
                                       {1, 960, 30, 22, 320, 32 << 20}, {2, 16, 17, 13, 16, 32 << 20},
                                       {2, 160, 38, 24, 32, 2 << 20}, {1, 960, 30, 22, 64, 2 << 20},
                                       {1, 480, 61, 9, 16, 2 << 20}}) {
        ops::set_conv_band_bytes(band);
        Tensor x = randn({n, c, h, w}, 11), wt = randn({o, c, 3, 3}, 12, 0.1f), b = randn({o}, 13);
        ops::ref::Conv2dShape s{n, c, h, w, o, 3, 3, 1, 1, 1, 1, 1};
        Tensor r = Tensor::empty({n, o, h, w});
        ops::ref::conv2d(s, x.data(), wt.data(), b.data(), r.data());
        ops::prepack_conv(wt, 1, ops::Pad2d::same(1));
        auto [y, kernel] = conv_and_kernel(x, wt, b, 1, ops::Pad2d::same(1));
        EXPECT_EQ(kernel, "conv2d_winograd") << n << "x" << c << "x" << h << "x" << w;
        EXPECT_TRUE(test::close_rel(y, r, 1e-5)) << n << "x" << c << "x" << h << "x" << w;
    }
    ops::set_conv_band_bytes(32 << 20);
    // Weights held in 16 bits are read as held (fp16, bf16: converted in the weight transform); q8_0 ones are
    // expanded per group. The reference uses the values the packed copy holds (ensure_values).
    for (int kind = 0; kind < 3; ++kind) {
        Tensor x = randn({2, 64, 20, 18}, 17), wt = randn({96, 64, 3, 3}, 18, 0.1f);
        Tensor b = randn({96}, 19, kind == 1 ? 1e-6f : 1.f);
        if (kind == 0) wt = to_f16_grid(wt);
        if (kind == 1) wt = to_bf16_grid(wt);
        {
            ops::WeightStorageScope storage(kind == 2 ? ops::WeightStorage::q8_0 : ops::WeightStorage::exact);
            ops::prepack_conv(wt, 1, ops::Pad2d::same(1));
        }
        auto [y, kernel] = conv_and_kernel(x, wt, b, 1, ops::Pad2d::same(1));
        EXPECT_EQ(kernel, "conv2d_winograd") << kind;
        ops::ensure_values(wt);
        Tensor r = Tensor::empty({2, 96, 20, 18});
        ops::ref::conv2d({2, 64, 20, 18, 96, 3, 3, 1, 1, 1, 1, 1}, x.data(), wt.data(), b.data(), r.data());
        EXPECT_TRUE(test::close_rel(y, r, 1e-5)) << kind;
    }
    expect_direct_kernel(2, 32, 12, 32, 14);  // fewer tiles (2 x 3 x 3 = 18): the direct kernel
}

// Convolutions over at most 128 output pixels with weights held in 16 bits take the weight-streaming kernel
// (backend/cpu/conv_small.h) on AVX-512 CPUs: fp16 and bf16 weights, 3x3 same, strided with odd sizes, 1x1,
// big weights whose packed copy is in output-channel groups, and a reduction in several cached chunks.
// Weights not exact in 16 bits stay fp32 and take the direct kernel.
TEST(Ops, SmallConvStreams16BitWeights) {
    if (!__builtin_cpu_supports("avx512f")) GTEST_SKIP() << "AVX-512 only";
    struct Case {
        int64_t n, c, h, w, o, k;
        int stride, pad;
        bool bf16;
    };
    constexpr int64_t kGroup = 160 << 10;
    for (auto [n, c, h, w, o, k, stride, pad, bf16] :
         {Case{2, 64, 8, 8, 96, 3, 1, 1, false}, Case{1, 48, 9, 7, 64, 3, 2, 1, false}, Case{2, 128, 4, 4, 64, 1, 1, 0, false},
          Case{2, 32, 8, 8, 32, 3, 1, 1, true}, Case{2, 64, 4, 4, 256, 3, 1, 1, false},
          Case{2, 256, 8, 8, 64, 3, 1, 1, false}}) {  // the last: a reduction over 2304 values in 2 chunks
        ops::set_weight_group_bytes(o == 256 ? kGroup : 16 << 20);  // the last case's 590 KB weight: 4 groups
        Tensor x = randn({n, c, h, w}, 51), b = randn({o}, 53, bf16 ? 1e-6f : 1.f);
        Tensor wt = bf16 ? to_bf16_grid(randn({o, c, k, k}, 52, 0.1f)) : to_f16_grid(randn({o, c, k, k}, 52, 0.1f));
        ops::ref::Conv2dShape s{n, c, h, w, o, k, k, stride, pad, pad, pad, pad};
        Tensor r = Tensor::empty({n, o, s.out_h(), s.out_w()});
        ops::ref::conv2d(s, x.data(), wt.data(), b.data(), r.data());
        ops::prepack_conv(wt, stride, ops::Pad2d::same(pad));
        auto [y, kernel] = conv_and_kernel(x, wt, b, stride, ops::Pad2d::same(pad));
        ops::set_weight_group_bytes(16 << 20);
        EXPECT_EQ(kernel, "conv2d_small") << n << "x" << c << "x" << h << "x" << w << " k" << k;
        EXPECT_TRUE(test::close_rel(y, r, 1e-5)) << n << "x" << c << "x" << h << "x" << w << " k" << k;
    }
    expect_direct_kernel(2, 64, 8, 96, 54);  // fp32 weights (not exact in 16 bits): the direct kernel
}

TEST(Ops, LinearMatchesReference) {
    for (auto [m, n, k] : {std::tuple{154, 320, 768}, {77, 7, 13}, {1, 1280, 320}}) {
        Tensor x = randn({m, k}, 4), w = randn({n, k}, 5, 0.05f), b = randn({n}, 6);
        Tensor r = Tensor::empty({m, n});
        ops::ref::linear(x.data(), w.data(), b.data(), r.data(), m, n, k);  // first: linear packs w, releasing its values
        Tensor y = ops::linear(x, w, b);
        EXPECT_TRUE(test::close_rel(y, r, 1e-5)) << m << "x" << n << "x" << k;
    }
}

TEST(Ops, GroupNormMatchesReference) {
    for (bool silu : {false, true})
        for (auto [n, c, h, w] : {std::tuple{2, 320, 32, 32}, {1, 64, 7, 5}, {2, 96, 1, 1}}) {
            Tensor x = randn({n, c, h, w}, 7, 3.f, 1.5f), g = randn({c}, 8, 0.1f, 1.f), b = randn({c}, 9, 0.1f);
            Tensor y = ops::group_norm(x, 32, g, b, 1e-5f, silu);
            Tensor r = Tensor::empty(x.shape());
            ops::ref::group_norm(x.data(), g.data(), b.data(), r.data(), n, c, h * w, 32, 1e-5f, silu);
            EXPECT_TRUE(test::close_rel(y, r, 1e-5)) << c << " silu " << silu;
        }
}

TEST(Ops, LayerNormMatchesReference) {
    for (auto [m, d] : {std::pair{4096, 320}, {77, 768}, {3, 5}}) {
        Tensor x = randn({m, d}, 10, 2.f, -1.f), g = randn({d}, 11, 0.1f, 1.f), b = randn({d}, 12, 0.1f);
        Tensor y = ops::layer_norm(x, g, b, 1e-5f);
        Tensor r = Tensor::empty(x.shape());
        ops::ref::layer_norm(x.data(), g.data(), b.data(), r.data(), m, d, 1e-5f);
        EXPECT_TRUE(test::close_rel(y, r, 1e-5));
    }
}

struct AttnCase {
    int64_t b, tq, tk, heads, dh;
    bool causal;
};

class AttentionTest : public ::testing::TestWithParam<AttnCase> {};

TEST_P(AttentionTest, MatchesReference) {
    const auto p = GetParam();
    Tensor q = randn({p.b, p.tq, p.heads * p.dh}, 13), k = randn({p.b, p.tk, p.heads * p.dh}, 14),
           v = randn({p.b, p.tk, p.heads * p.dh}, 15);
    Tensor o = ops::attention(q, k, v, int(p.heads), p.causal);
    Tensor r = Tensor::empty(q.shape());
    ops::ref::attention(q.data(), k.data(), v.data(), r.data(), p.b, p.tq, p.tk, p.heads, p.dh,
                        1.f / std::sqrt(float(p.dh)), p.causal);
    EXPECT_TRUE(test::close_rel(o, r, 1e-5));
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionTest,
                         ::testing::Values(AttnCase{2, 1024, 1024, 8, 40, false},  // SD self-attn (256x256)
                                           AttnCase{2, 1024, 77, 8, 40, false},    // cross-attn
                                           AttnCase{2, 77, 77, 12, 64, true},      // CLIP causal
                                           AttnCase{1, 130, 131, 3, 7, false},     // odd, > one query block
                                           // >= 256 keys run fused on AVX-512: tails of query and key blocks,
                                           // odd widths, widths of 1..5+ vectors (SD 2.x 64, level 2's 80,
                                           // level 3's 160, the VAE's single 512-wide head)
                                           AttnCase{2, 300, 300, 8, 40, false},
                                           AttnCase{1, 97, 513, 2, 9, false},
                                           AttnCase{1, 200, 256, 5, 64, false},
                                           AttnCase{2, 256, 256, 4, 80, false},
                                           AttnCase{1, 64, 300, 2, 160, false},
                                           AttnCase{1, 256, 256, 1, 512, false},
                                           AttnCase{1, 5, 5, 1, 1, true}));

TEST(Ops, GegluMatchesReference) {
    Tensor x = randn({2, 77, 2 * 96}, 16, 2.f);
    Tensor y = ops::geglu(x);
    Tensor r = Tensor::empty({2, 77, 96});
    ops::ref::geglu(x.data(), r.data(), 2 * 77, 96);
    EXPECT_TRUE(test::close_rel(y, r, 1e-6));
}

TEST(Ops, FastExpAccuracyAndSpecialValues) {
    double worst = 0;
    for (float x = -87.f; x < 88.f; x += 0.0137f)
        worst = std::max(worst, std::fabs(cpu::fast_exp(x) / std::exp(double(x)) - 1.0));
    EXPECT_LT(worst, 5e-7);
    EXPECT_EQ(cpu::fast_exp(0.f), 1.f);
    EXPECT_GT(cpu::fast_exp(-1e30f), -1e-30f);  // clamps, no NaN
    EXPECT_LT(cpu::fast_exp(-1e30f), 1e-37f);
    EXPECT_TRUE(std::isfinite(cpu::fast_exp(1e30f)));
    EXPECT_LT(cpu::fast_sigmoid(-1e30f), 1e-37f);  // exp clamps at e^88: tiny, not exactly 0
    EXPECT_EQ(cpu::fast_sigmoid(1e30f), 1.f);
}

TEST(Ops, LayoutHelpersRoundTrip) {
    Tensor x = randn({2, 5, 3, 4}, 17);
    Tensor back = ops::nhwc_to_nchw(ops::nchw_to_nhwc(x), 3, 4);
    EXPECT_TRUE(test::close_abs(back, x, 0));
    Tensor up = ops::upsample_nearest2x(x);
    EXPECT_EQ(up.data()[((1 * 5 + 2) * 6 + 5) * 8 + 7], x.data()[((1 * 5 + 2) * 3 + 2) * 4 + 3]);
    Tensor cat = ops::concat_channels(x, up.slice0(0, 2).reshape({2, 20, 3, 4}));
    EXPECT_EQ(cat.dim(1), 25);
    EXPECT_EQ(cat.data()[(1 * 25 + 4) * 12 + 11], x.data()[(1 * 5 + 4) * 12 + 11]);
    // Different spatial sizes are a logic error, not a read past the smaller buffer.
    EXPECT_THROW(ops::concat_channels(x, randn({2, 5, 3, 3}, 1)), std::logic_error);
}

// Every element lands where the layout says, in whole 16 x 16 blocks and at the edges of both axes.
TEST(Ops, LayoutHelpersPlaceEachElement) {
    for (const Shape& sh : {Shape{2, 40, 5, 7}, Shape{1, 320, 8, 8}, Shape{3, 16, 4, 4}, Shape{1, 3, 1, 17}}) {
        const Tensor x = randn(sh, 3);
        const int64_t n = sh[0], c = sh[1], s = sh[2] * sh[3];
        const Tensor t = ops::nchw_to_nhwc(x);
        ASSERT_EQ(t.shape(), (Shape{n, s, c}));
        const Tensor y = ops::nhwc_to_nchw(t, sh[2], sh[3]);
        ASSERT_EQ(y.shape(), sh);
        for (int64_t i = 0; i < n; ++i)
            for (int64_t ch = 0; ch < c; ++ch)
                for (int64_t p = 0; p < s; ++p) {
                    ASSERT_EQ(t.data()[(i * s + p) * c + ch], x.data()[(i * c + ch) * s + p]) << shape_str(sh) << i << ch << p;
                    ASSERT_EQ(y.data()[(i * c + ch) * s + p], x.data()[(i * c + ch) * s + p]) << shape_str(sh) << i << ch << p;
                }
    }
}

// torch.nn.functional.interpolate(mode="nearest") with a size: source index floor(i * in / out) -- what
// A1111's UNet applies when an upsampled level comes back larger than its skip (latent sides that do not halve).
TEST(Ops, ResizeNearestIndexesAsTorch) {
    Tensor x({1, 2, 4, 4});
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = float(i);
    const Tensor y = ops::resize_nearest(x, 6, 2);  // rows 4 -> 6: 0 0 1 2 2 3; columns 4 -> 2: 0 2
    const int rows[] = {0, 0, 1, 2, 2, 3}, cols[] = {0, 2};
    for (int c = 0; c < 2; ++c)
        for (int i = 0; i < 6; ++i)
            for (int j = 0; j < 2; ++j)
                EXPECT_EQ(y.data()[(c * 6 + i) * 2 + j], x.data()[(c * 4 + rows[i]) * 4 + cols[j]]) << c << i << j;
    const Tensor z = ops::resize_nearest(randn({1, 3, 28, 28}, 5), 27, 27);  // 28 -> 27 keeps rows 0..26
    EXPECT_EQ(z.dim(2), 27);
}

}  // namespace
}  // namespace nb

namespace nb {
namespace {

// Large convolutions run in bands of rows with a halo (conv2d; here the smallest bands, 8192 pixels): the
// bands' seams, the edge bands (halo taken from inside the image) and a short last band must all match the
// reference.
TEST(Ops, BandedConvMatchesReference) {
    ops::set_conv_band_bytes(0);
    struct Case {
        int64_t n, c, h, w, o, k;
    };
    for (auto [n, c, h, w, o, k] : {Case{1, 32, 288, 256, 32, 3},  // Winograd: input bands of one tile row
                                    Case{2, 8, 170, 200, 12, 3},   // batch 2: bands of 18 rows
                                    Case{1, 16, 300, 260, 8, 1}}) {  // 1x1: no halo
        const int p = int(k / 2);
        Tensor x = randn({n, c, h, w}, 21), wt = randn({o, c, k, k}, 22, 0.1f), b = randn({o}, 23);
        ops::ref::Conv2dShape s{n, c, h, w, o, k, k, 1, p, p, p, p};
        Tensor r = Tensor::empty({n, o, h, w});
        ops::ref::conv2d(s, x.data(), wt.data(), b.data(), r.data());
        Tensor y = ops::conv2d(x, wt, b, 1, ops::Pad2d::same(p));
        EXPECT_TRUE(test::close_rel(y, r, 1e-5)) << n << "x" << c << "x" << h << "x" << w << " k" << k;
    }
    ops::set_conv_band_bytes(32 << 20);
}

// Weights whose values are all fp16 values (an fp16 checkpoint's) are held in 16 bits after packing and
// expanded per use: same results as the reference, half the memory, values restored exactly.
TEST(Ops, Fp16ExactWeightsAreHeldCompact) {
    Tensor x = randn({2, 64, 12, 12}, 11), w = to_f16_grid(randn({96, 64, 3, 3}, 12, 0.1f)), b = randn({96}, 13);
    Tensor w_copy = w.clone();
    Tensor r = Tensor::empty({2, 96, 12, 12});
    ops::ref::conv2d({2, 64, 12, 12, 96, 3, 3, 1, 1, 1, 1, 1}, x.data(), w.data(), b.data(), r.data());
    const int64_t before = ops::packed_weight_bytes();
    EXPECT_TRUE(test::close_rel(ops::conv2d(x, w, b, 1, ops::Pad2d::same(1)), r, 1e-5));
    EXPECT_FALSE(w.has_values());
    EXPECT_EQ(ops::packed_weight_bytes() - before, w.numel() * 2);  // 96 x 64 fills the kernel's blocks exactly
    EXPECT_TRUE(test::close_rel(ops::conv2d(x, w, b, 1, ops::Pad2d::same(1)), r, 1e-5));  // second use

    Tensor xl = randn({77, 320}, 14), wl = to_f16_grid(randn({640, 320}, 15, 0.05f)), bl = randn({640}, 16);
    Tensor rl = Tensor::empty({77, 640});
    ops::ref::linear(xl.data(), wl.data(), bl.data(), rl.data(), 77, 640, 320);
    Tensor wl_copy = wl.clone();
    const int64_t before_l = ops::packed_weight_bytes();
    EXPECT_TRUE(test::close_rel(ops::linear(xl, wl, bl), rl, 1e-5));
    EXPECT_EQ(ops::packed_weight_bytes() - before_l, wl.numel() * 2);

    ops::ensure_values(w);
    ops::ensure_values(wl);
    EXPECT_EQ(0, std::memcmp(w.data(), w_copy.data(), size_t(w.numel()) * 4));
    EXPECT_EQ(0, std::memcmp(wl.data(), wl_copy.data(), size_t(wl.numel()) * 4));

    // plain fp32 values (not exact in 16 bits) stay fp32
    Tensor wf = randn({640, 320}, 17, 0.05f);
    const int64_t before_f = ops::packed_weight_bytes();
    ops::linear(xl, wf, bl);
    EXPECT_EQ(ops::packed_weight_bytes() - before_f, wf.numel() * 4);
}

// A big weight held in 16 bits (or q8_0) runs in output-channel groups (ops::set_weight_group_bytes; here
// 160 KB): conv and linear still match the reference and the expansion scratch never holds more than a group.
TEST(Ops, BigCompactWeightsRunInGroups) {
    constexpr int64_t kGroup = 160 << 10;
    ops::set_weight_group_bytes(kGroup);
    ops::return_free_memory();  // empties this thread's expansion scratch
    // 2 x 9 x 9 pixels: more than the weight-streaming kernel takes (it expands nothing), fewer than Winograd's.
    Tensor x = randn({2, 64, 9, 9}, 41), w = to_f16_grid(randn({256, 64, 3, 3}, 42, 0.1f)), b = randn({256}, 43);
    Tensor r = Tensor::empty({2, 256, 9, 9});
    ops::ref::conv2d({2, 64, 9, 9, 256, 3, 3, 1, 1, 1, 1, 1}, x.data(), w.data(), b.data(), r.data());
    ops::prepack_conv(w, 1, ops::Pad2d::same(1));
    EXPECT_TRUE(test::close_rel(ops::conv2d(x, w, b, 1, ops::Pad2d::same(1)), r, 1e-5));
    EXPECT_GT(ops::weight_scratch_bytes(), 0);
    EXPECT_LE(ops::weight_scratch_bytes(), kGroup) << "the 590 KB weight was expanded whole";
    // Other sizes may want another layout: the grouped copy is re-laid out group by group, values unchanged.
    for (auto [n, h, wd] : {std::tuple{1, 2, 2}, {2, 40, 33}, {2, 9, 7}}) {
        Tensor xs = randn({n, 64, h, wd}, 48), rs = Tensor::empty({n, 256, h, wd});
        ops::ensure_values(w);
        ops::ref::conv2d({n, 64, h, wd, 256, 3, 3, 1, 1, 1, 1, 1}, xs.data(), w.data(), b.data(), rs.data());
        EXPECT_TRUE(test::close_rel(ops::conv2d(xs, w, b, 1, ops::Pad2d::same(1)), rs, 1e-5)) << h << "x" << wd;
        EXPECT_LE(ops::weight_scratch_bytes(), kGroup);
    }

    Tensor xl = randn({33, 256}, 44), wl = to_f16_grid(randn({400, 256}, 45, 0.05f)), bl = randn({400}, 46);
    Tensor rl = Tensor::empty({33, 400});
    ops::ref::linear(xl.data(), wl.data(), bl.data(), rl.data(), 33, 400, 256);
    EXPECT_TRUE(test::close_rel(ops::linear(xl, wl, bl), rl, 1e-5));  // 400 columns: groups of 128, last of 16
    EXPECT_LE(ops::weight_scratch_bytes(), kGroup);

    {  // q8_0 groups dequantise the same blocks as the whole weight
        Tensor wq = randn({256, 64, 3, 3}, 47, 0.1f);
        ops::set_weight_group_bytes(int64_t(1) << 40);
        Tensor whole;
        {
            ops::WeightStorageScope q8(ops::WeightStorage::q8_0);
            whole = ops::conv2d(x, wq, b, 1, ops::Pad2d::same(1));
        }
        ops::set_weight_group_bytes(kGroup);
        ops::return_free_memory();
        EXPECT_TRUE(test::close_rel(ops::conv2d(x, wq, b, 1, ops::Pad2d::same(1)), whole, 1e-6));
        EXPECT_LE(ops::weight_scratch_bytes(), kGroup);
    }
    ops::set_weight_group_bytes(16 << 20);
}

// WeightStorage::q8_0: blocks of 32 int8 values + one fp32 scale (1.125 bytes per value); each value within
// half a quantisation step (max|block| / 254) of the original; kept as q8_0 when re-packed after a change.
TEST(Ops, Q8WeightsAreQuantizedInBlocks) {
    Tensor x = randn({77, 320}, 31), w = randn({640, 320}, 32, 0.05f), b = randn({640}, 33);
    Tensor w0 = w.clone();
    Tensor r = Tensor::empty({77, 640});
    ops::ref::linear(x.data(), w.data(), b.data(), r.data(), 77, 640, 320);
    int64_t before = ops::packed_weight_bytes();
    Tensor y;
    {
        ops::WeightStorageScope q8(ops::WeightStorage::q8_0);
        y = ops::linear(x, w, b);
    }
    EXPECT_EQ(ops::packed_weight_bytes() - before, w.numel() + w.numel() / 32 * 4);
    EXPECT_TRUE(test::close_rel(y, r, 2e-2));
    EXPECT_FALSE(test::close_rel(y, r, 1e-4)) << "not quantized?";
    ops::ensure_values(w);
    float amax = 0.f, worst = 0.f;
    for (int64_t i = 0; i < w.numel(); ++i) {
        amax = std::max(amax, std::abs(w0.data()[i]));
        worst = std::max(worst, std::abs(w.data()[i] - w0.data()[i]));
    }
    EXPECT_LE(worst, amax / 254.f * 1.001f);
    EXPECT_GT(worst, 0.f);
    ops::weights_changed(w);  // as after a LoRA merge: re-packed on next use, still as q8_0 (default is exact)
    before = ops::packed_weight_bytes();
    ops::linear(x, w, b);
    EXPECT_EQ(ops::packed_weight_bytes() - before, w.numel() + w.numel() / 32 * 4);

    // convolution (blocked layout) too
    Tensor xc = randn({1, 64, 10, 10}, 34), wc = randn({64, 64, 3, 3}, 35, 0.05f), bc = randn({64}, 36);
    Tensor rc = Tensor::empty({1, 64, 10, 10});
    ops::ref::conv2d({1, 64, 10, 10, 64, 3, 3, 1, 1, 1, 1, 1}, xc.data(), wc.data(), bc.data(), rc.data());
    ops::WeightStorageScope q8(ops::WeightStorage::q8_0);
    EXPECT_TRUE(test::close_rel(ops::conv2d(xc, wc, bc, 1, ops::Pad2d::same(1)), rc, 2e-2));
}

TEST(Ops, ConvSeesWeightsChangedInPlace) {
    Tensor x = Tensor::full({1, 8, 6, 6}, 1.f), w = Tensor::full({16, 8, 3, 3}, 0.5f), b(Shape{16});
    Tensor y1 = ops::conv2d(x, w, b, 1, ops::Pad2d::same(1));
    ops::ensure_values(w);  // the conv packed w and released its fp32 values
    for (auto& v : w.span()) v = 1.f;
    ops::weights_changed(w);
    Tensor y2 = ops::conv2d(x, w, b, 1, ops::Pad2d::same(1));
    const int64_t centre = (0 * 16 + 3) * 36 + 2 * 6 + 2;
    EXPECT_FLOAT_EQ(y1.data()[centre], 0.5f * 72);
    EXPECT_FLOAT_EQ(y2.data()[centre], 72.f);
}

}  // namespace
}  // namespace nb

namespace nb {
namespace {

// bf16 compute: inputs and weights rounded to bfloat16 (8-bit mantissa), fp32 accumulation.
struct PrecisionGuard {
    explicit PrecisionGuard(ops::Precision p) { ops::set_precision(p); }
    ~PrecisionGuard() { ops::set_precision(ops::Precision::fp32); }
};

TEST(OpsBf16, ConvAndLinearWithinBf16Tolerance) {
    if (!ops::cpu_has_bf16()) GTEST_SKIP() << "no native bf16 on this CPU";
    PrecisionGuard g(ops::Precision::bf16);
    Tensor x = randn({2, 320, 16, 16}, 21), w = randn({320, 320, 3, 3}, 22, 0.02f), b = randn({320}, 23);
    Tensor y = ops::conv2d(x, w, b, 1, ops::Pad2d::same(1));
    ops::ensure_values(w);
    ops::ref::Conv2dShape s{2, 320, 16, 16, 320, 3, 3, 1, 1, 1, 1, 1};
    Tensor r = Tensor::empty(y.shape());
    ops::ref::conv2d(s, x.data(), w.data(), b.data(), r.data());
    EXPECT_TRUE(test::close_rel(y, r, 1e-2));
    EXPECT_FALSE(test::close_rel(y, r, 1e-6));  // really computed in reduced precision

    Tensor xl = randn({154, 768}, 24), wl = randn({320, 768}, 25, 0.05f), bl = randn({320}, 26);
    Tensor yl = ops::linear(xl, wl, bl);
    EXPECT_FALSE(wl.has_values());  // the packed bf16 copy replaced the fp32 values
    Tensor rl = Tensor::empty({154, 320});
    ops::ensure_values(wl);
    ops::ref::linear(xl.data(), wl.data(), bl.data(), rl.data(), 154, 320, 768);
    EXPECT_TRUE(test::close_rel(yl, rl, 1e-2));
    // In bf16 mode the packed copy replaces the fp32 values; ensure_values() brings them back, and an edit
    // is seen after weights_changed().
    ASSERT_TRUE(wl.has_values());
    for (auto& v : wl.span()) v *= 2.f;
    ops::weights_changed(wl);
    Tensor yl2 = ops::linear(xl, wl, Tensor());
    ops::ensure_values(wl);
    for (auto& v : rl.span()) v = 0;
    ops::ref::linear(xl.data(), wl.data(), nullptr, rl.data(), 154, 320, 768);
    EXPECT_TRUE(test::close_rel(yl2, rl, 1e-2));
}

}  // namespace
}  // namespace nb

namespace nb {
namespace {

TEST(Ops, FastErfAccuracy) {
    double worst = 0;
    for (float x = -6.f; x < 6.f; x += 0.00731f) worst = std::max(worst, std::fabs(cpu::erf_fast(x) - std::erf(double(x))));
    EXPECT_LT(worst, 5e-7);  // 1.5e-7 in exact arithmetic, plus float rounding
    EXPECT_EQ(cpu::erf_fast(0.f), 0.f);
    EXPECT_FLOAT_EQ(cpu::gelu_exact(-30.f), 0.f);
}

TEST(OpsBf16, AttentionWithinBf16Tolerance) {
    if (!ops::cpu_has_bf16()) GTEST_SKIP() << "no native bf16 on this CPU";
    ops::set_precision(ops::Precision::bf16);
    for (bool causal : {false, true}) {
        Tensor q = randn({2, 300, 8 * 40}, 31), k = randn({2, 300, 8 * 40}, 32), v = randn({2, 300, 8 * 40}, 33);
        Tensor o = ops::attention(q, k, v, 8, causal);
        Tensor r = Tensor::empty(q.shape());
        ops::ref::attention(q.data(), k.data(), v.data(), r.data(), 2, 300, 300, 8, 40, 1.f / std::sqrt(40.f), causal);
        EXPECT_TRUE(test::close_rel(o, r, 2e-2)) << causal;
    }
    ops::set_precision(ops::Precision::fp32);
}

}  // namespace
}  // namespace nb
