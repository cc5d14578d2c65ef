// The per-engine kernel context and the backend seam (issue 16): settings and caches belong to a context made
// current per thread, packed weights belong to their weight, and the math runs on the context's backend.
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/context.h"
#include "backend/ops.h"
#include "backend/weights.h"
#include "core/activation_heap.h"
#include "core/dtype.h"
#include "testutil/golden.h"

namespace nb {
namespace {

Tensor randn(Shape s, uint32_t seed, float scale = 1.f) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.f, 1.f);
    Tensor t = Tensor::empty(std::move(s));
    for (auto& v : t.span()) v = d(g) * scale;
    return t;
}

backend::Settings with_precision(ops::Precision p) {
    backend::Settings s;
    s.precision = p;
    return s;
}

TEST(Context, ScopesMakeTheirSettingsCurrentAndRestore) {
    backend::Context a(with_precision(ops::Precision::bf16)), b(with_precision(ops::Precision::fp32));
    const ops::Precision outside = ops::precision();
    {
        backend::Scope sa(a);
        EXPECT_EQ(&backend::current(), &a);
        EXPECT_EQ(ops::precision(), ops::Precision::bf16);
        {
            backend::Scope sb(b);
            EXPECT_EQ(&backend::current(), &b);
            EXPECT_EQ(ops::precision(), ops::Precision::fp32);
            ops::set_weight_storage(ops::WeightStorage::q8_0);  // changes b only
        }
        EXPECT_EQ(&backend::current(), &a);
        EXPECT_EQ(ops::weight_storage(), ops::WeightStorage::exact);
    }
    EXPECT_EQ(b.settings.weight_storage, ops::WeightStorage::q8_0);
    EXPECT_EQ(ops::precision(), outside);
}

TEST(Context, ThreadsOutsideAnyScopeHaveTheirOwnDefault) {
    ops::set_precision(ops::Precision::bf16);  // this thread's default context
    ops::Precision other = ops::Precision::bf16;
    std::thread([&] { other = ops::precision(); }).join();
    EXPECT_EQ(other, ops::Precision::fp32);
    ops::set_precision(ops::Precision::fp32);
}

TEST(Context, ThreadCountIsAppliedForTheScope) {
    const int before = ops::num_threads();
    backend::Settings s;
    s.threads = 1;
    backend::Context one(s);
    {
        backend::Scope scope(one);
        EXPECT_EQ(ops::num_threads(), 1);
    }
    EXPECT_EQ(ops::num_threads(), before);
}

// Each context keeps its own kernel caches (plans, stream, profile, MAC count); a fresh one has none, and they
// go with it.
TEST(Context, KernelCachesArePerContext) {
    Tensor x = randn({1, 8, 16, 16}, 1), w = randn({16, 8, 3, 3}, 2, 0.1f), b = randn({16}, 3);
    backend::Context a, c;
    {
        backend::Scope scope(a);
        EXPECT_EQ(a.state_count(), 0u);
        ops::set_profiling(true);
        Tensor y = ops::conv2d(x, w, b, 1, ops::Pad2d::same(1));
        EXPECT_GT(ops::mac_count(), 0);
        EXPECT_EQ(ops::take_profile().size(), 1u);
    }
    EXPECT_GT(a.state_count(), 0u);
    EXPECT_EQ(c.state_count(), 0u);
    EXPECT_EQ(c.macs.load(), 0);
    backend::Scope scope(c);
    EXPECT_TRUE(ops::take_profile().empty()) << "one context's profile showed in another";
}

// Tensors made while a context is current come from its own activation heap; a tensor keeps that heap alive
// after the context is gone, and gives its buffer back to it.
TEST(Context, ActivationsComeFromTheContextsHeap) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "AddressSanitizer builds allocate every buffer with operator new";
#endif
    constexpr int64_t kFloats = 1 << 20;  // 4 MB: from the region
    const size_t default_before = activation_heap::stats().in_use;
    Tensor kept;
    {
        auto ctx = std::make_unique<backend::Context>();
        activation_heap::Heap& heap = ctx->heap();
        {
            backend::Scope scope(*ctx);
            kept = Tensor::full({kFloats}, 1.f);
            EXPECT_EQ(heap.stats().in_use, size_t(kFloats) * 4);
        }
        EXPECT_EQ(activation_heap::stats().in_use, default_before) << "the buffer came from the default heap";
    }
    EXPECT_EQ(kept.data()[kFloats - 1], 1.f);  // its heap outlived the context
    kept = Tensor();
}

// A packed copy is attached to its weight: it is counted to the context that made it, and it goes when the
// weight's last reference goes (no table that outlives the model).
TEST(Context, PackedCopiesLiveAndDieWithTheirWeight) {
    backend::Context ctx;
    backend::Scope scope(ctx);
    Tensor x = randn({2, 64, 12, 12}, 4);
    {
        Tensor w = randn({96, 64, 3, 3}, 5, 0.1f);
        ops::prepack_conv(w, 1, ops::Pad2d::same(1));
        EXPECT_FALSE(w.has_values()) << "the packed copy is the weight now";
        EXPECT_EQ(ops::packed_weight_bytes(), w.numel() * 4);  // fp32 values: held fp32
        Tensor y = ops::conv2d(x, w, Tensor(), 1, ops::Pad2d::same(1));
        EXPECT_EQ(y.dim(1), 96);
        ops::ensure_values(w);  // values come back from the copy
        EXPECT_TRUE(w.has_values());
    }
    EXPECT_EQ(ops::packed_weight_bytes(), 0);
}

TEST(Context, ForgetAndChangeDropTheCopy) {
    backend::Context ctx;
    backend::Scope scope(ctx);
    Tensor w = randn({32, 16, 3, 3}, 6, 0.1f), x = randn({1, 16, 8, 8}, 7);
    Tensor before = ops::conv2d(x, w, Tensor(), 1, ops::Pad2d::same(1));
    EXPECT_GT(ops::packed_weight_bytes(), 0);
    ops::ensure_values(w);
    for (float& v : w.span()) v *= 2.f;
    ops::weights_changed(w);  // the next use re-packs from the new values
    EXPECT_EQ(ops::packed_weight_bytes(), 0);
    Tensor after = ops::conv2d(x, w, Tensor(), 1, ops::Pad2d::same(1));
    ops::scale_(before, 2.f);
    EXPECT_TRUE(test::close_rel(after, before, 1e-5));
    ops::forget_weight(w);
    EXPECT_EQ(ops::packed_weight_bytes(), 0);
    EXPECT_EQ(w.attachment(), nullptr);
}

// A weight reports how it is held: its values, or its packed copy's element type and bytes.
TEST(Context, HeldTellsTheTypeAndBytesOfAWeight) {
    backend::Context ctx;
    backend::Scope scope(ctx);
    Tensor w = randn({64, 32, 3, 3}, 20, 0.1f);
    EXPECT_EQ(ops::held(w).as, ops::HeldAs::values_f32);
    EXPECT_EQ(ops::held(w).bytes, w.numel() * 4);
    ops::prepack_conv(w, 1, ops::Pad2d::same(1));
    EXPECT_EQ(ops::held(w).as, ops::HeldAs::f32);  // random fp32 values: not exact in 16 bits
    EXPECT_EQ(ops::held(w).bytes, w.numel() * 4);

    Tensor h = randn({64, 32, 3, 3}, 21, 0.1f);
    for (float& v : h.span()) v = float(_Float16(v));  // values an fp16 checkpoint holds
    ops::prepack_conv(h, 1, ops::Pad2d::same(1));
    EXPECT_EQ(ops::held(h).as, ops::HeldAs::f16);
    EXPECT_EQ(ops::held(h).bytes, h.numel() * 2);

    ops::set_weight_storage(ops::WeightStorage::q8_0);
    Tensor q = randn({64, 32, 3, 3}, 22, 0.1f);
    ops::prepack_conv(q, 1, ops::Pad2d::same(1));
    EXPECT_EQ(ops::held(q).as, ops::HeldAs::q8_0);
    EXPECT_EQ(ops::held(q).bytes, q.numel() + q.numel() / 32 * 4);

    Tensor r = randn({8}, 23);
    r.release_values();
    EXPECT_EQ(ops::held(r).as, ops::HeldAs::released);
    EXPECT_STREQ(ops::held_name(ops::HeldAs::f16), "f16");
}

// A packed copy is held in 16 bits only when every value survives the round trip, wherever the one that
// does not sits (the check runs in 8-wide vectors over parallel blocks, with a scalar tail), and then gives
// back exactly the values it was made from. The weights span many blocks and are big enough for the
// huge-page mapped copies.
TEST(Context, SixteenBitCopiesAreExactOrNotMade) {
    backend::Context ctx;
    backend::Scope scope(ctx);
    const Shape shape{1027, 2053};  // 2.1M values: 33 blocks of 64K, an odd tail
    auto make = [&](uint64_t seed, auto round) {
        Tensor w = randn(shape, seed, 0.1f);
        for (float& v : w.span()) v = round(v);
        return w;
    };
    auto to_f16 = [](float v) { return float(_Float16(v)); };
    auto to_bf16 = [](float v) { return bf16_to_f32(f32_to_bf16(v)); };
    auto check = [&](Tensor w, ops::HeldAs want, const char* what) {
        const std::vector<float> values(w.span().begin(), w.span().end());
        ops::prepack_linear(w);
        EXPECT_EQ(ops::held(w).as, want) << what;
        ops::ensure_values(w);
        EXPECT_EQ(std::memcmp(w.data(), values.data(), values.size() * 4), 0) << what << ": values changed";
    };
    Tensor f16 = make(30, to_f16);
    f16.data()[5] = -0.f;
    f16.data()[6] = to_f16(1e-6f);  // fp16 subnormal
    check(f16, ops::HeldAs::f16, "fp16 values");
    check(make(31, to_bf16), ops::HeldAs::bf16, "bf16 values");
    for (size_t at : {size_t(0), size_t(70001), size_t(1027 * 2053 - 1), size_t(1027 * 2053 - 9)}) {
        Tensor w = make(32 + at, to_f16);
        w.data()[at] = 0.1f;  // neither fp16 nor bf16
        check(w, ops::HeldAs::f32, "one inexact value");
        Tensor b = make(33 + at, to_bf16);
        b.data()[at] = std::numeric_limits<float>::infinity();
        check(b, ops::HeldAs::f32, "bf16 values and an inf");
        Tensor n = make(34 + at, to_f16);
        n.data()[at] = std::numeric_limits<float>::quiet_NaN();
        const ops::HeldAs want = ops::HeldAs::f32;
        ops::prepack_linear(n);
        EXPECT_EQ(ops::held(n).as, want) << "a NaN";
    }
}

// Loading a weight straight from a checkpoint's 16-bit bits makes the copy packing its fp32 values makes: the
// same held type, values and results, for convolutions (blocked layouts) and linears; values packing keeps in
// fp32 (a NaN) and the reference backend go through fp32 values as before.
TEST(Context, PackingFromFileBitsEqualsPackingValues) {
    auto bits_of = [](const Tensor& v, DType t) {
        std::vector<uint16_t> b(size_t(v.numel()));
        for (size_t i = 0; i < b.size(); ++i) b[i] = t == DType::f16 ? f32_to_f16(v.data()[i]) : f32_to_bf16(v.data()[i]);
        return b;
    };
    auto values_of = [](const std::vector<uint16_t>& b, const Shape& shape, DType t) {
        Tensor v = Tensor::empty(shape);
        convert_to_f32(t, b.data(), v.data(), b.size());
        return v;
    };
    Tensor x = randn({1, 36, 12, 12}, 40), xl = randn({5, 36}, 41);
    for (DType t : {DType::f16, DType::bf16}) {
        for (bool nan : {false, true}) {
            backend::Context ctx;
            backend::Scope scope(ctx);
            const Shape cs{40, 36, 3, 3}, ls{24, 36};
            std::vector<uint16_t> cb = bits_of(randn(cs, 42, 0.1f), t), lb = bits_of(randn(ls, 43, 0.1f), t);
            if (nan) cb[77] = lb[5] = t == DType::f16 ? 0x7e00 : 0x7fc0;
            Tensor cv = values_of(cb, cs, t), lv = values_of(lb, ls, t);  // packed from values, as before
            Tensor cw = Tensor::without_values(cs), lw = Tensor::without_values(ls);
            ops::prepack_conv_from(cw, {t, cb.data()}, 1, ops::Pad2d::same(1));
            ops::prepack_linear_from(lw, {t, lb.data()});
            ops::prepack_conv(cv, 1, ops::Pad2d::same(1));
            ops::prepack_linear(lv);
            // bf16 values that all happen to be exact in fp16 (the small linear's) are held as fp16 when packed
            // from values, which tries fp16 first; from bf16 bits they stay bf16: the same values either way.
            const ops::HeldAs want = nan ? ops::HeldAs::f32 : t == DType::f16 ? ops::HeldAs::f16 : ops::HeldAs::bf16;
            EXPECT_EQ(ops::held(cw).as, want) << dtype_name(t) << " nan " << nan;
            EXPECT_EQ(ops::held(lw).as, want) << dtype_name(t) << " nan " << nan;
            EXPECT_EQ(ops::held(cv).as, want) << dtype_name(t) << " nan " << nan;
            if (nan) continue;
            EXPECT_FALSE(cw.has_values());
            Tensor yc = ops::conv2d(x, cw, Tensor(), 1, ops::Pad2d::same(1)), yl = ops::linear(xl, lw, Tensor());
            Tensor rc = ops::conv2d(x, cv, Tensor(), 1, ops::Pad2d::same(1)), rl = ops::linear(xl, lv, Tensor());
            EXPECT_EQ(std::memcmp(yc.data(), rc.data(), size_t(yc.numel()) * 4), 0) << dtype_name(t);
            EXPECT_EQ(std::memcmp(yl.data(), rl.data(), size_t(yl.numel()) * 4), 0) << dtype_name(t);
            ops::ensure_values(cw);
            ops::ensure_values(cv);
            EXPECT_EQ(std::memcmp(cw.data(), cv.data(), size_t(cw.numel()) * 4), 0) << dtype_name(t);
        }
    }
    backend::Settings s;
    s.backend = ops::Backend::ref;
    backend::Context ref(s);
    backend::Scope scope(ref);
    std::vector<uint16_t> b(8 * 4, f32_to_f16(0.5f));
    Tensor w = Tensor::without_values({8, 4});
    ops::prepack_linear_from(w, {DType::f16, b.data()});
    ASSERT_TRUE(w.has_values()) << "the reference backend needs the values";
    EXPECT_EQ(w.data()[31], 0.5f);
}

// The seam: a context selects its backend; the reference backend never packs and gives the same math.
TEST(Context, BackendIsTheContextsChoice) {
    backend::Settings s;
    s.backend = ops::Backend::ref;
    backend::Context ref(s), cpu;
    EXPECT_STREQ(backend::of(ref).name(), "ref");
    EXPECT_STREQ(backend::of(cpu).name(), "cpu");
    Tensor x = randn({1, 8, 10, 10}, 8), w = randn({12, 8, 3, 3}, 9, 0.1f), b = randn({12}, 10);
    Tensor y_ref, y_cpu;
    {
        backend::Scope scope(ref);
        ops::prepack_conv(w, 1, ops::Pad2d::same(1));
        EXPECT_TRUE(w.has_values()) << "the reference backend packed a weight";
        y_ref = ops::conv2d(x, w, b, 1, ops::Pad2d::same(1));
        EXPECT_EQ(w.attachment(), nullptr);
    }
    {
        backend::Scope scope(cpu);
        y_cpu = ops::conv2d(x, w, b, 1, ops::Pad2d::same(1));
    }
    EXPECT_TRUE(test::close_rel(y_cpu, y_ref, 1e-5));
}

// Two contexts on two threads at once, with different precision: each gets exactly what it gets alone.
TEST(Context, ConcurrentContextsDoNotInterfere) {
    Tensor x = randn({2, 32, 16, 16}, 11), w1 = randn({32, 32, 3, 3}, 12, 0.1f), w2 = randn({32, 32, 3, 3}, 12, 0.1f);
    auto run = [&](ops::Precision p, const Tensor& w) {
        backend::Context ctx(with_precision(p));
        backend::Scope scope(ctx);
        Tensor y = x;
        for (int i = 0; i < 20; ++i) y = ops::conv2d(y, w, Tensor(), 1, ops::Pad2d::same(1));
        return y;
    };
    if (!ops::cpu_has_bf16()) GTEST_SKIP() << "no native bf16 on this CPU: both contexts would run fp32";
    const Tensor alone_fp32 = run(ops::Precision::fp32, w1.clone()), alone_bf16 = run(ops::Precision::bf16, w2.clone());
    Tensor together_fp32, together_bf16;
    std::thread t([&] { together_fp32 = run(ops::Precision::fp32, w1); });
    together_bf16 = run(ops::Precision::bf16, w2);
    t.join();
    EXPECT_TRUE(test::close_rel(together_fp32, alone_fp32, 0));
    EXPECT_TRUE(test::close_rel(together_bf16, alone_bf16, 0));
    EXPECT_FALSE(test::close_rel(alone_fp32, alone_bf16, 1e-6)) << "bf16 made no difference: the test shows nothing";
}

}  // namespace
}  // namespace nb
